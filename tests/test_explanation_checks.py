"""The checks behind 'Can the maps be trusted?' on the shipped model."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hematovision.io.images import read_image
from hematovision.measure.explanation_checks import (
    deletion_insertion,
    pointing_game,
    randomised_copy,
    run_checks,
)

from .conftest import ZHENG


def test_pointing_game_reads_the_mask():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:8, 2:8] = 128
    mask[4:6, 4:6] = 255
    heat = np.zeros((10, 10))
    heat[5, 5] = 1
    assert pointing_game(heat, mask) == (True, True)
    heat[:] = 0
    heat[3, 3] = 1
    assert pointing_game(heat, mask) == (True, False)
    heat[:] = 0
    heat[0, 9] = 1
    assert pointing_game(heat, mask) == (False, False)


def test_pointing_game_scores_a_patch_by_its_share_on_the_cell():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:8, 2:8] = 128
    mask[4:6, 4:6] = 255
    heat = np.full((10, 10), 0.2)
    heat[4:6, 0:4] = 1.0  # a patch of 8 pixels: 4 on the cytoplasm, 4 on the glass
    assert pointing_game(heat, mask) == (0.5, 0.0)
    heat[4:6, 4:8] = 1.0  # now 16: 4 more on the nucleus, 4 on the cytoplasm
    assert pointing_game(heat, mask) == (0.75, 0.25)


def test_deletion_starts_at_the_prediction_and_insertion_ends_there(classifier, pbc_examples):
    x = classifier.prepare(read_image(pbc_examples[0][0]))
    probabilities = classifier.predict_proba(x[None])[0]
    index = int(np.argmax(probabilities))
    deletion, insertion = deletion_insertion(classifier, x, np.random.rand(224, 224), index)
    assert deletion[0] == pytest.approx(probabilities[index], abs=1e-5)
    assert insertion[-1] == pytest.approx(probabilities[index], abs=1e-5)
    assert len(deletion) == len(insertion) == 11


def test_randomised_copy_changes_the_model_but_not_the_original(classifier, pbc_examples):
    x = classifier.prepare(read_image(pbc_examples[0][0]))[None]
    before = classifier.predict_proba(x)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    randomised = randomised_copy(classifier)
    # Drawing from a seed leaves the caller's global generators where they were.
    assert random.getstate() == python_state
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    assert np.random.get_state()[2] == numpy_state[2]
    assert not np.allclose(randomised.predict_proba(x), before, atol=1e-3)
    assert np.array_equal(classifier.predict_proba(x), before)
    # The same seed draws the same weights, so the check reads alike on every run.
    again, other = randomised_copy(classifier, seed=0), randomised_copy(classifier, seed=1)
    assert np.array_equal(again.predict_proba(x), randomised.predict_proba(x))
    assert not np.allclose(other.predict_proba(x), randomised.predict_proba(x), atol=1e-4)


@pytest.mark.slow
def test_run_checks_reports_every_method_and_the_random_baseline(classifier, pbc_examples):
    rows = [line.split(",") for line in (ZHENG / "labels.csv").read_text().splitlines()[1:3]]
    masked = [(ZHENG / image, ZHENG / mask) for image, _, mask in rows]
    checks = run_checks(classifier, [p for p, _ in pbc_examples[:2]], masked,
                        randomisation_cells=1)
    methods = {"gradcam", "gradcampp", "lime", "shap"}
    assert set(checks["faithfulness"]) == methods | {"random"}
    assert set(checks["pointing_game"]["by_method"]) == methods | {"random"}
    assert set(checks["randomisation"]) == methods
    for row in checks["faithfulness"].values():
        assert len(row["deletion_curve"]) == 11 and 0 <= row["deletion_auc"] <= 1


@pytest.mark.slow
def test_without_masked_cells_the_pointing_game_is_not_measured_and_says_so(
        classifier, pbc_examples):
    from hematovision.report.model_report import check_verdicts, checks_table

    checks = run_checks(classifier, [p for p, _ in pbc_examples[:1]], [],
                        randomisation_cells=1)
    assert checks["pointing_game"]["cells"] == 0 and checks["pointing_game"]["by_method"] == {}
    row = checks_table(checks)[0]
    assert row["peak on cell"] == "–" and row["peak on nucleus"] == "–"
    verdict = " ".join(check_verdicts(checks).values())
    assert "was not measured" in verdict and "0 % of the time" not in verdict


@pytest.mark.parametrize("backbone,first", [("lite0", "block15_"), ("lite1", "block20_"),
                                            ("lite2", "block20_"), ("b0", "block7a_"),
                                            ("mobilenetv2", "block_16_")])
@pytest.mark.slow
def test_the_randomisation_check_scrambles_every_backbone_from_its_last_block(
        classifier, backbone, first):

    from hematovision.measure.explanation_checks import scrambled_layers
    from hematovision.model.classifier import Classifier
    from hematovision.model.network import build_classifier

    model = build_classifier(backbone, 3, 224, 0.2, 0, False)
    card = classifier.card.with_config(backbone=backbone, classes=("a", "b", "c"))
    layers = scrambled_layers(Classifier.from_keras(model, card))
    assert layers[0].startswith(first) and layers[-1] == "logits"
    assert len(layers) >= 4  # the block's convolutions and norms, the top, the head
