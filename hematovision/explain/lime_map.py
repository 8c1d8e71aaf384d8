"""LIME: which superpixels, when hidden, change the model's confidence in the class.

Ribeiro et al. 2016, "Why Should I Trust You?": Explaining the Predictions of Any
Classifier. The image is cut into superpixels (SLIC, Achanta et al. 2012); random subsets
are hidden (blurred, see :mod:`hematovision.explain.coalitions`; LIME's default is each
patch's mean colour), the model scores each variant, and a weighted ridge
regression (LIME's own ``LimeBase``) gives each superpixel a weight: positive where it
supports the class, negative where it argues against it.

The map scores the cell once for LIME and SHAP together
(:mod:`hematovision.explain.coalitions`): LIME's random masks, drawn in complementary
pairs, and a few more that SHAP needs; LIME fits its own rows with its kernel and ridge
regression. :func:`lime_weights` is LIME's own sampling and ``LimeBase`` fit, the
reference the tests and benchmarks compare the map with: with ``link="identity",
antithetic=False`` it gives the library's weights.

The map's defaults differ in two ways, both for the same reason. A confident model's
probability hardly moves until the decisive patch goes, so probability weights of every
other patch are sampling noise at a few hundred samples (rank correlation with a
5,000-sample LIME fit as low as −0.16 on a platelet, 0.25 on a basophil). Fitted to the
calibrated log-odds the response is close to additive, and drawing every random mask with
its complement cancels the pairwise interactions in the fit: on eight held-out cells, six
seeds each, 47 of 48 maps reached 0.9 against 25 of 48 (docs/explanations.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hematovision.explain.coalition_fits import KERNEL_WIDTH, lime_fit
from hematovision.explain.coalitions import (
    hidden_copy,
    log_odds,
    probabilities_of,
    scored_coalitions,
)
from hematovision.explain.explanation import signed_heatmap
from hematovision.explain.superpixels import mean_colours
from hematovision.model.classifier import Classifier

__all__ = ["LimeSamples", "lime_masks", "lime_samples", "fit_lime", "lime_weights", "lime_map",
           "log_odds"]


def lime_masks(rng: np.random.RandomState, samples: int, count: int, antithetic: bool
               ) -> np.ndarray:
    """``(samples, count)`` 0/1 masks drawn as LIME draws them (each patch shown with
    probability ½), the first all ones; with ``antithetic`` each with its complement."""
    if antithetic:
        # Each mask with its complement (a fold-over design): both are draws of LIME's
        # distribution, and in the fit each pair cancels the pairwise interactions that
        # would otherwise leak into the patches' weights.
        half = rng.randint(0, 2, ((samples + 1) // 2, count))
        masks = np.concatenate([half, 1 - half])[:samples]
    else:
        masks = rng.randint(0, 2, (samples, count))
    masks[0, :] = 1  # LIME always includes the unperturbed image
    return masks


@dataclass(frozen=True)
class LimeSamples:
    """The perturbed copies' masks ``(n, superpixels)`` (1 = patch shown; the first row is
    the unperturbed image) and the model's logits and probabilities for them."""

    masks: np.ndarray
    logits: np.ndarray
    probabilities: np.ndarray


def lime_samples(model_input: np.ndarray, classifier: Classifier, segmentation: np.ndarray,
                 samples: int, seed: int = 0, antithetic: bool = False, batch_size: int = 32,
                 progress=None, hide: str = "mean") -> LimeSamples:
    """Score ``samples`` copies of the cell with random patches hidden: by LIME's default,
    each patch's own mean colour (``hide="mean"``), or blurred as the map hides them
    (``"blur"``)."""
    masks = lime_masks(np.random.RandomState(seed), samples, int(segmentation.max()) + 1,
                   antithetic)
    hidden = (mean_colours(model_input, segmentation) if hide == "mean"
              else hidden_copy(model_input))
    logits = np.zeros((samples, len(classifier.classes)), np.float32)
    probabilities = np.zeros_like(logits)
    # Boolean masks and float32 images: the batches are built at the size the model reads.
    image, keep_masks = np.asarray(model_input, np.float32), masks.astype(bool)
    for start in range(0, samples, batch_size):
        keep = keep_masks[start : start + batch_size][:, segmentation][..., None]
        batch = np.where(keep, image[None], hidden[None])
        logits[start : start + batch_size], probabilities[start : start + batch_size] = \
            classifier.forward(batch, batch_size)
        if progress is not None:
            progress(min(1.0, (start + batch_size) / samples))
    return LimeSamples(masks, logits, probabilities)


def fit_lime(samples: LimeSamples, class_index: int, link: str = "identity",
             temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """LIME's kernel-weighted ridge fit: one weight per superpixel, ``(n_superpixels,)``."""
    from lime.lime_base import LimeBase
    from sklearn.metrics import pairwise_distances

    masks = samples.masks
    distances = pairwise_distances(masks, masks[0:1], metric="cosine").ravel()

    def kernel(d):
        return np.sqrt(np.exp(-(d ** 2) / KERNEL_WIDTH ** 2))

    scores = (log_odds(samples.logits, temperature) if link == "logit"
              else samples.probabilities)
    base = LimeBase(kernel, random_state=np.random.RandomState(seed))
    _, ranked, _, _ = base.explain_instance_with_data(
        masks, scores, distances, class_index, num_features=masks.shape[1],
        feature_selection="none")
    weights = np.zeros(masks.shape[1], np.float64)
    for feature, weight in ranked:
        weights[feature] = weight
    return weights


def lime_weights(model_input: np.ndarray, classifier: Classifier, class_index: int,
                 segmentation: np.ndarray, samples: int, seed: int = 0, batch_size: int = 32,
                 progress=None, link: str = "identity", antithetic: bool = False,
                 hide: str = "mean") -> np.ndarray:
    """LIME's weight for each superpixel, ``(n_superpixels,)``.

    ``link="logit"`` fits the class's calibrated log-odds instead of its probability;
    ``antithetic`` pairs every random mask with its complement. Both defaults reproduce
    the library; the map uses both options (see the module's note).
    """
    scored = lime_samples(model_input, classifier, segmentation, samples, seed, antithetic,
                          batch_size, progress, hide)
    return fit_lime(scored, class_index, link, classifier.card.config.temperature, seed)


def lime_map(model_input, classifier, class_index, progress=None, samples=250, segments=12,
             compactness=10.0, seed=0, link="logit"):
    scored = scored_coalitions(model_input, classifier, samples, segments, compactness, seed,
                               progress)
    temperature = classifier.card.config.temperature
    scores = (log_odds(scored.logits, temperature) if link == "logit"
              else probabilities_of(scored.logits, temperature))[:, class_index]
    weights = lime_fit(scored, scores)
    return signed_heatmap(weights[scored.segmentation])
