"""Earlier cell finders, kept as the references the package's is measured against.

- ``reference_find_cell``: before it was made fast (commit 9557a01): float64
  ``skimage.color.rgb2hed`` and SciPy's binary morphology on the 256-pixel working copy.
- ``finder_66c5e47``: the first fast one (commit 66c5e47), the batch path's finder before
  its second speed-up: the haematoxylin from a float32 table by NumPy indexing, OpenCV's
  opening, closing and regions on the whole working copy.

Only tests and ``benchmarks/batch.py`` import them; the package uses
:func:`hematovision.io.cell_finder.find_cell`.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2hed
from skimage.filters import threshold_otsu
from skimage.morphology import disk

from hematovision.io import cell_finder as _finder
from hematovision.io.cell_finder import CellBox, whole_image_box

__all__ = ["reference_find_cell", "finder_66c5e47", "box_iou"]


def box_iou(first: CellBox, second: CellBox) -> float:
    """Intersection over union of two square frames (in the picture's pixels)."""
    top, left = max(first.top, second.top), max(first.left, second.left)
    bottom = min(first.top + first.side, second.top + second.side)
    right = min(first.left + first.side, second.left + second.side)
    inter = max(0.0, bottom - top) * max(0.0, right - left)
    union = first.side**2 + second.side**2 - inter
    return inter / union if union > 0 else 1.0


def reference_find_cell(image: np.ndarray) -> CellBox:
    """:func:`hematovision.io.cell_finder.find_cell` as of commit 9557a01."""
    height, width = image.shape[:2]
    scale = min(1.0, _finder._WORKING_SIDE / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    nucleus = _nucleus_mask(small)
    if isinstance(nucleus, str):
        return whole_image_box(image.shape, nucleus)
    rows, cols = np.nonzero(nucleus)
    top, bottom = rows.min() / scale, (rows.max() + 1) / scale
    left, right = cols.min() / scale, (cols.max() + 1) / scale
    side = max(bottom - top, right - left) * _finder.NUCLEUS_TO_FRAME
    side = max(side, _finder.MIN_FRAME_FRACTION * min(height, width))
    centre_y, centre_x = (top + bottom) / 2, (left + right) / 2
    return CellBox(centre_y - side / 2, centre_x - side / 2, side, True,
                   "stained nucleus found", (top, left, bottom, right), (height, width))


def _nucleus_mask(small: np.ndarray) -> np.ndarray | str:  # noqa: C901 (kept as it was)
    rgb = small.astype(np.int16)
    coloured = rgb.max(axis=2) - rgb.min(axis=2) >= _finder._MIN_CHROMA
    if coloured.mean() < _finder._MIN_AREA:
        return "no cell found: the picture has no stain colours"
    haematoxylin = rgb2hed(small)[..., 0]
    candidates = haematoxylin[coloured]
    if float(np.ptp(candidates)) == 0.0:
        return "no cell found: the picture has no stain contrast"
    threshold = threshold_otsu(candidates)
    mask = coloured & (haematoxylin > threshold)
    rest = coloured & ~mask
    contrast = float(haematoxylin[mask].mean() - haematoxylin[rest].mean()) if (
        mask.any() and rest.any()) else 0.0
    if contrast < _finder._MIN_CONTRAST:
        return "no cell found: no purple-stained nucleus stands out"
    radius = max(1, round(min(small.shape[:2]) * 0.015))
    mask = ndimage.binary_opening(mask, structure=disk(radius))
    mask = ndimage.binary_closing(mask, structure=disk(3 * radius))
    labels, count = ndimage.label(mask)
    if count == 0:
        return "no cell found: no stained region larger than debris"
    index = np.arange(1, count + 1)
    areas = ndimage.sum(mask, labels, index) / mask.size
    centres = np.array(ndimage.center_of_mass(mask, labels, index))
    middle = (np.array(small.shape[:2]) - 1) / 2
    spread = 0.3 * min(small.shape[:2])
    distance = np.sum((centres - middle) ** 2, axis=1) / spread**2
    score = np.where((areas >= _finder._MIN_AREA) & (areas <= _finder._MAX_AREA),
                     areas * np.exp(-distance / 2), 0.0)
    if not np.any(score > 0):
        return "no cell found: stained regions are too small or too large for a nucleus"
    for best in np.argsort(-score):
        if score[best] <= 0:
            break
        nucleus = labels == index[best]
        red, green, blue = rgb[nucleus].mean(axis=0)
        if blue - green >= _finder._MIN_BLUE_OVER_GREEN and red >= green:
            return nucleus
    return "no cell found: no stained region has the purple of a nucleus"


def finder_66c5e47(image: np.ndarray) -> CellBox:
    """:func:`hematovision.io.cell_finder.find_cell` as of commit 66c5e47."""
    height, width = image.shape[:2]
    scale = min(1.0, _finder._WORKING_SIDE / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    nucleus = _nucleus_box_66c5e47(small)
    if isinstance(nucleus, str):
        return whole_image_box(image.shape, nucleus)
    top, left, bottom, right = (value / scale for value in nucleus)
    side = max(bottom - top, right - left) * _finder.NUCLEUS_TO_FRAME
    side = max(side, _finder.MIN_FRAME_FRACTION * min(height, width))
    centre_y, centre_x = (top + bottom) / 2, (left + right) / 2
    return CellBox(centre_y - side / 2, centre_x - side / 2, side, True,
                   "stained nucleus found", (top, left, bottom, right), (height, width))


def _nucleus_box_66c5e47(small: np.ndarray) -> tuple[int, int, int, int] | str:
    red, green, blue = cv2.split(small)
    chroma = cv2.max(cv2.max(red, green), blue) - cv2.min(cv2.min(red, green), blue)
    coloured = chroma >= _finder._MIN_CHROMA
    if coloured.mean() < _finder._MIN_AREA:
        return "no cell found: the picture has no stain colours"
    table = np.stack(_finder._HAEMATOXYLIN_TABLES, axis=1)
    haematoxylin = table[small[..., 0], 0] + table[small[..., 1], 1]
    haematoxylin += table[small[..., 2], 2]
    np.maximum(haematoxylin, 0.0, out=haematoxylin)
    candidates = haematoxylin[coloured]
    if float(np.ptp(candidates)) == 0.0:
        return "no cell found: the picture has no stain contrast"
    threshold = _finder._otsu(candidates)
    above = candidates > threshold
    contrast = float(candidates[above].mean() - candidates[~above].mean()) if (
        above.any() and not above.all()) else 0.0
    if contrast < _finder._MIN_CONTRAST:
        return "no cell found: no purple-stained nucleus stands out"
    mask = coloured & (haematoxylin > threshold)
    radius = max(1, round(min(small.shape[:2]) * 0.015))
    labels, pixels, centres, boxes = _finder._regions(_finder._morphology(mask, radius))
    if len(pixels) == 0:
        return "no cell found: no stained region larger than debris"
    areas = pixels / mask.size
    middle = (np.array(small.shape[:2]) - 1) / 2
    spread = 0.3 * min(small.shape[:2])
    distance = np.sum((centres - middle) ** 2, axis=1) / spread**2
    score = np.where((areas >= _finder._MIN_AREA) & (areas <= _finder._MAX_AREA),
                     areas * np.exp(-distance / 2), 0.0)
    if not np.any(score > 0):
        return "no cell found: stained regions are too small or too large for a nucleus"
    for best in np.argsort(-score):
        if score[best] <= 0:
            break
        nucleus = (labels == best + 1).view(np.uint8)
        mean_red, mean_green, mean_blue, _ = cv2.mean(small, mask=nucleus)
        if mean_blue - mean_green >= _finder._MIN_BLUE_OVER_GREEN and mean_red >= mean_green:
            return tuple(int(value) for value in boxes[best])
    return "no cell found: no stained region has the purple of a nucleus"
