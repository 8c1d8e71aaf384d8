"""Turn any uploaded picture into the model's input.

This is the one place where images are decoded and shaped, shared by training, evaluation,
the command line and the dashboard, so a cell is seen identically everywhere. Colour
normalisation is *not* done here: it lives inside the model graph, which takes RGB values
in 0–255.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from hematovision.errors import HematoVisionError
from hematovision.io.cell_finder import (
    CellBox,
    crop_square,
    find_cell,
    overlap,
    whole_image_box,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "ImageLimits",
    "read_image",
    "picture_mask",
    "frame_image",
    "missing_cell",
    "to_model_input",
    "load_model_input",
    "to_image_grid",
    "table_thumbnail",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


class ImageError(HematoVisionError, ValueError):
    """An input that cannot be used as a cell image; the message names it and says why."""


@dataclass(frozen=True)
class ImageLimits:
    """Refuse inputs beyond these before decoding them (guards against decompression bombs)."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000


def _open(data: bytes, name: str, limits: ImageLimits) -> Image.Image:
    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"{name}: {len(data):,} bytes is larger than the limit of {limits.max_bytes:,} bytes"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as error:
        raise ImageError(f"{name}: not a readable image (content is no known image format)"
                         ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow's own guard, for pictures far past ours: say it in our words.
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise ImageError(f"{name}: {size} is more than the limit of {limits.max_pixels:,}"
                         ) from error
    except Exception as error:  # Pillow raises many types on hostile headers
        kind = type(error).__name__
        raise ImageError(f"{name}: not a readable image ({kind}: {error})") from error
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(
            f"{name}: {width}×{height} pixels is more than the limit of {limits.max_pixels:,}"
        )
    if width == 0 or height == 0:
        raise ImageError(f"{name}: the image has no pixels ({width}×{height})")
    return image


def _stretch(values: np.ndarray) -> np.ndarray:
    """Deep pixel values to 0–255 over the range used: 16-bit microscope exports rarely
    fill 0–65535 (a 12-bit camera fills a sixteenth), and one NaN must not blank the rest."""
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    low, high = float(finite.min()), float(finite.max())
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    return np.round(scaled).astype(np.uint8)


def _deep_colour(data: bytes, image: Image.Image) -> Image.Image:
    """A 16-bit colour picture at its full depth, when Pillow would keep only the high bytes
    (it opens 16-bit RGB PNG and TIFF as 8-bit RGB; a 12-bit camera's export turns black)."""
    if image.mode not in ("RGB", "RGBA") or not any(";16" in _raw_mode(tile[3])
                                                    for tile in image.tile):
        return image
    import cv2

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16 or pixels.ndim != 3:
        return image
    colour = _stretch(pixels[..., 2::-1])  # OpenCV's BGR
    if pixels.shape[2] == 4:
        alpha = (pixels[..., 3] // 257).astype(np.uint8)
        deep = Image.fromarray(np.dstack([colour, alpha]), "RGBA")
    else:
        deep = Image.fromarray(colour, "RGB")
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    if orientation:
        deep.getexif()[ExifTags.Base.Orientation] = orientation
    return deep


def _raw_mode(args) -> str:
    """The raw mode in a tile's decoder arguments: a string (PNG) or first of a tuple (TIFF)."""
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else ""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert every Pillow mode to 8-bit RGB; transparency is laid over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = Image.fromarray(_stretch(np.asarray(image)))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def _draft(image: Image.Image, shortest: int) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 of its size (in the DCT, several times faster)
    as long as its shorter side keeps at least ``shortest`` pixels; other formats as they
    are."""
    width, height = image.size
    if image.format != "JPEG" or min(width, height) < 2 * shortest:
        return
    factor = shortest / min(width, height)
    image.draft(None, (max(1, int(np.ceil(width * factor))),
                       max(1, int(np.ceil(height * factor)))))


def read_image(
    source: str | Path | bytes,
    name: str | None = None,
    limits: ImageLimits = ImageLimits(),
    shortest: int | None = None,
) -> np.ndarray:
    """Decode a file or bytes into an RGB array.

    EXIF orientation is applied; 16-bit, CMYK, palette, grayscale and transparent images
    are converted; of an animated or multi-page file only the first frame is used.

    Args:
        source: a path or the file's bytes.
        name: how to name the input in error messages (defaults to the path).
        limits: size limits checked before decoding.
        shortest: if given, a large JPEG may be decoded smaller (JPEG draft mode: 1/2, 1/4
            or 1/8 of its size) as long as its shorter side keeps this many pixels. A
            batch asks for twice the model's input side: the smallest frame is half the
            shorter side, so the network still gets a downscaled crop, never an enlarged
            one. The picture then has the smaller size; leave it out where pixels are
            shown or mapped at full resolution.

    Returns:
        ``(height, width, 3)`` uint8 array.

    Raises:
        ImageError: empty, truncated, too large, or not an image.
    """
    if isinstance(source, (str, Path)):
        name = name or str(source)
        try:
            size = Path(source).stat().st_size
            if size > limits.max_bytes:
                raise ImageError(
                    f"{name}: {size:,} bytes is larger than the limit of {limits.max_bytes:,} bytes"
                )
            data = Path(source).read_bytes()
        except OSError as error:
            raise ImageError(f"{name}: cannot be read ({error.strerror or error})") from error
    else:
        name = name or "image"
        data = bytes(source)
    image = _open(data, name, limits)
    try:
        image.seek(0)
        if shortest is not None:
            _draft(image, shortest)
        image = _deep_colour(data, image)
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
        array = np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except Exception as error:  # truncated or corrupt pixel data surfaces only here
        raise ImageError(f"{name}: the image data is damaged or truncated ({error})") from error
    return array


def frame_image(image: np.ndarray, framing: str = "whole") -> CellBox:
    """Where in ``image`` the model looks: the whole picture, or the square around its cell.

    Args:
        image: ``(height, width, 3)`` uint8 RGB.
        framing: ``"whole"`` (pad to a square) or ``"cell"`` (find the white cell and frame
            it at a fixed scale, see :mod:`hematovision.io.cell_finder`; when no cell is found
            the whole picture is used and the box says so).
    """
    _check_rgb(image)
    if framing == "whole":
        return whole_image_box(image.shape)
    if framing == "cell":
        return find_cell(image)
    raise ValueError(f"unknown framing {framing!r}; use 'whole' or 'cell'")


def missing_cell(box: CellBox, framing: str) -> str:
    """Why no cell was framed, when ``framing`` needs one; empty otherwise."""
    return box.reason if framing == "cell" and not box.found else ""


def to_model_input(image: np.ndarray, size: int = 224, framing: str = "whole",
                   box: CellBox | None = None) -> np.ndarray:
    """Shape an RGB array for the model: frame it in a square, then resize.

    Padding (with the median colour of the image's border, i.e. the slide background)
    keeps the cell's proportions; stretching would turn round cells into ovals.

    Args:
        image: ``(height, width, 3)`` uint8 RGB.
        size: the model's input side in pixels.
        framing: see :func:`frame_image`; the model card says which one a model expects.
        box: a frame already found for this image (saves finding it twice).

    Returns:
        ``(size, size, 3)`` float32 with values in 0–255.
    """
    box = box or frame_image(image, framing)
    return crop_square(image, box, size).astype(np.float32)


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(
            f"expected a (height, width, 3) uint8 RGB array, got {image.shape} {image.dtype}"
        )


def load_model_input(
    source: str | Path | bytes,
    size: int = 224,
    name: str | None = None,
    limits: ImageLimits = ImageLimits(),
    framing: str = "whole",
) -> np.ndarray:
    """``read_image`` then ``to_model_input``: a path or bytes to a ``(size, size, 3)`` array."""
    return to_model_input(read_image(source, name=name, limits=limits), size=size,
                          framing=framing)


def picture_mask(shape: tuple[int, int], box: CellBox | None, size: int) -> np.ndarray:
    """``(size, size)`` float32 on the model's square: 1 where it shows the picture, 0 on
    the padding added where the square (``box``) reaches past the picture's edges."""
    height, width = shape
    box = box or whole_image_box((height, width))
    centres = (np.arange(size) + 0.5) * (box.side / size)
    rows = (box.top + centres >= 0) & (box.top + centres < height)
    cols = (box.left + centres >= 0) & (box.left + centres < width)
    return (rows[:, None] & cols[None, :]).astype(np.float32)


def to_image_grid(values: np.ndarray, shape: tuple[int, int],
                  box: CellBox | None = None) -> np.ndarray:
    """Undo ``to_model_input``'s geometry for a map: model grid → the image's own pixels.

    Args:
        values: ``(size, size)`` float map on the model's input grid.
        shape: ``(height, width)`` of the original image.
        box: the frame the model saw (default: the whole picture, padded to a square).

    Returns:
        ``(height, width)`` float32, bilinearly resampled; outside the frame it is 0 (the
        model did not see those pixels).
    """
    height, width = shape
    box = box or whole_image_box((height, width))
    side = max(1, int(round(box.side)))
    grid = Image.fromarray(np.asarray(values, dtype=np.float32))
    if grid.size != (side, side):
        grid = grid.resize((side, side), Image.BILINEAR)
    result = np.zeros((height, width), dtype=np.float32)
    meeting = overlap(box, (height, width))
    if meeting is not None:
        result[meeting[1]] = np.asarray(grid, dtype=np.float32)[meeting[2]]
    return result


def table_thumbnail(image: np.ndarray, size: int = 96) -> np.ndarray:
    """A copy of an RGB uint8 picture at most ``size`` pixels a side, for tables: box-reduced
    by a whole factor, then bilinear the rest of the way (under 2×, where bilinear needs no
    smoothing first). Pillow's ``thumbnail`` took a twentieth of a batch's time per cell."""
    import cv2

    height, width = image.shape[:2]
    scale = size / max(height, width)
    if scale >= 1.0:
        return image
    factor = int(1 / scale)
    if factor > 1:
        image = np.asarray(Image.fromarray(image).reduce(factor))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, target, interpolation=cv2.INTER_LINEAR)
