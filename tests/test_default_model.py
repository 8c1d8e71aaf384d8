"""The default model learned from several laboratories: its card names each source, and
its test results come from the splits recorded beside it."""

from __future__ import annotations

import pytest

from hematovision.io.dataset import recorded_sources, split_files
from hematovision.model.card import load_card
from hematovision.model.classifier import Classifier
from hematovision.model.store import DEFAULT_MODEL, MODELS_DIR, available_models

from .conftest import DATASETS, SHIPPED_MODEL, strict_json

DEFAULT = MODELS_DIR / DEFAULT_MODEL


def test_the_default_model_learned_from_pbc_and_raabin_and_the_pbc_model_stays():
    assert DEFAULT.name == "multi-lite0"
    assert recorded_sources(DEFAULT) == ["pbc", "raabin_wbc"]
    card = load_card(DEFAULT)
    assert [source["name"] for source in card.results.data["sources"]] == ["pbc", "raabin_wbc"]
    assert {DEFAULT, SHIPPED_MODEL} <= set(available_models())


@pytest.mark.parametrize("source", ["pbc", "raabin_wbc"])
def test_each_sources_test_results_come_from_its_recorded_split(source):
    card = load_card(DEFAULT)
    test_files = split_files(DEFAULT, DATASETS / source, "test")
    assert test_files, f"the test split of {source} is not under {DATASETS / source}"
    assert card.results.source_tests[source]["n"] == len(test_files)
    report = strict_json(DEFAULT / ("evaluation.json" if source == "pbc"
                                    else f"evaluation_test_{source}.json"))
    recorded = {path.relative_to(DATASETS / source).as_posix() for path, _ in test_files}
    assert {row["path"] for row in report["predictions"]} == recorded
    # No cell of a test split was trained or validated on.
    learned = {path for which in ("train", "val")
               for path, _ in split_files(DEFAULT, DATASETS / source, which)}
    assert not learned & {path for path, _ in test_files}


def test_the_leave_one_source_out_table_is_in_the_card():
    card = load_card(DEFAULT)
    rows = card.results.source_benchmark["rows"]
    roles = {(row["model"], row["data"]): row["role"] for row in rows}
    assert roles[("multi-lite0", "zheng2018_d2")] == "never trained on"
    assert roles[("multi-lite0", "raabin_wbc")] == "held-out test split"
    assert roles[("pbc-lite0", "raabin_wbc")] == "never trained on"


def test_the_default_model_labels_real_raabin_test_cells():
    classifier = Classifier(DEFAULT)
    from hematovision.io.images import read_image

    files = split_files(DEFAULT, DATASETS / "raabin_wbc", "test")[::20]
    predictions = classifier.predict([read_image(path) for path, _ in files])
    right = sum(p.label == label for p, (_, label) in zip(predictions, files))
    assert right >= 0.8 * len(files)
