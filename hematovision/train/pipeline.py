"""The tf.data pipelines that feed training: shuffling, augmentation, batching."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

__all__ = ["Augmentation", "CAMERA_AUGMENTATION", "augment", "strong_colour", "colour_statistics",
           "colour_templates", "training_dataset", "balanced_training_dataset"]


@dataclass(frozen=True)
class Augmentation:
    """Random changes a cell image may undergo without changing its class.

    A cell under the microscope has no up or down, so all eight flips and quarter turns
    are equally real. The rest imitates what differs between laboratories: stain strength
    and hue (jittered in haematoxylin–eosin–DAB space, Tellez et al. 2019), gamma of the
    camera, focus (blur and over-sharpening), JPEG compression and framing (scale, shift).
    Setting a family's strength to 0 turns it off.
    """

    min_zoom: float = 0.85
    max_zoom: float = 1.2
    max_shift: float = 0.05
    brightness: float = 0.08
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.03
    stain: float = 0.05  # HED: each stain scaled by 1 ± stain and shifted by ± stain
    gamma: float = 0.2  # gamma drawn from [1 - gamma, 1 + gamma]
    focus: float = 0.7  # mix of a blurred copy: -focus (sharpen) … +focus (blur)
    min_jpeg_quality: int = 50  # 100 turns JPEG artefacts off
    # What differs between cameras rather than stains (all off by default; see
    # CAMERA_AUGMENTATION): a lower-resolution sensor, the white balance, and vignetting.
    min_resolution: float = 1.0  # down-sampled to this share of the side, then back up
    white_balance: float = 0.0  # each channel's gain drawn from 1 ± white_balance
    vignetting: float = 0.0  # corners darkened by up to this share
    # Chance that a picture takes the colour statistics of another training picture (off by
    # default): each YUV channel's mean and spread, as in RandStainNA (Shen et al. 2022), so
    # a laboratory's overall stain and light are no evidence for a class.
    colour_transfer: float = 0.0
    # Chance that only a box around the cell is kept and the rest filled with the colour of
    # the box's edge (off by default): what framing makes of a cell cropped tightly to its
    # outline, as detectors and smear-photo sets such as BCCD cut them.
    tight_crop: float = 0.0
    # Chance that a picture loses its colour (off by default), so that shape and texture
    # carry a class where a stain of another laboratory changes every hue.
    grey: float = 0.0


CAMERA_AUGMENTATION = Augmentation(min_resolution=0.35, white_balance=0.12, vignetting=0.3)
"""The default changes plus a smartphone camera's: resolution loss (a cell crop of a
phone photo has a third of a CellaVision crop's pixels), white balance and vignetting."""


def strong_colour(settings: Augmentation) -> Augmentation:
    """``settings`` with colour changed as far as between the stains of different
    laboratories: stain and hue jitter as Tellez et al. (2019) found best across centres
    ("HED-strong", "HSV-strong"), stronger saturation and contrast, and one picture in ten
    grey. A rapid stain on another microscope moves every hue further than the default's
    light jitter, which imitates one hospital's day-to-day drift."""
    return replace(settings, stain=0.15, hue=0.08, saturation=0.35, contrast=0.25,
                   brightness=0.12, grey=0.1)


# Ruifrok & Johnston's stain vectors, as in skimage.color.rgb_from_hed.
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_RGB_FROM_HED = _RGB_FROM_HED / np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)
_RGB_FROM_HED[2] = np.cross(_RGB_FROM_HED[0], _RGB_FROM_HED[1])
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED)


