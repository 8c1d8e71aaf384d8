"""Random and mutated bytes never escape the validation path as anything but its errors."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hematovision.io.archive import ArchiveError, read_zip
from hematovision.io.cell_finder import find_cell
from hematovision.io.images import ImageError, ImageLimits, read_image, to_model_input

LIMITS = ImageLimits(max_bytes=2_000_000, max_pixels=4_000_000)


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    seeds = []
    for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("BMP", "RGB"), ("TIFF", "CMYK"),
                      ("GIF", "P"), ("PNG", "RGBA"), ("WEBP", "RGB")):
        buffer = io.BytesIO()
        Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


SEEDS = _seed_images()


@st.composite
def mutated_images(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 12))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


def _check(data: bytes) -> None:
    try:
        image = read_image(data, name="fuzz", limits=LIMITS)
    except ImageError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    # Whatever decodes must also survive the cell finder and framing (tiny, flat,
    # one-pixel-wide pictures included).
    framed = to_model_input(image, 32, framing="cell")
    assert framed.shape == (32, 32, 3)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_the_cell_finder_survives_any_small_picture(height, width, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    box = find_cell(image)
    assert box.side > 0 and box.reason
    assert to_model_input(image, 16, box=box).shape == (16, 16, 3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_images())
def test_mutated_images_only_raise_image_error(data):
    _check(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_image_error(data):
    _check(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_as_zip_only_raise_archive_error(data):
    try:
        list(read_zip(data))
    except ArchiveError:
        pass
