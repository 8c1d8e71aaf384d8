"""Every kind of upload becomes a clean (224, 224, 3) input, or a clear ImageError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hematovision.io.images import (
    ImageError,
    ImageLimits,
    load_model_input,
    read_image,
    to_model_input,
)

from .conftest import PBC


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _cell_rgb(width=120, height=90) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _sixteen_bit() -> bytes:
    values = np.linspace(1000, 40000, 64 * 48).reshape(48, 64).astype(np.uint16)
    return _encode(Image.fromarray(values), "PNG")


def _exif_rotated() -> bytes:
    image = Image.fromarray(_cell_rgb(80, 40))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return _encode(image, "JPEG", exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.new("P", (30, 20), color=i) for i in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


GOOD = [
    ("rgb jpeg", lambda: _encode(Image.fromarray(_cell_rgb()), "JPEG"), (90, 120)),
    ("rgba png", lambda: _encode(Image.fromarray(_cell_rgb()).convert("RGBA"), "PNG"), (90, 120)),
    ("grayscale png", lambda: _encode(Image.fromarray(_cell_rgb()).convert("L"), "PNG"), (90, 120)),
    ("palette png", lambda: _encode(Image.fromarray(_cell_rgb()).convert("P"), "PNG"), (90, 120)),
    ("cmyk jpeg", lambda: _encode(Image.fromarray(_cell_rgb()).convert("CMYK"), "JPEG"), (90, 120)),
    ("16-bit png", _sixteen_bit, (48, 64)),
    ("bmp", lambda: _encode(Image.fromarray(_cell_rgb()), "BMP"), (90, 120)),
    ("tiff", lambda: _encode(Image.fromarray(_cell_rgb()), "TIFF"), (90, 120)),
    ("exif rotated", _exif_rotated, (80, 40)),
    ("animated gif", _animated_gif, (20, 30)),
]


@pytest.mark.parametrize("name,make,shape", GOOD, ids=[g[0] for g in GOOD])
def test_odd_modes_become_rgb_and_model_input(name, make, shape):
    image = read_image(make(), name=name)
    assert image.dtype == np.uint8 and image.shape == (*shape, 3)
    model_input = to_model_input(image)
    assert model_input.shape == (224, 224, 3) and model_input.dtype == np.float32
    assert 0 <= model_input.min() and model_input.max() <= 255


def test_sixteen_bit_uses_the_full_eight_bit_range():
    image = read_image(_sixteen_bit())
    assert image.min() == 0 and image.max() == 255


def _twelve_bit_colour(fmt: str) -> tuple[np.ndarray, bytes]:
    """A 12-bit camera's colour picture in a 16-bit file, as OpenCV and tifffile write it."""
    import cv2
    import tifffile

    eight = _cell_rgb(60, 40)
    deep = eight.astype(np.uint16) * 16  # 0–4080 of 0–65535
    if fmt == "TIFF":
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, deep)
        return eight, buffer.getvalue()
    return eight, cv2.imencode(".png", deep[..., ::-1])[1].tobytes()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_colour_keeps_its_picture(fmt):
    # Pillow opens these as 8-bit RGB from the high bytes alone: 0–15, a black picture.
    eight, data = _twelve_bit_colour(fmt)
    image = read_image(data)
    assert image.shape == eight.shape
    low, high = eight.min(), eight.max()
    expected = np.round((eight.astype(float) - low) / (high - low) * 255)
    assert np.abs(image - expected).max() <= 1


def test_one_nan_pixel_does_not_blank_a_float_picture():
    values = np.linspace(0.0, 1.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    values[3, 5] = np.nan
    image = read_image(_encode(Image.fromarray(values, "F"), "TIFF"))
    assert image.max() == 255 and len(np.unique(image)) > 200


def test_transparent_pixels_become_white():
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    image = read_image(_encode(Image.fromarray(rgba), "PNG"))
    assert (image == 255).all()


def _truncated() -> bytes:
    return _encode(Image.fromarray(_cell_rgb(300, 300)), "PNG")[:2000]


def _bomb() -> bytes:
    # A valid 1-bit PNG header claiming 20000 × 20000 pixels: refused before decoding.
    return _encode(Image.new("1", (20000, 20000)), "PNG")


BAD = [
    ("empty", lambda: b"", "empty"),
    ("text", lambda: b"hello, this is not an image", "not a readable image"),
    ("truncated", _truncated, "damaged or truncated"),
    ("too many pixels", _bomb, "400,000,000 pixels is more than the limit of 10,000,000"),
    # Past twice Pillow's own limit Pillow refuses first; the message is still ours.
    ("far too many pixels", lambda: _encode(Image.new("1", (14000, 14000)), "PNG"),
     "196,000,000 pixels is more than the limit of 10,000,000"),
]


@pytest.mark.parametrize("name,make,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_image_error_naming_the_file(name, make, message):
    with pytest.raises(ImageError) as caught:
        read_image(make(), name=f"upload-{name}.png", limits=ImageLimits(max_pixels=10_000_000))
    assert f"upload-{name}.png" in str(caught.value)
    assert message in str(caught.value)


def test_too_many_bytes_is_refused():
    data = _encode(Image.fromarray(_cell_rgb()), "PNG")
    with pytest.raises(ImageError, match="bytes"):
        read_image(data, limits=ImageLimits(max_bytes=len(data) - 1))


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="cannot be read"):
        read_image(tmp_path / "nope.png")


def test_non_square_images_are_padded_not_stretched():
    tall = np.zeros((200, 100, 3), dtype=np.uint8)
    tall[:, :] = (200, 180, 170)  # background colour
    tall[90:110, 40:60] = (80, 0, 120)  # a square "nucleus"
    result = to_model_input(tall)
    dark = np.argwhere(result[..., 1] < 60)
    height = dark[:, 0].max() - dark[:, 0].min() + 1
    width = dark[:, 1].max() - dark[:, 1].min() + 1
    assert abs(height - width) <= 2  # a square stays square
    assert np.allclose(result[0, 0], (200, 180, 170), atol=1)  # padding is background


def test_real_pbc_image_round_trip():
    path = next((PBC / "neutrophil").iterdir())
    model_input = load_model_input(path)
    assert model_input.shape == (224, 224, 3)
    assert 20 < model_input.mean() < 250


def test_a_long_thin_picture_is_shaped_without_a_full_size_square():
    # 200,000 × 1 pixels fit in a few hundred bytes; padded to a square of the long side
    # before resizing, they asked numpy for 112 GiB and took the whole batch down.
    import tracemalloc

    strip = np.zeros((1, 200_000, 3), dtype=np.uint8)
    strip[:, :100_000] = (200, 40, 40)
    data = _encode(Image.fromarray(strip), "PNG")
    assert len(data) < 5_000
    tracemalloc.start()
    try:
        model_input = load_model_input(data, name="strip.png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000
    assert model_input.shape == (224, 224, 3)
    middle = model_input[112]
    assert (middle[:100] == (200, 40, 40)).all() and (middle[-100:] == 0).all()
