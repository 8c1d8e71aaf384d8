"""Decoded image arrays and the tf.data pipelines that feed training and prediction.

Every image is decoded once by :func:`hematovision.images.load_model_input` (the same
function the CLI and the dashboard use) and kept in memory as uint8: PBC at 224×224 is
about 2 GB, which avoids decoding each JPEG again in every epoch.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from hematovision.images import ImageError, load_model_input

__all__ = [
    "Augmentation", "augment", "batched_dataset", "decode_images", "run_in_batches",
    "training_dataset",
]

log = logging.getLogger(__name__)


def _decode_one(args: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    path, size = args
    try:
        return load_model_input(path, size=size).astype(np.uint8), None
    except ImageError as error:
        return None, str(error)


def decode_images(
    paths: list[Path], size: int = 224, workers: int | None = None, progress: bool = False
) -> tuple[np.ndarray, list[int], list[tuple[Path, str]]]:
    """Decode ``paths`` into a ``(n_ok, size, size, 3)`` uint8 array.

    Returns the array, the indices into ``paths`` that decoded, and ``(path, reason)`` for
    the files that did not (these are logged as a warning, never silently dropped).
    """
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = [(str(path), size) for path in paths]
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_decode_one, jobs, chunksize=32)
            results = _with_progress(results, len(jobs), progress, "decoding images")
            results = list(results)
    else:
        jobs = _with_progress(jobs, len(jobs), progress, "decoding images")
        results = [_decode_one(job) for job in jobs]
    arrays, kept, failed = [], [], []
    for index, (array, error) in enumerate(results):
        if array is None:
            failed.append((paths[index], error))
        else:
            arrays.append(array)
            kept.append(index)
    if failed:
        log.warning("could not decode %d files:\n%s", len(failed),
                    "\n".join(f"  {why}" for _, why in failed))
    stack = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    return stack, kept, failed


def _with_progress(iterable, total: int, enabled: bool, description: str, unit: str = "img"):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, unit=unit)


@dataclass(frozen=True)
class Augmentation:
    """Random changes a cell image may undergo without changing its class.

    A cell under the microscope has no up or down, so all eight flips and quarter turns
    are equally real; zoom, shift and colour ranges are kept small, as between slides of
    one lab. Simulating other labs' stains is a separate, stronger augmentation.
    """

    max_zoom: float = 0.15
    max_shift: float = 0.05
    brightness: float = 0.08
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.03


def augment(image: tf.Tensor, seed: tf.Tensor, settings: Augmentation = Augmentation()
            ) -> tf.Tensor:
    """Augment one ``(h, w, 3)`` float32 image (0–255) with a stateless ``seed`` of shape (2,)."""
    seeds = tf.random.experimental.stateless_split(seed, num=9)
    size = tf.shape(image)[0:2]
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    turns = tf.random.stateless_uniform([], seeds[1], 0, 4, dtype=tf.int32)
    image = tf.image.rot90(image, turns)
    zoom = tf.random.stateless_uniform([], seeds[2], 1.0, 1.0 + settings.max_zoom)
    shift = tf.random.stateless_uniform([2], seeds[3], -settings.max_shift, settings.max_shift)
    half = 0.5 / zoom
    centre = 0.5 + shift
    box = tf.stack([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
    # Beyond the edge, fill with the slide background rather than black.
    background = tf.reduce_mean(image[:4, :4], axis=[0, 1])
    shifted = tf.image.crop_and_resize(image[None] - background, box[None], [0], size)[0]
    image = shifted + background
    image = image / 255.0
    image = tf.image.stateless_random_brightness(image, settings.brightness, seeds[4])
    image = tf.image.stateless_random_contrast(
        image, 1 - settings.contrast, 1 + settings.contrast, seeds[5])
    image = tf.image.stateless_random_saturation(
        image, 1 - settings.saturation, 1 + settings.saturation, seeds[6])
    image = tf.image.stateless_random_hue(image, settings.hue, seeds[7])
    return tf.clip_by_value(image * 255.0, 0.0, 255.0)


def training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int = 32,
    seed: int = 0,
    settings: Augmentation = Augmentation(),
) -> tf.data.Dataset:
    """Shuffled, augmented, one-hot batches; reshuffled and re-augmented every epoch."""
    data = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    data = tf.data.Dataset.zip((data, seeds))

    def _prepare(pair, seed_pair):
        image, label = pair
        image = augment(tf.cast(image, tf.float32), tf.cast(seed_pair, tf.int64), settings)
        return image, tf.one_hot(label, num_classes)

    data = data.map(_prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def batched_dataset(images: np.ndarray, batch_size: int = 64) -> tf.data.Dataset:
    """Un-augmented float32 batches for prediction, in order."""
    data = tf.data.Dataset.from_tensor_slices(images)
    data = data.map(lambda image: tf.cast(image, tf.float32))
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def run_in_batches(function, images: np.ndarray, batch_size: int = 64,
                   progress: bool = False, description: str = "predicting") -> np.ndarray:
    """Apply ``function`` (a batch of float32 0–255 images → array) to uint8 ``images``."""
    outputs = []
    starts = range(0, len(images), batch_size)
    for start in _with_progress(starts, len(starts), progress, description, unit="batch"):
        batch = images[start : start + batch_size].astype(np.float32)
        outputs.append(np.asarray(function(tf.constant(batch))))
    return np.concatenate(outputs) if outputs else np.zeros((0,))
