"""Example cells for demonstrations, drawn from a dataset folder on this machine."""

from __future__ import annotations

import random
from collections.abc import Collection
from pathlib import Path

from hematovision.classifier import Classifier
from hematovision.dataset import learned_from, test_split_files
from hematovision.errors import InputError
from hematovision.images import IMAGE_SUFFIXES
from hematovision.torch_state_dict import sha256_of_file

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
    """``count`` random images of ``label`` that the model never learned from, leaving out
    files named in ``shown`` (a second click brings new cells).

    In the folder the model was trained on, a class of the model's comes from its held-out
    test split. Anywhere else, and for a class the model lacks, any image of the class
    folder serves except, by content, the model's training and validation cells and the
    cells an adapted model was adapted on.
    """
    folder = Path(folder)
    # A class the model lacks is in no split of its: no need to read and hash the split.
    own_class = label.lower() in classifier.classes
    test_files = test_split_files(classifier.model_dir, folder) if own_class else None
    if test_files is not None:
        pool = [path for path, name in test_files if name == label.lower()]
        if not pool:
            raise InputError(f"no held-out example images of {label!r} under {folder}")
    else:
        pool = _unlearned(classifier, folder, label)
    fresh = [path for path in pool if path.name not in shown]
    if not fresh:
        raise InputError(f"all {len(pool)} example images of {label!r} are shown already")
    return random.Random(seed).sample(fresh, min(count, len(fresh)))


def _unlearned(classifier: Classifier, folder: Path, label: str) -> list[Path]:
    # Class folders match without regard to case, as when training (Kaggle: EOSINOPHIL).
    matching = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == label.lower()]
    images = sorted(p for match in matching for p in match.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"no example images of {label!r} under {folder}")
    learned = learned_from(classifier.model_dir)
    pool = [path for path in images if _digest(path) not in learned]
    if not pool:
        raise InputError(f"every image of {label!r} under {folder} ({len(images)}) is a "
                         "cell the model learned from")
    return pool


def _digest(path: Path) -> str:
    try:
        return sha256_of_file(path)
    except OSError:  # unreadable: offered like any file, and reported when it is opened
        return ""
