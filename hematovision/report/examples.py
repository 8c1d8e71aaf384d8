"""Example cells for demonstrations, drawn from a dataset folder on this machine."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from pathlib import Path

from hematovision.errors import InputError
from hematovision.io.dataset import learned_from, test_split_files
from hematovision.io.files import sha256_of_file
from hematovision.io.images import IMAGE_SUFFIXES
from hematovision.model.classifier import Classifier

__all__ = ["example_classes", "example_cells", "held_out"]


Folders = str | Path | Sequence[str | Path]


def _folders(folders: Folders) -> list[Path]:
    return [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]


def example_classes(folders: Folders) -> list[str]:
    """Class folders directly under any of ``folders`` that hold images (names as in the
    first folder that has them)."""
    found: dict[str, str] = {}
    for folder in _folders(folders):
        for p in folder.iterdir():
            if (p.is_dir() and not p.name.startswith(".")
                    and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())):
                found.setdefault(p.name.lower(), p.name)
    return sorted(found.values())


def held_out(classifier: Classifier, folders: Folders) -> bool:
    """Whether :func:`example_cells` draws from the model's held-out test split in (one of)
    ``folders``."""
    return any(test_split_files(classifier.model_dir, folder) is not None
               for folder in _folders(folders))


def example_cells(classifier: Classifier, folders: Folders, label: str, count: int = 1,
                  seed: int | None = None, shown: Collection[str] = ()) -> list[Path]:
    """``count`` random images of ``label`` that the model never learned from (see
    :func:`_example_cells_in`); from several folders (laboratories), taken from each in
    turn, so that four examples show more than one laboratory's camera."""
    chosen = _folders(folders)
    if len(chosen) == 1:
        return _example_cells_in(classifier, chosen[0], label, count, seed, shown)
    pools, problems = [], []
    for folder in chosen:
        try:
            pools.append(_example_cells_in(classifier, folder, label, count, seed, shown))
        except InputError as error:
            problems.append(str(error))
    if not pools:
        raise InputError("; ".join(problems))
    turns = [path for group in zip(*[p + [None] * (count - len(p)) for p in pools])
             for path in group if path is not None]
    return turns[:count]


def _example_cells_in(classifier: Classifier, folder: str | Path, label: str, count: int = 1,
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
