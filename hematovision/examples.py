"""Example cells for demonstrations, drawn from a dataset folder on this machine."""

from __future__ import annotations

import random
from collections.abc import Collection
from pathlib import Path

from hematovision.classifier import Classifier
from hematovision.dataset import test_split_files
from hematovision.images import IMAGE_SUFFIXES

__all__ = ["example_classes", "example_cells", "held_out"]


def example_classes(folder: str | Path) -> list[str]:
    """Class folders directly under ``folder`` that hold images."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()))


def held_out(classifier: Classifier, folder: str | Path) -> bool:
    """Whether :func:`example_cells` draws from the model's held-out test split in ``folder``."""
    return test_split_files(classifier.model_dir, Path(folder)) is not None


def example_cells(classifier: Classifier, folder: str | Path, label: str, count: int = 1,
                  seed: int | None = None, shown: Collection[str] = ()) -> list[Path]:
    """``count`` random images of ``label``, from the model's held-out test split when the
    folder is the one it was trained on (so a demonstration never shows a training cell),
    leaving out files named in ``shown`` (a second click brings new cells)."""
    folder = Path(folder)
    test_files = test_split_files(classifier.model_dir, folder)
    if test_files is not None:
        pool = [path for path, name in test_files if name == label.lower()]
    else:
        # Class folders match without regard to case, as when training (Kaggle: EOSINOPHIL).
        matching = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == label.lower()]
        pool = sorted(p for match in matching for p in match.iterdir()
                      if p.suffix.lower() in IMAGE_SUFFIXES)
    if not pool:
        if test_files is not None:
            raise ValueError(f"no held-out example images of {label!r} under {folder}")
        raise ValueError(f"no example images of {label!r} under {folder}")
    fresh = [path for path in pool if path.name not in shown]
    if not fresh:
        raise ValueError(f"all {len(pool)} example images of {label!r} are shown already")
    pool = fresh
    return random.Random(seed).sample(pool, min(count, len(pool)))
