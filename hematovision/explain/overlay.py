"""Heatmaps laid over cells, and the side-by-side explanation panel; pure numpy and Pillow."""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["COLORMAPS", "colorize", "overlay", "overlay_signed", "greyed", "colour_scale",
           "compose_panel", "to_png", "thumbnail_uri", "fitted_size"]

COLORMAPS = ("jet", "inferno", "viridis", "magma", "turbo")
DIVERGING = "RdBu_r"  # red: for the class, blue: against

# Diverging keys for LIME and SHAP, against ◂ neutral ▸ for. Matplotlib's own (PiYG,
# RdBu_r) end in dark green and dark red, which vanish over a dark purple nucleus; these
# end in light, saturated colours that stay distinct from it (a test measures the
# contrast on a basophil's nucleus).
SIGNED_COLOURS = {
    "pink-green": ((255, 110, 210), (80, 240, 80)),  # LIME
    "blue-orange": ((70, 190, 255), (255, 150, 30)),  # SHAP
}


@lru_cache(maxsize=16)
def _lookup_table(name: str) -> np.ndarray:
    if name in SIGNED_COLOURS:
        against, for_ = (np.array(c, np.float64) for c in SIGNED_COLOURS[name])
        neutral = np.full(3, 235.0)
        ramp = np.linspace(-1.0, 1.0, 256)[:, None]
        colours = np.where(ramp < 0, neutral + (against - neutral) * -ramp,
                           neutral + (for_ - neutral) * ramp)
        return np.round(colours).astype(np.uint8)
    from matplotlib import colormaps

    if name not in colormaps:
        raise ValueError(f"unknown colormap {name!r}; try one of {', '.join(COLORMAPS)}")
    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def colorize(values: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """``(h, w)`` values in [0, 1] → ``(h, w, 3)`` uint8 colours."""
    indices = np.clip(np.round(np.nan_to_num(values) * 255), 0, 255).astype(np.uint8)
    return _lookup_table(colormap)[indices]


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5,
            colormap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heatmap over an RGB uint8 image of the same height and width."""
    if image.shape[:2] != heatmap.shape:
        raise ValueError(f"heatmap {heatmap.shape} does not match image {image.shape[:2]}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    blended = (1 - opacity) * image.astype(np.float32) + opacity * colorize(heatmap, colormap)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def overlay_signed(image: np.ndarray, signed: np.ndarray, opacity: float = 0.5,
                   colormap: str = DIVERGING) -> np.ndarray:
    """Blend a [-1, 1] map: colour by sign, strength by magnitude, so neutral regions
    keep the cell visible."""
    if image.shape[:2] != signed.shape:
        raise ValueError(f"map {signed.shape} does not match image {image.shape[:2]}")
    colours = colorize((signed + 1.0) / 2.0, colormap).astype(np.float32)
    alpha = (opacity * np.abs(signed))[..., None]
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    # Patches that carry at least a quarter of the largest evidence get an outline in
    # their full colour, which stays legible over any stain at any opacity.
    strong = np.abs(signed) >= 0.25
    edge = np.zeros(signed.shape, bool)
    edge[1:] |= signed[1:] != signed[:-1]
    edge[:-1] |= signed[:-1] != signed[1:]
    edge[:, 1:] |= signed[:, 1:] != signed[:, :-1]
    edge[:, :-1] |= signed[:, :-1] != signed[:, 1:]
    outline = edge & strong & (opacity > 0)
    blended[outline] = colours[outline]
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def greyed(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 picture in shades of grey (Rec. 601 luma), for a map that must not be
    read as evidence: it keeps its shape, loses its colour key."""
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def colour_scale(colormap: str = "jet", signed: bool = False, width: int = 256,
                 height: int = 12) -> np.ndarray:
    """The key to a map's colours, left (none, or against) to right (strong evidence for),
    laid over mid-grey as the maps are laid over the cell: for a signed map the colour
    fades out towards the neutral middle, as it does on the cell."""
    ramp = np.linspace(-1.0, 1.0, width) if signed else np.linspace(0.0, 1.0, width)
    row = ramp[None, :].repeat(height, axis=0)
    grey = np.full((height, width, 3), 200, np.uint8)
    return overlay_signed(grey, row, 1.0, colormap) if signed else colorize(row, colormap)


@lru_cache(maxsize=None)
def _font(size: int):
    # Pillow's own font lacks the dashes, µ and × that titles and class names carry (they
    # came out as empty boxes on the saved panel); matplotlib, which LIME and SHAP bring,
    # ships DejaVu Sans, which has them.
    # Read from matplotlib's own folder: importing its font manager (and font cache) costs
    # more than a one-cell command spends on the cell.
    from importlib.util import find_spec

    spec = find_spec("matplotlib")
    if spec is not None and spec.origin:
        font = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        with contextlib.suppress(OSError):
            return ImageFont.truetype(str(font), size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def compose_panel(tiles: list[tuple[str, np.ndarray]], title: str = "", tile_size: int = 256,
                  keys: list[tuple[np.ndarray, str] | None] | None = None) -> np.ndarray:
    """Lay labelled RGB tiles side by side under a title (wrapped to the panel's width);
    ``keys`` puts a colour key and its words under the tiles that have one. Returns an RGB
    uint8 array."""
    margin, label_height, line_height = 8, 24, 24
    keys = keys or [None] * len(tiles)
    width = margin + len(tiles) * (tile_size + margin)
    lines = _wrap(title, _font(18), width - 2 * margin) if title else []
    title_height = len(lines) * line_height + (6 if lines else 0)
    key_height = 44 if any(keys) else 0
    height = title_height + label_height + tile_size + key_height + 2 * margin
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(lines):
        draw.text((margin, margin + number * line_height), line, fill="black", font=_font(18))
    for index, ((label, tile), key) in enumerate(zip(tiles, keys)):
        left = margin + index * (tile_size + margin)
        top = margin + title_height
        draw.text((left, top), label, fill="black", font=_font(14))
        picture = _fitted(tile, tile_size)
        canvas.paste(picture, (left + (tile_size - picture.width) // 2,
                               top + label_height + (tile_size - picture.height) // 2))
        if key is not None:
            scale, words = key
            below = top + label_height + tile_size + 6
            canvas.paste(Image.fromarray(scale).resize((tile_size, 12)), (left, below))
            draw.text((left, below + 16), words, fill="black", font=_font(13))
    return np.asarray(canvas)


def fitted_size(shape: tuple[int, ...], side: float) -> tuple[float, float]:
    """``(width, height)`` of a picture of ``shape`` fitted into a ``side`` square in its
    own proportions: stretched, a round cell becomes an oval, and a reader would take the
    shape for morphology (the panel here, the PDF report's tiles)."""
    height, width = shape[:2]
    scale = side / max(height, width)
    return width * scale, height * scale


def _fitted(tile: np.ndarray, side: int) -> Image.Image:
    width, height = fitted_size(tile.shape, side)
    return Image.fromarray(tile).resize((max(1, round(width)), max(1, round(height))),
                                        Image.BILINEAR)


def _wrap(text: str, font, width: int) -> list[str]:
    measure = ImageDraw.Draw(Image.new("1", (1, 1)))
    lines: list[str] = []
    for word in text.split():
        if lines and measure.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def to_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_uri(image: np.ndarray | None) -> str | None:
    """A small RGB image as a PNG data URI, for image columns in tables."""
    if image is None:
        return None
    import base64

    return "data:image/png;base64," + base64.b64encode(to_png(image)).decode("ascii")
