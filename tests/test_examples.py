"""Example cells for demonstrations: real images, never ones the model learned from."""

from __future__ import annotations

import shutil

import pytest

from hematovision.io.dataset import learned_from
from hematovision.report.examples import example_cells, example_classes

from .conftest import PBC, SHIPPED_MODEL, training_folder_with_a_class_of_its_own


def test_examples_from_the_training_data_come_from_its_test_split(classifier):
    import hashlib

    seen = learned_from(SHIPPED_MODEL)
    cells = example_cells(classifier, PBC, "ig", count=12, seed=3)
    assert len(cells) == 12 and all(path.parent.name == "ig" for path in cells)
    assert not any(hashlib.sha256(path.read_bytes()).hexdigest() in seen for path in cells)
    assert cells == example_cells(classifier, PBC, "ig", count=12, seed=3)  # a lesson repeats


def _unseen(label: str):
    """A cell of ``label`` from the shipped model's test split."""
    from hematovision.io.dataset import split_files

    return next(p for p, name in split_files(SHIPPED_MODEL, PBC, "test") if name == label)


def test_only_folders_that_hold_images_are_offered_as_classes(classifier, tmp_path):
    (tmp_path / "neutrophil").mkdir()
    shutil.copy(_unseen("neutrophil"), tmp_path / "neutrophil" / "a.jpg")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a cell")
    assert example_classes(tmp_path) == ["neutrophil"]
    assert example_cells(classifier, tmp_path, "neutrophil") == [tmp_path / "neutrophil" / "a.jpg"]
    with pytest.raises(ValueError, match="no example images of 'empty'"):
        example_cells(classifier, tmp_path, "empty")


def test_class_folders_match_without_regard_to_case(classifier, tmp_path):
    (tmp_path / "EOSINOPHIL").mkdir()  # the Kaggle layout's folder names
    shutil.copy(_unseen("eosinophil"), tmp_path / "EOSINOPHIL" / "a.jpg")
    assert example_cells(classifier, tmp_path, "eosinophil") == [tmp_path / "EOSINOPHIL" / "a.jpg"]


def test_a_class_the_model_lacks_offers_its_unlearned_cells(classifier, tmp_path):
    # In the training folder, beside the model's own classes, a class of the lab's own.
    training_folder_with_a_class_of_its_own(tmp_path, copied_from="train")
    with pytest.raises(ValueError, match="is a cell the model learned from"):
        example_cells(classifier, tmp_path, "smudge")
    shutil.copy(_unseen("lymphocyte"), tmp_path / "smudge" / "unseen.jpg")
    assert example_cells(classifier, tmp_path, "smudge", count=5) == [
        tmp_path / "smudge" / "unseen.jpg"]


@pytest.mark.slow
def test_an_adapted_model_never_shows_the_cells_it_was_adapted_on(tmp_path):
    import hashlib

    from hematovision.adapt.adaptation import adapt
    from hematovision.model.classifier import Classifier

    from .conftest import ZHENG

    lab = tmp_path / "lab"
    for label in ("lymphocyte", "neutrophil"):
        (lab / label).mkdir(parents=True)
        for path in sorted((ZHENG / "images" / label).glob("*.png"))[:6]:
            shutil.copy(path, lab / label / path.name)
    adapt(SHIPPED_MODEL, lab, tmp_path / "adapted", per_class=3)
    adapted = Classifier(tmp_path / "adapted")
    used = set(learned_from(adapted.model_dir)) - set(learned_from(SHIPPED_MODEL))
    assert len(used) == 6
    for label in ("lymphocyte", "neutrophil"):
        cells = example_cells(adapted, lab, label, count=6)
        assert len(cells) == 3
        assert not {hashlib.sha256(p.read_bytes()).hexdigest() for p in cells} & used


def test_examples_from_several_laboratories_take_turns(classifier):
    from .conftest import DATASETS

    raabin = DATASETS / "raabin_wbc"
    cells = example_cells(classifier, [PBC, raabin], "monocyte", count=4, seed=0)
    assert len(cells) == 4
    assert [path.parents[1] for path in cells] == [PBC, raabin, PBC, raabin]
    # A class only one laboratory has comes from that one.
    platelets = example_cells(classifier, [PBC, raabin], "platelet", count=3, seed=0)
    assert len(platelets) == 3 and all(path.parents[1] == PBC for path in platelets)
    assert "platelet" in example_classes([PBC, raabin])


def test_one_variable_moves_every_dataset(monkeypatch, tmp_path):
    """A copy of the project placed elsewhere needs only HEMATOVISION_DATASETS: the
    dashboard's example cells follow it (they once stayed behind, beside the project)."""
    from dashboard.state import examples_folders

    from .conftest import DATASETS

    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("pbc", "raabin_wbc"):
        (moved / name).symlink_to(DATASETS / name, target_is_directory=True)
    monkeypatch.delenv("HEMATOVISION_EXAMPLES", raising=False)
    monkeypatch.setenv("HEMATOVISION_DATASETS", str(moved))
    assert examples_folders() == [moved / "pbc", moved / "raabin_wbc"]
    monkeypatch.setenv("HEMATOVISION_DATASETS", str(tmp_path / "nowhere"))
    assert examples_folders() == []
