"""Decode many image files at once, in parallel, into model-ready uint8 arrays.

Every image goes through :func:`hematovision.io.images.load_model_input`, the same function the
CLI and the dashboard use. Training keeps the result in memory (PBC at 224×224 is about
2 GB), which avoids decoding each JPEG again in every epoch.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hematovision.io.cell_finder import CellBox
from hematovision.io.images import ImageError, frame_image, read_image, to_model_input

__all__ = ["decode_images", "run_in_batches"]

log = logging.getLogger(__name__)


def _decode_one(args: tuple[str, int, str]) -> tuple[np.ndarray | None, str, CellBox | None]:
    """The model input, the reason it could not be read, and the frame it was cut with."""
    path, size, framing = args
    try:
        image = read_image(path)
        box = frame_image(image, framing)
        array = to_model_input(image, size=size, box=box).astype(np.uint8)
    except ImageError as error:
        return None, str(error), None
    return array, "", box


def decode_images(
    paths: list[Path], size: int = 224, workers: int | None = None, progress: bool = False,
    framing: str = "whole",
) -> tuple[np.ndarray, list[int], list[tuple[Path, str]], list[CellBox]]:
    """Decode ``paths`` into a ``(n_ok, size, size, 3)`` uint8 array.

    Returns the array, the indices into ``paths`` that decoded, ``(path, reason)`` for
    the files that did not (these are logged as a warning, never silently dropped), and
    for each decoded image the frame it was cut with (which says whether a cell was found,
    see :func:`hematovision.io.images.missing_cell`, and where the picture lies in it).
    """
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = [(str(path), size, framing) for path in paths]
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_decode_one, jobs, chunksize=32)
            results = _with_progress(results, len(jobs), progress, "decoding images")
            results = list(results)
    else:
        jobs = _with_progress(jobs, len(jobs), progress, "decoding images")
        results = [_decode_one(job) for job in jobs]
    arrays, kept, failed, boxes = [], [], [], []
    for index, (array, error, box) in enumerate(results):
        if array is None:
            failed.append((paths[index], error))
        else:
            arrays.append(array)
            kept.append(index)
            boxes.append(box)
    if failed:
        log.warning("could not decode %d files:\n%s", len(failed),
                    "\n".join(f"  {why}" for _, why in failed))
    stack = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    return stack, kept, failed, boxes


def _with_progress(iterable, total: int, enabled: bool, description: str, unit: str = "img"):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, unit=unit)


def run_in_batches(function, images: np.ndarray, batch_size: int = 64,
                   progress: bool = False, description: str = "predicting") -> np.ndarray:
    """Apply ``function`` (a batch of float32 0–255 images → array) to uint8 ``images``."""
    outputs = []
    starts = range(0, len(images), batch_size)
    for start in _with_progress(starts, len(starts), progress, description, unit="batch"):
        batch = images[start : start + batch_size].astype(np.float32)
        outputs.append(np.asarray(function(batch)))
    return np.concatenate(outputs) if outputs else np.zeros((0,))
