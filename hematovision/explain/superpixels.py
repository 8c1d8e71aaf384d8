"""Superpixels that follow the cell, and a hierarchy over them.

LIME and SHAP both explain a cell patch by patch. Patches cut along the stain (nucleus
lobes, cytoplasm, neighbouring red cells) answer the question a morphologist asks, and
leaving the empty glass as one patch keeps the number of features small, which is what
lets a few hundred model calls give a stable answer.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stained_mask", "segment_cell", "mean_colours", "segment_hierarchy"]


def stained_mask(model_input: np.ndarray) -> np.ndarray:
    """Pixels that differ clearly from the slide background (the median border colour):
    the cells, as opposed to the empty glass between them. Of the three-level Otsu split of
    the colour distance (glass, cytoplasm and red cells, nucleus) the lower threshold."""
    from skimage.filters import threshold_multiotsu

    border = np.concatenate([model_input[0], model_input[-1], model_input[:, 0],
                             model_input[:, -1]])
    distance = np.linalg.norm(model_input - np.median(border, axis=0), axis=-1)
    if distance.max() - distance.min() < 1e-6:
        return np.ones(distance.shape, bool)
    return distance > threshold_multiotsu(distance, classes=3)[0]


def segment_cell(model_input: np.ndarray, segments: int = 40, compactness: float = 10.0,
                 background: bool = True) -> np.ndarray:
    """SLIC superpixels (Achanta et al. 2012) of the ``(size, size, 3)`` 0–255 input;
    ``(size, size)`` int labels from 0.

    With ``background``, the empty glass is one superpixel (label 0) and the superpixels go
    where the structure is. Glass cut into many patches gives an explainer many features
    whose true weight is zero and whose estimated weights are pure sampling noise.
    """
    # Imported here: listing the explainers (a Grad-CAM command) need not load scikit-image.
    from skimage.segmentation import slic

    image = model_input / 255.0
    if background:
        mask = stained_mask(model_input)
        if mask.mean() > 0.02:
            labels = slic(image, n_segments=segments, compactness=compactness, sigma=1.0,
                          start_label=1, mask=mask)
            return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    return slic(image, n_segments=segments, compactness=compactness, sigma=1.0, start_label=0)


def mean_colours(model_input: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    """``(size, size, 3)`` float32: every pixel replaced by its superpixel's mean colour."""
    count = segmentation.max() + 1
    flat = segmentation.ravel()
    sums = np.stack([np.bincount(flat, model_input[..., c].ravel(), count) for c in range(3)], 1)
    means = sums / np.maximum(np.bincount(flat, minlength=count), 1)[:, None]
    return means[segmentation].astype(np.float32)


def segment_hierarchy(model_input: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    """A balanced binary tree over the superpixels, as a SciPy linkage matrix
    ``(n - 1, 4)``: [left, right, height, leaves] per merge, children before parents.

    Each group is halved across its main direction of variation in position and colour
    (CIELAB), so patches of the nucleus fall together, as do the cytoplasm's. Balanced, the
    tree is only log2(n) deep, and the partition explainer's cost grows with depth.
    """
    features = _segment_features(model_input, segmentation)
    count = len(features)
    merges: list[list[float]] = []

    def build(members: np.ndarray) -> tuple[int, int]:
        if len(members) == 1:
            return int(members[0]), 0
        centred = features[members] - features[members].mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        order = members[np.argsort(centred @ direction, kind="stable")]
        (left, left_height), (right, right_height) = (build(order[: len(order) // 2]),
                                                      build(order[len(order) // 2 :]))
        height = max(left_height, right_height) + 1
        merges.append([left, right, height, len(members)])
        return count + len(merges) - 1, height

    build(np.arange(count))
    return np.array(merges, np.float64).reshape(-1, 4)


def _segment_features(model_input: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    # Position and colour on comparable scales: both run over about 0–100.
    from skimage.color import rgb2lab

    count = segmentation.max() + 1
    flat = segmentation.ravel()
    size = np.maximum(np.bincount(flat, minlength=count), 1)
    rows, cols = np.mgrid[: segmentation.shape[0], : segmentation.shape[1]]
    lab = rgb2lab(np.clip(model_input, 0, 255) / 255.0)
    channels = (100 * rows / segmentation.shape[0], 100 * cols / segmentation.shape[1],
                lab[..., 0], lab[..., 1], lab[..., 2])
    return np.stack([np.bincount(flat, c.ravel(), count) / size for c in channels], axis=1)
