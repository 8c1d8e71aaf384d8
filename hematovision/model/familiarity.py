"""How familiar an image is to the model: Mahalanobis distance in its own feature space.

A softmax always sums to one, so a photo of a cat still gets a class with high
"confidence". The network's pooled features tell more: the cells it was trained on form
tight class clusters, and anything else lands away from all of them. The score is the
distance to the nearest class centre under one shared covariance (Lee et al. 2018, "A
simple unified framework for detecting out-of-distribution samples"), with Ledoit–Wolf
shrinkage because 1,280 feature dimensions need a well-conditioned inverse.

The centres and covariance are fitted on the training split; the threshold is a high
quantile of the validation split's scores, so the share of ordinary cells flagged is
chosen, not hoped for. The statistics are stored beside the model in ``familiarity.npz``
(plain arrays, read with ``allow_pickle=False``) and the card holds its sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

__all__ = ["FAMILIARITY_FILE", "Familiarity", "fit_familiarity", "load_familiarity"]

FAMILIARITY_FILE = "familiarity.npz"


@dataclass(frozen=True)
class Familiarity:
    """Class centres, a whitening matrix, and the threshold above which an image is unfamiliar.

    Attributes:
        means: ``(classes, features)`` class centres of the training features.
        whitening: ``(features, features)``; ``(x - mean) @ whitening`` has identity covariance.
        threshold: distances above this are "Unfamiliar".
        quantile: the validation quantile the threshold was set at (with few validation
            cells the share above it differs: ``np.quantile`` interpolates).
        min_sharpness: model inputs less sharp than this are out of focus (see
            :func:`hematovision.io.focus.sharpness`); half the sharpness of the blurriest
            0.1 % of training cells.
    """

    means: np.ndarray
    whitening: np.ndarray
    threshold: float
    quantile: float
    min_sharpness: float = 0.0

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Distance of each ``(n, features)`` row to its nearest class centre, in standard
        deviations of the training cells (a root of a squared Mahalanobis distance,
        divided by the square root of the dimension so that typical cells score ~1)."""
        features = np.asarray(features, dtype=np.float64)
        projected = features @ self.whitening
        centres = self._centres
        squared = (np.sum(projected**2, axis=1)[:, None] - 2 * projected @ centres.T
                   + np.sum(centres**2, axis=1)[None, :])
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0) / features.shape[1])

    @cached_property
    def _centres(self) -> np.ndarray:
        # Whitened once per model, not per image: one such product per class, more work
        # than whitening the image itself.
        return self.means @ self.whitening

    def is_unfamiliar(self, features: np.ndarray) -> np.ndarray:
        return self.distance(features) > self.threshold

    def draw(self, per_class: int, classes: int, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
        """``per_class`` pooled features drawn from each training class's distribution (its
        centre, the shared covariance), and their class indices.

        They stand in for the training cells where those are not at hand: adaptation
        replays them so that the classes a laboratory shows no cells of keep their place.
        Only the first ``classes`` rows of ``means`` are training classes; adaptation appends
        a laboratory's centres after them.
        """
        rng = np.random.default_rng(seed)
        labels = np.repeat(np.arange(classes), per_class)
        noise = rng.standard_normal((len(labels), self.whitening.shape[0]))
        return self.means[labels] + noise @ self._colouring, labels

    @cached_property
    def _colouring(self) -> np.ndarray:
        # The inverse of the whitening: it gives white noise the training cells' covariance.
        # Inverted once per model; an adaptation study draws fifteen times.
        return np.linalg.inv(self.whitening)

    def save(self, path: str | Path) -> Path:
        np.savez(path, means=self.means.astype(np.float32),
                 whitening=self.whitening.astype(np.float32),
                 threshold=np.float64(self.threshold), quantile=np.float64(self.quantile),
                 min_sharpness=np.float64(self.min_sharpness))
        return Path(path)


def fit_familiarity(train_features: np.ndarray, train_labels: np.ndarray,
                    val_features: np.ndarray, quantile: float = 0.98,
                    train_sharpness: np.ndarray | None = None) -> Familiarity:
    """Fit class centres and a shared, shrunk covariance; threshold at a validation quantile.

    Args:
        train_features: ``(n, features)`` pooled features of the training split.
        train_labels: their class indices.
        val_features: pooled features of the validation split (never the test split).
        quantile: the share of validation cells that must count as familiar.
    """
    from sklearn.covariance import LedoitWolf

    train_features = np.asarray(train_features, dtype=np.float64)
    classes = np.unique(train_labels)
    means = np.stack([train_features[train_labels == c].mean(axis=0) for c in classes])
    centred = train_features - means[np.searchsorted(classes, train_labels)]
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    # Whitening from the eigen-decomposition: stable for a nearly singular covariance.
    values, vectors = np.linalg.eigh(covariance)
    whitening = vectors / np.sqrt(np.maximum(values, values.max() * 1e-9))
    model = Familiarity(means, whitening, threshold=np.inf, quantile=quantile)
    threshold = float(np.quantile(model.distance(val_features), quantile))
    min_sharpness = (0.5 * float(np.quantile(train_sharpness, 0.001))
                     if train_sharpness is not None and len(train_sharpness) else 0.0)
    return Familiarity(means, whitening, threshold, quantile, min_sharpness)


def load_familiarity(path: str | Path) -> Familiarity:
    """Read ``familiarity.npz``; plain arrays only, pickles are refused."""
    with np.load(path, allow_pickle=False) as data:
        return Familiarity(data["means"].astype(np.float64),
                           data["whitening"].astype(np.float64),
                           float(data["threshold"]), float(data["quantile"]),
                           float(data["min_sharpness"]) if "min_sharpness" in data else 0.0)
