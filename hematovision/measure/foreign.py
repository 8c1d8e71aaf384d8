"""A set of images that are clearly not single stained white cells, made without downloads.

It measures how well a model says "I don't know": every image here should come out
Unfamiliar. The kinds follow what users actually upload by mistake or to test the tool:
natural photos and other pictures shipped with scikit-image, blank and noise images,
rendered text, cells blurred beyond recognition, and fields of red cells without a white
cell (cut from the corners of held-out PBC images, where no white cell lies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from hematovision.io.images import read_image

__all__ = ["ForeignImage", "foreign_images", "measure_foreign", "KINDS"]

KINDS = ("photo", "blank", "noise", "text", "blurred cell", "red cells only")

_SKIMAGE_PICTURES = (
    "astronaut", "binary_blobs", "brick", "camera", "cell", "checkerboard", "chelsea", "clock",
    "coffee", "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
    "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket",
    "text",
)
_TEXTS = ("HematoVision", "neutrophil 99 %", "Lorem ipsum dolor sit amet",
          "CBC: WBC 7.2 x10^9/L", "Figure 3. Peripheral blood smear", "0123456789",
          "Hello, world", "PATIENT ID 0001", "see attached image", "Wright-Giemsa stain")


@dataclass(frozen=True)
class ForeignImage:
    kind: str
    name: str
    image: np.ndarray  # (height, width, 3) uint8 RGB


def foreign_images(cell_files: list[Path], seed: int = 0, cells: int = 50
                   ) -> Iterator[ForeignImage]:
    """Yield the foreign set; ``cell_files`` are held-out PBC images (for blurred cells and
    red-cell fields), ``cells`` of them are used for each of those two kinds."""
    rng = np.random.default_rng(seed)
    yield from _photos()
    yield from _blanks()
    yield from _noise(rng)
    yield from _texts(rng)
    chosen = [cell_files[i] for i in
              sorted(rng.choice(len(cell_files), min(cells, len(cell_files)), replace=False))]
    for path in chosen:
        image = read_image(path)
        blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=12))
        yield ForeignImage("blurred cell", f"{path.name} blurred", np.asarray(blurred))
    for number, path in enumerate(chosen):
        image = read_image(path)
        # A centred white cell spans at most the middle 45 % of a PBC image; a corner
        # square of a quarter of the side holds red cells, platelets at most.
        side = min(image.shape[:2]) // 4
        corner = [(0, 0), (0, -side), (-side, 0), (-side, -side)][number % 4]
        top = corner[0] % image.shape[0]
        left = corner[1] % image.shape[1]
        yield ForeignImage("red cells only", f"{path.name} corner",
                           image[top : top + side, left : left + side].copy())


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    return np.asarray(Image.fromarray(array).convert("RGB"))


def _photos() -> Iterator[ForeignImage]:
    import skimage.data

    for name in _SKIMAGE_PICTURES:
        yield ForeignImage("photo", f"skimage {name}", _rgb(getattr(skimage.data, name)()))


def _blanks() -> Iterator[ForeignImage]:
    colours = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128),
               "slide background": (236, 214, 196), "purple": (110, 60, 150),
               "pink": (230, 170, 190)}
    for name, colour in colours.items():
        yield ForeignImage("blank", f"blank {name}",
                           np.full((360, 360, 3), colour, dtype=np.uint8))


def _noise(rng: np.random.Generator) -> Iterator[ForeignImage]:
    for number in range(4):
        yield ForeignImage("noise", f"uniform noise {number}",
                           rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))
        gaussian = rng.normal(128, 50, (300, 300, 3))
        yield ForeignImage("noise", f"gaussian noise {number}",
                           np.clip(gaussian, 0, 255).astype(np.uint8))
        coarse = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        yield ForeignImage("noise", f"coarse noise {number}",
                           np.asarray(Image.fromarray(coarse).resize((300, 300))))


def _texts(rng: np.random.Generator) -> Iterator[ForeignImage]:
    font = ImageFont.load_default(size=28)
    for text in _TEXTS:
        picture = Image.new("RGB", (360, 360), tuple(int(v) for v in rng.integers(200, 256, 3)))
        draw = ImageDraw.Draw(picture)
        colour = tuple(int(v) for v in rng.integers(0, 100, 3))
        for line in range(6):
            draw.text((10, 20 + 55 * line), text, fill=colour, font=font)
        yield ForeignImage("text", f"text '{text}'", np.asarray(picture))


def measure_foreign(classifier, cell_files: list[Path], seed: int = 0, cells: int = 50) -> dict:
    """Classify the foreign set; the share flagged Unfamiliar per kind and overall.

    Args:
        classifier: a :class:`hematovision.model.classifier.Classifier`.
        cell_files: held-out cells of the model's own data (its test split), never
            training cells, for the blurred-cell and red-cell kinds.
    """
    from hematovision.model.prediction import UNFAMILIAR

    rows = []
    for item in foreign_images(cell_files, seed=seed, cells=cells):
        prediction = classifier.predict([item.image])[0]
        rows.append({"kind": item.kind, "name": item.name, "status": prediction.status,
                     "label": prediction.label, "confidence": round(prediction.confidence, 4),
                     "reason": prediction.unfamiliar_reason})
    kinds = {}
    for kind in KINDS:
        chosen = [row for row in rows if row["kind"] == kind]
        if chosen:
            flagged = sum(row["status"] == UNFAMILIAR for row in chosen)
            kinds[kind] = {"n": len(chosen), "flagged": flagged,
                           "share_flagged": flagged / len(chosen)}
    flagged = sum(row["status"] == UNFAMILIAR for row in rows)
    return {"n": len(rows), "flagged": flagged, "share_flagged": flagged / max(len(rows), 1),
            "kinds": kinds, "images": rows}
