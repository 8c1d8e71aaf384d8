"""Find labelled cell images in a folder of class folders, and split them reproducibly.

Any layout where each image sits in a folder named after its class works, at any depth:
``pbc/neutrophil/*.jpg`` as well as Kaggle's
``dataset2-master/images/TRAIN/NEUTROPHIL/*.jpeg``. Class names are matched
case-insensitively. A folder called TRAIN/TEST/VAL above the class folders is honoured
as a predefined split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from hematovision.io.folders import files_under
from hematovision.io.images import IMAGE_SUFFIXES
from hematovision.model.card import CARD_FILE, load_card

__all__ = [
    "SPLIT_FILE",
    "rank",
    "ADAPTATION_FILE",
    "learned_from",
    "test_split_files",
    "split_files",
    "LabelledImage",
    "Dataset",
    "SplitFractions",
    "scan_folder",
    "split_dataset",
    "split_fingerprint",
    "recorded_sources",
    "source_name",
]

log = logging.getLogger(__name__)
SPLIT_FILE = "split.json"
ADAPTATION_FILE = "adaptation.json"  # an adapted model's record of the cells it used

_SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "test": "test", "testing": "test"}
# Kaggle "blood-cells" names augmented copies _<copy>_<cell id>.jpeg: copies of one cell
# must land in the same split, or validation and test leak.
_KAGGLE_COPY = re.compile(r"^_\d+_(\d+)$")


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str
    sha256: str
    group: str  # images that must stay in one split share a group
    predefined_split: str | None = None


@dataclass
class Dataset:
    root: Path
    classes: tuple[str, ...]
    items: list[LabelledImage]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    duplicates_removed: int = 0
    conflicting: list[tuple[Path, ...]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counter = Counter(item.label for item in self.items)
        return {name: counter.get(name, 0) for name in self.classes}


@dataclass(frozen=True)
class SplitFractions:
    train: float = 0.70
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self):
        total = self.train + self.val + self.test
        if min(self.train, self.val, self.test) < 0 or abs(total - 1) > 1e-6:
            raise ValueError(f"split fractions must be ≥ 0 and sum to 1, got {self}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_readable_image(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # Pillow raises many types for broken files
        return f"not a readable image ({type(error).__name__}: {error})"
    return None


def _predefined_split(path: Path, root: Path) -> str | None:
    for part in path.relative_to(root).parts[:-2]:
        if part.lower() in _SPLIT_FOLDERS:
            return _SPLIT_FOLDERS[part.lower()]
    return None


def _group_of(path: Path, digest: str) -> str:
    match = _KAGGLE_COPY.match(path.stem)
    return f"{path.parent.name.lower()}/{match.group(1)}" if match else digest


def _candidates(root: Path, wanted: set[str] | None):
    """Readable images grouped by content hash, and the files skipped with reasons."""
    skipped: list[tuple[Path, str]] = []
    by_digest: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    contents = files_under(root)
    skipped += [(path, "a broken link or unreadable folder") for path in contents.broken]
    for path in contents.files:
        label = path.parent.name.lower()
        if path.parent == root or label in _SPLIT_FOLDERS:
            continue
        if wanted is not None and label not in wanted:
            continue
        problem = ("not an image file" if path.suffix.lower() not in IMAGE_SUFFIXES
                   else _is_readable_image(path))
        if problem:
            skipped.append((path, problem))
        else:
            by_digest[_sha256(path)].append((path, label))
    return by_digest, skipped


def _deduplicate(by_digest: dict, root: Path):
    """One item per content; contents that carry two labels are dropped."""
    items, conflicting, removed = [], [], 0
    for digest, copies in by_digest.items():
        if len({label for _, label in copies}) > 1:
            conflicting.append(tuple(path for path, _ in copies))
            continue
        removed += len(copies) - 1
        path, label = copies[0]
        items.append(LabelledImage(path, label, digest, _group_of(path, digest),
                                   _predefined_split(path, root)))
    return items, conflicting, removed


def scan_folder(root: str | Path, classes: tuple[str, ...] | None = None) -> Dataset:
    """List the labelled images under ``root``.

    Non-images and unreadable files are skipped with a warning that lists them.
    Byte-identical files are kept once; a group of identical files that carries two
    labels is dropped entirely, because its true label is unknown.

    Args:
        root: the dataset folder.
        classes: restrict to these class names (case-insensitive); default: every class
            folder found, sorted.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no class folder with images.
    """
    root = Path(root)
    if root.is_file():
        raise FileNotFoundError(f"{root} is a file; give the folder of class folders")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    wanted = {name.lower() for name in classes} if classes else None
    by_digest, skipped = _candidates(root, wanted)
    items, conflicting, removed = _deduplicate(by_digest, root)
    items.sort(key=lambda item: str(item.path))
    found = tuple(sorted({item.label for item in items}))
    if classes:
        missing = sorted(wanted - set(found))
        if missing:
            log.warning("no images found for classes: %s", ", ".join(missing))
        found = tuple(name.lower() for name in classes)
    if not items:
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
        wanted_text = f" of the classes {', '.join(sorted(wanted))}" if wanted else ""
        raise FileNotFoundError(
            f"no labelled images{wanted_text} in class folders under {root} (its folders: "
            f"{', '.join(folders) or 'none'})")
    if skipped:
        log.warning("skipped %d files:\n%s", len(skipped),
                    "\n".join(f"  {path}: {why}" for path, why in skipped))
    if conflicting:
        log.warning("dropped %d groups of identical files with different labels:\n%s",
                    len(conflicting), "\n".join("  " + ", ".join(map(str, g)) for g in conflicting))
    return Dataset(root, found, items, skipped, removed, conflicting)


def rank(key: str) -> str:
    """A key's place in the deterministic order that splits and limits follow: a salted
    hash spreads groups evenly and does not depend on file order or machine."""
    return hashlib.sha256(("hematovision-split:" + key).encode()).hexdigest()


def split_dataset(dataset: Dataset, fractions: SplitFractions = SplitFractions()) -> dict[str, str]:
    """Assign every image to train, val or test; returns ``{sha256: split}``.

    Stratified per class and deterministic: groups are ordered by a hash of their key
    (the file's content hash, or Kaggle's cell id) and cut at the requested fractions.
    Predefined TRAIN/TEST folders are respected; the rest is divided in proportion.
    """
    assignment: dict[str, str] = {}
    by_class: dict[str, dict[str, list[LabelledImage]]] = defaultdict(lambda: defaultdict(list))
    for item in dataset.items:
        if item.predefined_split in ("test", "val"):
            assignment[item.sha256] = item.predefined_split
        else:
            by_class[item.label][item.group].append(item)
    has_test = any(v == "test" for v in assignment.values())
    has_val = any(v == "val" for v in assignment.values())
    shares = {"train": fractions.train, "val": 0.0 if has_val else fractions.val,
              "test": 0.0 if has_test else fractions.test}
    total = sum(shares.values())
    bounds = [("train", shares["train"] / total),
              ("val", (shares["train"] + shares["val"]) / total), ("test", 1.0)]
    for groups in by_class.values():
        ordered = sorted(groups.items(), key=lambda kv: rank(kv[0]))
        n_items = sum(len(members) for _, members in ordered)
        seen = 0
        for _, members in ordered:
            position = (seen + len(members) / 2) / n_items
            split = next(name for name, bound in bounds if position < bound or bound == 1.0)
            for item in members:
                assignment[item.sha256] = split
            seen += len(members)
    return assignment


def split_fingerprint(dataset: Dataset, assignment: dict[str, str]) -> str:
    """A short hash of (content, label, split) for every image: equal iff the split is."""
    lines = sorted(f"{item.sha256} {item.label} {assignment[item.sha256]}"
                   for item in dataset.items)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def source_name(data_dir: str | Path) -> str:
    """A source's name: its folder's name (``../shared/datasets/pbc`` → ``pbc``)."""
    return Path(data_dir).resolve().name


def learned_from(model_dir: str | Path) -> dict[str, str]:
    """The cells a model has learned from, by content: ``{sha256: where}`` for its
    training and validation split and, for an adapted model, the user's cells it was
    adapted on. Scoring a model on these would flatter it, whatever folder they sit in."""
    model_dir = Path(model_dir)
    seen: dict[str, str] = {}
    for entry in _recorded_split(model_dir):
        if entry["split"] in ("train", "val"):
            seen[entry["sha256"]] = f"its {entry['split']} split"
    adaptation = model_dir / ADAPTATION_FILE
    if adaptation.is_file():
        try:
            record = json.loads(adaptation.read_text(encoding="utf-8"))
            digests = record.get("used_sha256") or [
                _sha256(Path(path)) for path in record.get("used", []) if Path(path).is_file()]
        except (ValueError, AttributeError, TypeError) as error:
            raise ValueError(f"{adaptation} is damaged: {error}") from error
        seen.update(dict.fromkeys(digests, "the cells it was adapted on"))
    return seen


def _recorded_split(model_dir: Path) -> list[dict]:
    """The entries of the model's ``split.json``; none for a model that records no split.

    A model whose card records a split fingerprint must have its file: without it, its
    training cells would pass for unseen ones and its test split for another laboratory.
    """
    path = model_dir / SPLIT_FILE
    if not path.is_file():
        recorded = (model_dir / CARD_FILE).is_file() and load_card(model_dir).results.data.get(
            "split_fingerprint")
        if recorded:
            raise FileNotFoundError(f"{path} is missing; the model's card records a split, "
                                    "and without it its training cells cannot be told apart")
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is damaged: {error!r}") from error
    fields = {"split", "sha256", "path", "label"}
    if not isinstance(entries, list) or not all(
            isinstance(entry, dict) and fields <= entry.keys() for entry in entries):
        raise ValueError(f"{path} is damaged: each file needs {', '.join(sorted(fields))}")
    return entries


def test_split_files(model_dir: str | Path, data_dir: str | Path) -> list[tuple[Path, str]] | None:
    """The test files of the model's recorded split, found under ``data_dir``.

    Returns ``None`` when ``data_dir`` is not the data the model was trained on, i.e. an
    external folder (see ``split_files``).
    """
    return split_files(model_dir, data_dir, "test")


def split_files(model_dir: str | Path, data_dir: str | Path, which: str
                ) -> list[tuple[Path, str]] | None:
    """The files of one part (``"train"``, ``"val"`` or ``"test"``) of the model's recorded
    split, found under ``data_dir`` with the recorded content.

    ``None`` unless most of that part is there: a folder of one's own cells that happens to
    hold a few of the split's files is another folder, not the training data (scoring it
    as the test split would score those few and replace the model's test metrics).
    """
    data_dir = Path(data_dir)
    by_source: dict[str | None, list[dict]] = defaultdict(list)
    for entry in _recorded_split(Path(model_dir)):
        if entry["split"] == which:
            by_source[entry.get("source")].append(entry)
    # A model trained on several sources records each file's source: the folder given is
    # one of them, and only that source's part is looked for in it.
    for entries in by_source.values():
        found = [(data_dir / entry["path"], entry["label"]) for entry in entries
                 if (data_dir / entry["path"]).is_file()
                 and _sha256(data_dir / entry["path"]) == entry["sha256"]]
        if not entries or len(found) * 2 <= len(entries):
            continue
        if len(found) < len(entries):
            log.warning("%d %s files of the recorded split are missing or changed under %s",
                        len(entries) - len(found), which, data_dir)
        return found
    return None


def recorded_sources(model_dir: str | Path) -> list[str]:
    """The names of the sources a model was trained on, in training order (one unnamed
    source, ``[]``, for a model trained on one folder before sources were recorded)."""
    names: list[str] = []
    for entry in _recorded_split(Path(model_dir)):
        name = entry.get("source")
        if name and name not in names:
            names.append(name)
    return names
