"""The benchmarks keep working: what they look for on the page is what the page shows."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from hematovision.io.images import read_image
from hematovision.model.card import load_card

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


def test_the_load_test_recognises_every_kind_of_answer_the_page_heads_a_cell_with(
        classifier, pbc_examples):
    # The load test once looked for "neutrophil — 99.1 %" after the page had changed to
    # "neutrophil 99.1 %", and reported that no answer was ever shown.
    from load_test import ANSWER

    prediction = classifier.predict([read_image(pbc_examples[0][0])])[0]
    confident = replace(prediction, review_threshold=0.0)
    review = replace(prediction, review_threshold=1.01)
    unfamiliar = replace(prediction, distance=2.0, distance_threshold=1.0)
    for shown in (confident, review, unfamiliar):
        assert ANSWER.search(shown.headline), shown.headline
    assert unfamiliar.headline == "Unfamiliar"
    for not_an_answer in ("Review below this probability", "Classify cells",
                          "Unfamiliar: no white cell was found", f"Model {classifier.name}"):
        assert not ANSWER.search(not_an_answer)


@pytest.mark.data
def test_the_ensemble_benchmark_scores_the_cells_evaluate_scores():
    # A member's row must be what `evaluate` recorded in its card for the same set:
    # otherwise the ensemble's gain would be measured on other cells.
    result = subprocess.run([sys.executable, "benchmarks/ensemble.py", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    card = load_card(ROOT / "models" / "multi-lite0")
    zheng = next(e for e in card.results.external if e["name"] == "zheng2018_d2")
    row = next(line for line in result.stdout.splitlines() if "| multi-lite0 |" in line)
    balanced, common, restricted = (float(row.split("|")[i]) for i in (3, 4, 5))
    assert balanced == pytest.approx(zheng["metrics"]["balanced_accuracy"], abs=5e-4)
    assert restricted == pytest.approx(zheng["restricted"]["balanced_accuracy"], abs=5e-4)
    recorded = next(r for r in card.results.source_benchmark["rows"]
                    if r["model"] == "multi-lite0" and r["data"] == "zheng2018_d2")
    assert common == pytest.approx(recorded["balanced_common"], abs=5e-4)


@pytest.mark.data
def test_the_ensemble_benchmark_refuses_models_that_did_not_hold_out_the_same_cells():
    # pbc-lite0 never learned from Raabin-WBC and scores it whole; multi-lite0 scores only
    # its held-out split. Averaging them there would mix seen and unseen cells.
    result = subprocess.run([sys.executable, "benchmarks/ensemble.py", "--sets",
                             "raabin_wbc"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 2
    assert "the models score different cells" in result.stderr


@pytest.mark.slow
@pytest.mark.data  # the benchmark uploads held-out PBC cells
def test_the_load_test_runs_with_the_protocol_client():
    result = subprocess.run(
        [sys.executable, "benchmarks/load_test.py", "--client", "protocol", "--users", "2",
         "--rounds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "errors: 0" in result.stdout


@pytest.mark.slow
@pytest.mark.data  # every model on every dataset
def test_the_leave_one_source_out_benchmark_runs_quickly():
    result = subprocess.run([sys.executable, "benchmarks/sources.py", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| zheng2018_d2 | never trained on | 100 |" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script, measured", [
    # Every benchmark but the one timing the network on random pictures reads cells.
    pytest.param("adaptation_memory", "with remembered features", marks=pytest.mark.data),
    pytest.param("augmentation_ablation", "PBC test", marks=pytest.mark.data),
    pytest.param("batch", "same answers:", marks=pytest.mark.data),
    pytest.param("ensemble", "| ensemble (mean of probabilities) |", marks=pytest.mark.data),
    pytest.param("batchnorm_statistics", "alignment + last layer against the last layer",
                 marks=pytest.mark.data),
    pytest.param("feature_ceiling", "leave-one-out errors at C=0.1", marks=pytest.mark.data),
    pytest.param("tight_crops", "| multi-lite0 | zheng2018_d2 | 100 / 100 |",
                 marks=pytest.mark.data),
    pytest.param("low_resolution", "| multi-lite0 | zheng2018_d2 | 100 |",
                 marks=pytest.mark.data),
    ("inference", "largest probability difference"),
])
def test_every_benchmark_runs_in_its_quick_mode(script, measured):
    # A benchmark nobody runs breaks unnoticed when the package under it changes; --quick
    # runs the same path on a few cells and never saves. The line looked for is printed
    # only once the measurement has run.
    result = subprocess.run([sys.executable, f"benchmarks/{script}.py", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert measured in result.stdout, result.stdout


@pytest.mark.slow
@pytest.mark.data  # the benchmark uploads held-out PBC cells
def test_the_browser_explain_benchmark_runs_quickly():
    # A fresh server, Chromium, one cell explained: every figure the benchmark reports is
    # printed (their values are the benchmark's business, not the test's).
    result = subprocess.run([sys.executable, "benchmarks/explain_browser.py", "--quick"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for reported in ("launch → first prediction", "click → Grad-CAM on screen",
                     "click → whole panel", "server peak memory"):
        assert reported in result.stdout, result.stdout
