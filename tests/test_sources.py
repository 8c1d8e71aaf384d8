"""Training on several laboratories: one split per source, a source with only some of the
classes, per-source results in the card, and the leave-one-source-out table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hematovision.io.dataset import (
    recorded_sources,
    scan_folder,
    split_dataset,
    split_files,
)
from hematovision.io.dataset import test_split_files as held_out_files
from hematovision.model.card import load_card

from .conftest import DATASETS, PBC, ZHENG
from .test_cli import run_cli

RAABIN = DATASETS / "raabin_wbc"


def _linked_source(root: Path, source: Path, per_class: dict[str, int]) -> Path:
    """A small source of real cells: links to the first files of each class folder."""
    for label, count in per_class.items():
        (root / label).mkdir(parents=True)
        for path in sorted((source / label).iterdir())[:count]:
            (root / label / path.name).symlink_to(path)
    return root


@pytest.fixture(scope="module")
def two_labs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("labs")
    # The hospital holds all three classes; the phone lab no lymphocytes.
    hospital = _linked_source(base / "hospital", PBC,
                              {"eosinophil": 14, "lymphocyte": 14, "neutrophil": 14})
    phone = _linked_source(base / "phone", RAABIN, {"eosinophil": 14, "neutrophil": 14})
    return hospital, phone


@pytest.fixture(scope="module")
def two_source_model(two_labs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "two-labs"
    result = run_cli("train", "--data", *map(str, two_labs), "--out", str(out),
                     "--head-epochs", "2", "--epochs", "1", "--camera-augmentation",
                     "--mix-style", "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def test_each_source_is_split_on_its_own_as_if_alone(two_labs, two_source_model):
    split = json.loads((two_source_model / "split.json").read_text())
    assert [source["name"] for source in split["sources"]] == ["hospital", "phone"]
    assert recorded_sources(two_source_model) == ["hospital", "phone"]
    for folder in two_labs:
        alone = scan_folder(folder)
        expected = split_dataset(alone)
        recorded = {entry["sha256"]: entry["split"] for entry in split["files"]
                    if entry["source"] == folder.name}
        assert recorded == expected  # adding a source moves none of another's cells


def test_a_source_may_lack_a_class(two_source_model):
    card = load_card(two_source_model)
    assert card.config.classes == ("eosinophil", "lymphocyte", "neutrophil")
    phone = next(s for s in card.results.data["sources"] if s["name"] == "phone")
    assert phone["counts"]["train"]["lymphocyte"] == 0
    assert phone["counts"]["train"]["eosinophil"] > 0
    assert card.results.training["sampling"].startswith("balanced over classes")


def test_each_source_has_its_own_test_results(two_labs, two_source_model):
    card = load_card(two_source_model)
    hospital, phone = two_labs
    assert set(card.results.source_tests) == {"hospital", "phone"}
    phone_test = held_out_files(two_source_model, phone)
    assert card.results.source_tests["phone"]["n"] == len(phone_test)
    # The first source's test split is the model's own, as for a one-folder model.
    assert card.results.metrics["n"] == len(held_out_files(two_source_model, hospital))
    assert (two_source_model / "evaluation_test_phone.json").is_file()


def test_split_files_finds_only_the_source_in_the_folder_given(two_labs, two_source_model):
    hospital, phone = two_labs
    assert {path.parent.parent for path, _ in split_files(two_source_model, phone, "train")} \
        == {phone}
    assert split_files(two_source_model, ZHENG, "test") is None


def test_the_split_is_repeatable(two_labs, two_source_model, tmp_path):
    again = tmp_path / "again"
    result = run_cli("train", "--data", *map(str, two_labs), "--out", str(again),
                     "--head-epochs", "1", "--epochs", "0", "--quiet", "--no-evaluate")
    assert result.returncode == 0, result.stderr
    first = json.loads((two_source_model / "split.json").read_text())
    second = json.loads((again / "split.json").read_text())
    assert first["fingerprint"] == second["fingerprint"]
    assert first["files"] == second["files"]


def test_two_sources_of_one_name_are_refused(two_labs, tmp_path):
    hospital, _ = two_labs
    result = run_cli("train", "--data", str(hospital), str(hospital), "--out",
                     str(tmp_path / "m"), "--quiet")
    assert result.returncode != 0
    assert "named hospital" in result.stderr


def test_the_leave_one_source_out_table_goes_into_the_card(two_labs, two_source_model):
    from hematovision.measure.source_benchmark import (
        benchmark_rows,
        format_markdown,
        save_benchmark,
    )

    hospital, phone = two_labs
    rows = benchmark_rows([two_source_model], [hospital, phone, ZHENG], bootstrap=10)
    roles = {row["data"]: row["role"] for row in rows}
    assert roles == {"hospital": "held-out test split", "phone": "held-out test split",
                     "zheng2018_d2": "never trained on"}
    zheng = next(row for row in rows if row["data"] == "zheng2018_d2")
    assert zheng["n"] > 50  # the whole set (its three model classes), not a split
    assert 0.0 <= zheng["share_confident_wrong"] <= 1.0
    save_benchmark(two_source_model, rows, "test")
    card = load_card(two_source_model)
    assert card.results.source_benchmark["rows"] == json.loads(json.dumps(rows))
    assert "| zheng2018_d2 | never trained on |" in format_markdown(rows)


def test_style_mixing_trains_but_is_not_in_the_saved_model(two_source_model):
    """MixStyle acts only while training: the saved graph is the plain one, so loading it
    needs no custom layer, and the card says the run used it."""
    import keras

    card = load_card(two_source_model)
    assert card.results.training["config"]["mix_style"] is True
    model = keras.saving.load_model(two_source_model / "model.keras", compile=False,
                                    safe_mode=True)
    assert not [layer.name for layer in model.layers if "mixstyle" in layer.name]
    assert any(layer.name == "block7_add" or layer.name.startswith("block7_")
               for layer in model.layers)
