"""LIME: which superpixels, when greyed out, change the class probability.

Ribeiro et al. 2016, "Why Should I Trust You?": Explaining the Predictions of Any
Classifier. The image is cut into superpixels (SLIC, Achanta et al. 2012); random subsets
are replaced by their mean colour, the model scores each variant, and a weighted ridge
regression (LIME's own ``LimeBase``) gives each superpixel a weight: positive where it
supports the class, negative where it argues against it.

``lime_image.LimeImageExplainer`` builds every perturbed image in a Python loop over
superpixels (seconds per cell); here the perturbations are built with one numpy ``where``
per batch and scored by the classifier seam in batches. The sampling, kernel and
regression are LIME's, so the weights match the library's for the same samples.
"""

from __future__ import annotations

import numpy as np
from lime.lime_base import LimeBase
from skimage.segmentation import slic
from sklearn.metrics import pairwise_distances

from hematovision.classifier import Classifier
from hematovision.explainers import Explainer, register

__all__ = ["segment_cell", "lime_weights", "lime_map"]

KERNEL_WIDTH = 0.25  # LIME's default for images


def segment_cell(model_input: np.ndarray, segments: int = 40, compactness: float = 10.0
                 ) -> np.ndarray:
    """SLIC superpixels of the ``(size, size, 3)`` 0–255 input; ``(size, size)`` int labels
    from 0. About 40 superpixels resolve nucleus lobes, cytoplasm and background."""
    return slic(model_input / 255.0, n_segments=segments, compactness=compactness, sigma=1.0,
                start_label=0)


def _mean_colours(model_input: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    # LIME's default hide colour: each superpixel replaced by its own mean colour.
    count = segmentation.max() + 1
    flat = segmentation.ravel()
    sums = np.stack([np.bincount(flat, model_input[..., c].ravel(), count) for c in range(3)], 1)
    means = sums / np.maximum(np.bincount(flat, minlength=count), 1)[:, None]
    return means[segmentation].astype(np.float32)


def lime_weights(model_input: np.ndarray, classifier: Classifier, class_index: int,
                 segmentation: np.ndarray, samples: int, seed: int = 0, batch_size: int = 32,
                 progress=None) -> np.ndarray:
    """LIME's weight for each superpixel, ``(n_superpixels,)``."""
    count = int(segmentation.max()) + 1
    rng = np.random.RandomState(seed)
    masks = rng.randint(0, 2, (samples, count))
    masks[0, :] = 1  # LIME always includes the unperturbed image
    hidden = _mean_colours(model_input, segmentation)
    probabilities = np.zeros((samples, len(classifier.classes)), np.float32)
    for start in range(0, samples, batch_size):
        keep = masks[start : start + batch_size][:, segmentation][..., None].astype(bool)
        batch = np.where(keep, model_input[None], hidden[None])
        probabilities[start : start + batch_size] = classifier.predict_proba(batch, batch_size)
        if progress is not None:
            progress(min(1.0, (start + batch_size) / samples))
    distances = pairwise_distances(masks, masks[0:1], metric="cosine").ravel() * 100

    def kernel(d):
        return np.sqrt(np.exp(-(d ** 2) / KERNEL_WIDTH ** 2))

    base = LimeBase(kernel, random_state=np.random.RandomState(seed))
    _, ranked, _, _ = base.explain_instance_with_data(
        masks, probabilities, distances, class_index, num_features=count,
        feature_selection="none")
    weights = np.zeros(count, np.float64)
    for feature, weight in ranked:
        weights[feature] = weight
    return weights


def lime_map(model_input, classifier, class_index, progress=None, samples=300, segments=40,
             compactness=10.0, seed=0):
    segmentation = segment_cell(model_input, segments, compactness)
    weights = lime_weights(model_input, classifier, class_index, segmentation, samples, seed,
                           progress=progress)
    scale = np.abs(weights).max() or 1.0
    signed = (weights / scale)[segmentation].astype(np.float32)
    return np.maximum(signed, 0.0), signed


register(Explainer(
    name="lime",
    title="LIME",
    caption=("The cell is cut into about 40 patches; the model scores hundreds of copies "
             "with random patches greyed out. Green patches raise the class probability "
             "when present, red ones lower it. Patch-shaped by design."),
    defaults={"samples": 300, "segments": 40, "compactness": 10.0, "seed": 0},
    compute=lime_map,
    reference="Ribeiro et al. 2016",
    signed_colormap="PiYG",
))
