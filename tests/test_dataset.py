"""Loading folder-of-class-folder datasets and splitting them reproducibly."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hematovision.io.dataset import (
    SplitFractions,
    scan_folder,
    split_dataset,
    split_fingerprint,
)
from hematovision.io.dataset import test_split_files as split_test_files

from .conftest import KAGGLE, PBC, SHIPPED_MODEL, ZHENG


def _take(source: Path, count: int) -> list[Path]:
    return sorted(p for p in source.iterdir() if p.is_file())[:count]


@pytest.fixture
def small_pbc(tmp_path) -> Path:
    """A PBC-layout folder with a few real images per class, plus junk."""
    root = tmp_path / "pbc"
    for label in ("eosinophil", "lymphocyte", "neutrophil"):
        (root / label).mkdir(parents=True)
        for path in _take(PBC / label, 12):
            shutil.copy(path, root / label / path.name)
    (root / "neutrophil" / "notes.txt").write_text("not an image")
    (root / "lymphocyte" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    return root


def test_pbc_layout_counts_and_junk(small_pbc, caplog):
    dataset = scan_folder(small_pbc)
    assert dataset.classes == ("eosinophil", "lymphocyte", "neutrophil")
    assert dataset.counts() == {"eosinophil": 12, "lymphocyte": 12, "neutrophil": 12}
    skipped = {path.name for path, _ in dataset.skipped}
    assert skipped == {"notes.txt", "broken.jpg"}
    assert "broken.jpg" in caplog.text and "notes.txt" in caplog.text


def test_duplicates_are_kept_once_and_conflicts_dropped(small_pbc):
    eos = sorted((small_pbc / "eosinophil").iterdir())
    shutil.copy(eos[0], small_pbc / "eosinophil" / "copy_of_first.jpg")  # same label
    shutil.copy(eos[1], small_pbc / "neutrophil" / "mislabelled.jpg")  # two labels
    dataset = scan_folder(small_pbc)
    assert dataset.duplicates_removed == 1
    assert len(dataset.conflicting) == 1
    assert dataset.counts()["eosinophil"] == 11  # eos[1] left with its conflicting twin
    assert dataset.counts()["neutrophil"] == 12


def test_kaggle_layout_with_uppercase_classes_and_predefined_test():
    dataset = scan_folder(KAGGLE)
    assert dataset.classes == ("eosinophil", "lymphocyte", "monocyte", "neutrophil")
    assert all(count == 40 for count in dataset.counts().values())
    assignment = split_dataset(dataset)
    for item in dataset.items:
        in_test_folder = "TEST" in item.path.parts
        assert (assignment[item.sha256] == "test") == in_test_folder


def test_kaggle_copies_of_one_cell_share_a_split(tmp_path):
    root = tmp_path / "images" / "TRAIN" / "MONOCYTE"
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for cell in range(12):
        for copy in range(3):
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"_{copy}_{1000 + cell}.png")
    dataset = scan_folder(tmp_path)
    assignment = split_dataset(dataset)
    by_cell: dict[str, set] = {}
    for item in dataset.items:
        by_cell.setdefault(item.path.stem.split("_")[2], set()).add(assignment[item.sha256])
    assert all(len(splits) == 1 for splits in by_cell.values())
    assert {"train", "val", "test"} <= set().union(*by_cell.values())


def test_split_is_stratified_and_stable_across_locations(small_pbc, tmp_path):
    first = scan_folder(small_pbc)
    moved = shutil.copytree(small_pbc, tmp_path / "elsewhere" / "renamed")
    second = scan_folder(moved)
    a, b = split_dataset(first), split_dataset(second)
    assert a == b
    assert split_fingerprint(first, a) == split_fingerprint(second, b)
    per_class = Counter((item.label, a[item.sha256]) for item in first.items)
    for label in first.classes:
        assert per_class[(label, "train")] == 8
        assert per_class[(label, "val")] == 2
        assert per_class[(label, "test")] == 2


@pytest.mark.slow
def test_split_on_all_of_pbc_is_close_to_70_15_15():
    dataset = scan_folder(PBC, classes=("basophil",))
    assignment = split_dataset(dataset)
    shares = Counter(assignment.values())
    total = sum(shares.values())
    assert abs(shares["train"] / total - 0.70) < 0.01
    assert abs(shares["test"] / total - 0.15) < 0.01


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (-0.1, 0.6, 0.5)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="sum to 1"):
        SplitFractions(*fractions)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        scan_folder(tmp_path / "nope")


def test_a_wrong_data_path_says_what_is_there(tmp_path):
    picture = tmp_path / "cell.png"
    Image.new("RGB", (40, 40), "pink").save(picture)
    with pytest.raises(FileNotFoundError, match="is a file; give the folder of class folders"):
        scan_folder(picture)
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        shutil.copy(picture, tmp_path / "pets" / name / "x.png")
    with pytest.raises(FileNotFoundError,
                       match=r"of the classes lymphocyte, monocyte .*its folders: cat, dog"):
        scan_folder(tmp_path / "pets", ("monocyte", "lymphocyte"))


def _test_split_entries(count: int) -> list[dict]:
    split = json.loads((SHIPPED_MODEL / "split.json").read_text())
    return [entry for entry in split["files"] if entry["split"] == "test"][:count]


def test_a_folder_of_ones_own_cells_with_a_few_test_files_is_not_the_test_split(tmp_path):
    # Scoring such a folder as "the test split" would score five cells and replace the
    # model's test metrics with theirs; it is an external folder (the five are unseen).
    lab = tmp_path / "my-lab"
    for path in sorted((ZHENG / "images" / "lymphocyte").glob("*.png"))[:10]:
        (lab / "lymphocyte").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, lab / "lymphocyte" / path.name)
    for entry in _test_split_entries(5):
        (lab / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PBC / entry["path"], lab / entry["path"])
    assert split_test_files(SHIPPED_MODEL, lab) is None
    assert len(split_test_files(SHIPPED_MODEL, PBC)) == 1910


def test_a_file_at_a_split_path_with_other_content_is_not_taken(tmp_path, caplog):
    entries = _test_split_entries(3)
    for entry in entries:
        (tmp_path / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PBC / entry["path"], tmp_path / entry["path"])
    other = next((ZHENG / "images" / "lymphocyte").glob("*.png")).read_bytes()
    (tmp_path / entries[0]["path"]).write_bytes(other)
    model = tmp_path / "model"
    model.mkdir()
    (model / "split.json").write_text(json.dumps({"files": entries}))
    found = split_test_files(model, tmp_path)
    assert found == [(tmp_path / e["path"], e["label"]) for e in entries[1:]]
    assert "1 test files of the recorded split are missing or changed" in caplog.text
