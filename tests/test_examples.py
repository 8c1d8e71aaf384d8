"""Example cells for demonstrations: real images, never ones the model learned from."""

from __future__ import annotations

import shutil

import pytest

from hematovision.dataset import learned_from
from hematovision.examples import example_cells, example_classes

from .conftest import PBC, SHIPPED_MODEL


def test_examples_from_the_training_data_come_from_its_test_split(classifier):
    import hashlib

    seen = learned_from(SHIPPED_MODEL)
    cells = example_cells(classifier, PBC, "ig", count=12, seed=3)
    assert len(cells) == 12 and all(path.parent.name == "ig" for path in cells)
    assert not any(hashlib.sha256(path.read_bytes()).hexdigest() in seen for path in cells)
    assert cells == example_cells(classifier, PBC, "ig", count=12, seed=3)  # a lesson repeats


def test_only_folders_that_hold_images_are_offered_as_classes(classifier, tmp_path):
    (tmp_path / "neutrophil").mkdir()
    shutil.copy(next((PBC / "neutrophil").iterdir()), tmp_path / "neutrophil" / "a.jpg")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a cell")
    assert example_classes(tmp_path) == ["neutrophil"]
    assert example_cells(classifier, tmp_path, "neutrophil") == [tmp_path / "neutrophil" / "a.jpg"]
    with pytest.raises(ValueError, match="no example images of 'empty'"):
        example_cells(classifier, tmp_path, "empty")


def test_class_folders_match_without_regard_to_case(classifier, tmp_path):
    (tmp_path / "EOSINOPHIL").mkdir()  # the Kaggle layout's folder names
    shutil.copy(next((PBC / "eosinophil").iterdir()), tmp_path / "EOSINOPHIL" / "a.jpg")
    assert example_cells(classifier, tmp_path, "eosinophil") == [tmp_path / "EOSINOPHIL" / "a.jpg"]
