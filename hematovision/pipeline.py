"""The tf.data pipelines that feed training: shuffling, augmentation, batching."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

__all__ = ["Augmentation", "augment", "training_dataset"]


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
