"""How sharp a framed cell is: the focus check behind "out of focus" (Unfamiliar).

Measured as the picture itself shows the cell, not as the model input does: framing pads a
cell that sits near an edge and enlarges a small one, and both would fool a blur measure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hematovision.io.cell_finder import CellBox
from hematovision.io.images import picture_mask

__all__ = ["sharpness"]


def sharpness(batch: np.ndarray, boxes: Sequence[CellBox] | None = None) -> np.ndarray:
    """Focus of each ``(n, size, size, 3)`` model input: the variance of the Laplacian of
    its grey levels (Pech-Pacheco et al. 2000). A cell blurred beyond recognition scores
    near 0, a focused PBC cell 5–120.

    With ``boxes`` (the frames the inputs were cut with), focus is measured as the picture
    itself shows the cell: at the frame's own side where the input enlarged it, and over
    the picture's pixels only. Enlarging blurs, so a sharp cell from a camera with fewer
    pixels would otherwise read as out of focus; and the edge between a blurred picture and
    the flat padding around it is sharp, so a blurred cell would read as in focus.
    """
    # One picture at a time: a training set in float32 at once would take gigabytes.
    grey = (np.asarray(image, dtype=np.float32).mean(axis=-1) for image in batch)
    if boxes is None:
        return np.array([_laplacian_variance(image, None) for image in grey])
    if len(boxes) != len(batch):
        raise ValueError(f"{len(batch)} model inputs but {len(boxes)} frames")
    return np.array([_framed_focus(image, box) for image, box in zip(grey, boxes)])


def _framed_focus(grey: np.ndarray, box: CellBox) -> float:
    import cv2

    side = min(grey.shape[0], max(3, int(round(box.side))))
    if side < grey.shape[0]:
        grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA)
    inside = (picture_mask(box.picture, box, side) > 0 if box.picture is not None
              else np.ones((side, side), bool))
    if inside.all():
        return _laplacian_variance(grey, None)
    # Two pixels off the seam: resizing blends the picture into the padding there.
    core = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return _laplacian_variance(grey, core if core.any() else inside if inside.any() else None)


def _laplacian_variance(grey: np.ndarray, where: np.ndarray | None) -> float:
    # OpenCV's Laplacian with reflected borders is scipy.ndimage.laplace (equal within
    # float32 rounding, ~2e-7), without SciPy's import, slower than the cell's whole answer.
    import cv2

    laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)
    return float((laplacian if where is None else laplacian[where]).var())