def _jitter_stain(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Scale and shift each stain's optical density (image in 0–1)."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    density = -tf.math.log(tf.clip_by_value(image, 1e-3, 1.0))
    stains = tf.tensordot(density, tf.constant(_HED_FROM_RGB, tf.float32), 1)
    scale = tf.random.stateless_uniform([3], seeds[0], 1 - strength, 1 + strength)
    shift = tf.random.stateless_uniform([3], seeds[1], -strength, strength)
    density = tf.tensordot(stains * scale + shift, tf.constant(_RGB_FROM_HED, tf.float32), 1)
    return tf.exp(-tf.maximum(density, 0.0))


def _change_focus(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Blend with a blurred copy: positive amounts blur, negative ones sharpen (unsharp mask)."""
    amount = tf.random.stateless_uniform([], seed, -strength, strength)
    taps = tf.constant([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    # Separable binomial blur: two 1-D passes cost a fifth of one 5×5 pass.
    rows = tf.tile(tf.reshape(taps, [5, 1, 1, 1]), [1, 1, 3, 1])
    cols = tf.tile(tf.reshape(taps, [1, 5, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(image[None], rows, [1, 1, 1, 1], "SAME")
    blurred = tf.nn.depthwise_conv2d(blurred, cols, [1, 1, 1, 1], "SAME")[0]
    return image + amount * (blurred - image)


def _lose_resolution(image: tf.Tensor, seed: tf.Tensor, smallest: float) -> tf.Tensor:
    """Down-sample to a random share of the side in [smallest, 1], then back up."""
    size = tf.shape(image)[0:2]
    share = tf.random.stateless_uniform([], seed, smallest, 1.0)
    small = tf.maximum(tf.cast(tf.cast(size, tf.float32) * share, tf.int32), 8)
    image = tf.image.resize(image, small, method="area", antialias=True)
    return tf.image.resize(image, size, method="bilinear")


def _white_balance_and_vignette(image: tf.Tensor, seed: tf.Tensor, balance: float,
                                vignetting: float) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    gains = tf.random.stateless_uniform([3], seeds[0], 1 - balance, 1 + balance)
    image = image * gains / tf.reduce_max(gains)
    if vignetting > 0:
        size = tf.shape(image)[0:2]
        rows = tf.linspace(-1.0, 1.0, size[0])[:, None]
        cols = tf.linspace(-1.0, 1.0, size[1])[None, :]
        radius = (rows**2 + cols**2) / 2.0  # 0 in the centre, 1 in the corners
        amount = tf.random.stateless_uniform([], seeds[1], 0.0, vignetting)
        image = image * (1.0 - amount * radius)[:, :, None]
    return image


# How far each side of a tight crop's box lies from the centre (the nucleus), as a share of
# the framed picture's side, each side drawn on its own. Cut to their mask's bounding box
# with a 5 % margin and framed, zheng2018_d2's cells reach 0.20-0.37 from the nucleus
# (5th-90th centile, median 0.26): a nucleus sits off the cell's centre, near one edge.
_TIGHT_CROP_SIDES = (0.18, 0.38)


def _crop_tightly(image: tf.Tensor, seed: tf.Tensor, chance: float) -> tf.Tensor:
    """With probability ``chance``, keep a box around the centre of a framed cell and fill
    the rest with the median colour of the box's edge, as ``crop_square`` fills what lies
    past the edges of a tightly cropped picture."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    side = tf.shape(image)[0]
    reach = tf.random.stateless_uniform([4], seeds[0], *_TIGHT_CROP_SIDES)
    full = tf.cast(side, tf.float32)
    top, left = [tf.cast(tf.round((0.5 - reach[i]) * full), tf.int32) for i in (0, 1)]
    bottom, right = [tf.cast(tf.round((0.5 + reach[i]) * full), tf.int32) for i in (2, 3)]
    box = image[top:bottom, left:right]
    edge = tf.concat([box[0], box[-1], box[:, 0], box[:, -1]], axis=0)
    median = tf.sort(edge, axis=0)[tf.shape(edge)[0] // 2]
    rows, cols = tf.range(side)[:, None], tf.range(side)[None, :]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    cropped = tf.where(inside[:, :, None], image, median)
    return tf.where(tf.random.stateless_uniform([], seeds[1]) < chance, cropped, image)


def colour_statistics(images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Each picture's colour statistics, ``(n, 2, 3)``: the mean and the standard deviation
    of its Y, U and V channels (pictures in 0–255)."""
    rows = []
    for start in range(0, len(images), batch):
        yuv = tf.image.rgb_to_yuv(tf.cast(images[start:start + batch], tf.float32) / 255.0)
        mean, variance = tf.nn.moments(yuv, axes=[1, 2])
        rows.append(np.stack([mean.numpy(), np.sqrt(variance.numpy())], axis=1))
    return np.concatenate(rows).astype(np.float32)


def _transfer_colour(image: tf.Tensor, seed: tf.Tensor, templates: tf.Tensor,
                     template_logits: tf.Tensor, chance: float) -> tf.Tensor:
    """With probability ``chance``, give the image (0–1) a drawn template's YUV mean and
    spread; ``template_logits`` weigh the draw (e.g. equal shares per source)."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    which = tf.random.stateless_categorical(template_logits[None], 1, seeds[0])[0, 0]
    yuv = tf.image.rgb_to_yuv(image)
    mean, variance = tf.nn.moments(yuv, axes=[0, 1])
    target = templates[which]
    moved = (yuv - mean) / tf.sqrt(variance + 1e-6) * target[1] + target[0]
    moved = tf.clip_by_value(tf.image.yuv_to_rgb(moved), 0.0, 1.0)
    return tf.where(tf.random.stateless_uniform([], seeds[1]) < chance, moved, image)


def _move(image: tf.Tensor, seeds: tf.Tensor, settings: Augmentation) -> tf.Tensor:
    """The geometric changes: flips and turns, a tight crop, then scale and shift."""
    size = tf.shape(image)[0:2]
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    turns = tf.random.stateless_uniform([], seeds[1], 0, 4, dtype=tf.int32)
    image = tf.image.rot90(image, turns)
    if settings.tight_crop > 0:
        # Folded in, so every other family draws what it drew before this one existed.
        image = _crop_tightly(image, tf.random.experimental.stateless_fold_in(seeds[8], 2),
                              settings.tight_crop)
    zoom = tf.random.stateless_uniform([], seeds[2], settings.min_zoom, settings.max_zoom)
    shift = tf.random.stateless_uniform([2], seeds[3], -settings.max_shift, settings.max_shift)
    half = 0.5 / zoom
    centre = 0.5 + shift
    box = tf.stack([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
    # Beyond the edge, fill with the slide background rather than black.
    background = tf.reduce_mean(image[:4, :4], axis=[0, 1])
    shifted = tf.image.crop_and_resize(image[None] - background, box[None], [0], size)[0]
    return shifted + background


def _recolour(image: tf.Tensor, seeds: tf.Tensor, settings: Augmentation) -> tf.Tensor:
    """Brightness, contrast, saturation and hue (image in 0–1), then perhaps grey."""
    if settings.brightness > 0:
        image = tf.image.stateless_random_brightness(image, settings.brightness, seeds[4])
    if settings.contrast > 0:
        image = tf.image.stateless_random_contrast(
            image, 1 - settings.contrast, 1 + settings.contrast, seeds[5])
    if settings.saturation > 0:
        image = tf.image.stateless_random_saturation(
            image, 1 - settings.saturation, 1 + settings.saturation, seeds[6])
    if settings.hue > 0:
        image = tf.image.stateless_random_hue(image, settings.hue, seeds[7])
    image = tf.clip_by_value(image, 0.0, 1.0)
    if settings.grey > 0:
        # Folded in, so every other family draws what it drew before this one existed.
        draw = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(
            seeds[8], 3))
        grey = tf.tile(tf.image.rgb_to_grayscale(image), [1, 1, 3])
        image = tf.where(draw < settings.grey, grey, image)
    return image


def augment(image: tf.Tensor, seed: tf.Tensor, settings: Augmentation = Augmentation(),
            templates: tuple[tf.Tensor, tf.Tensor] | None = None) -> tf.Tensor:
    """Augment one ``(h, w, 3)`` float32 image (0–255) with a stateless ``seed`` of shape (2,).

    ``templates``: the colour statistics (:func:`colour_statistics`) and draw weights (as
    logits) that ``settings.colour_transfer`` draws from."""
    seeds = tf.random.experimental.stateless_split(seed, num=13)
    size = tf.shape(image)[0:2]
    image = _move(image, seeds, settings)
    image = image / 255.0
    if settings.colour_transfer > 0 and templates is not None:
        # Folded in, so every other family draws what it drew before this one existed.
        image = _transfer_colour(image, tf.random.experimental.stateless_fold_in(seeds[8], 1),
                                 *templates, settings.colour_transfer)
    camera = tf.random.experimental.stateless_split(seeds[8], num=2)  # seeds[8] was spare
    if settings.min_resolution < 1.0:
        image = _lose_resolution(image, camera[0], settings.min_resolution)
    if settings.white_balance > 0 or settings.vignetting > 0:
        image = _white_balance_and_vignette(image, camera[1], settings.white_balance,
                                            settings.vignetting)
    if settings.stain > 0:
        image = _jitter_stain(image, seeds[9], settings.stain)
    if settings.gamma > 0:
        gamma = tf.random.stateless_uniform([], seeds[10], 1 - settings.gamma,
                                            1 + settings.gamma)
        image = tf.clip_by_value(image, 0.0, 1.0) ** gamma
    if settings.focus > 0:
        image = _change_focus(image, seeds[11], settings.focus)
    image = _recolour(image, seeds, settings)
    if settings.min_jpeg_quality < 100:
        image = tf.image.stateless_random_jpeg_quality(
            image, settings.min_jpeg_quality, 100, seeds[12])
        image = tf.reshape(image, tf.concat([size, [3]], 0))
    return image * 255.0


def colour_templates(images: np.ndarray, sources: np.ndarray | None, settings: Augmentation):
    """The colour templates training pictures may take (:func:`augment`'s ``templates``):
    every picture's statistics, with draw weights under which each source is drawn as often
    as another; ``None`` when colour transfer is off."""
    if not settings.colour_transfer > 0:
        return None
    sources = np.zeros(len(images), dtype=np.int64) if sources is None else sources
    _, index, counts = np.unique(sources, return_inverse=True, return_counts=True)
    logits = -np.log(counts[index].astype(np.float32))
    return tf.constant(colour_statistics(images)), tf.constant(logits)


def _augmented_batches(data: tf.data.Dataset, seeds: tf.data.Dataset, num_classes: int,
                       batch_size: int, settings: Augmentation, templates=None
                       ) -> tf.data.Dataset:
    """(image, label) pairs, each augmented with its own seed pair, as one-hot batches."""
    data = tf.data.Dataset.zip((data, seeds))

    def _prepare(pair, seed_pair):
        image, label = pair
        image = augment(tf.cast(image, tf.float32), tf.cast(seed_pair, tf.int64), settings,
                        templates)
        return image, tf.one_hot(label, num_classes)

    data = data.map(_prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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
    return _augmented_batches(data, seeds, num_classes, batch_size, settings,
                              colour_templates(images, None, settings))


def balanced_training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    sources: np.ndarray,
    num_classes: int,
    batch_size: int,
    steps: int,
    seed: int = 0,
    settings: Augmentation = Augmentation(),
) -> tf.data.Dataset:
    """``steps`` augmented one-hot batches drawn balanced over classes and then sources
    (:func:`hematovision.train.sampling.balanced_indices`), for all epochs of a run."""
    from hematovision.train.sampling import balanced_indices

    order = balanced_indices(labels, sources, steps * batch_size, seed)
    labels = labels.astype(np.int32)

    def _cells():
        # A generator, not a gather in the graph: the images stay one numpy array, never
        # a graph constant (those are capped at 2 GB).
        for index in order:
            yield images[index], labels[index]

    data = tf.data.Dataset.from_generator(_cells, output_signature=(
        tf.TensorSpec(images.shape[1:], tf.as_dtype(images.dtype)),
        tf.TensorSpec([], tf.int32)))
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return _augmented_batches(data, seeds, num_classes, batch_size, settings,
                              colour_templates(images, sources, settings))
