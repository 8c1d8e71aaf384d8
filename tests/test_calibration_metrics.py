"""Temperature scaling, calibration error and the metrics report on known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from hematovision.measure.metrics import balanced_accuracy, classification_report
from hematovision.model.calibration import (
    FALLBACK_REVIEW_THRESHOLD,
    expected_calibration_error,
    fit_review_threshold,
    fit_temperature,
    reliability_bins,
)


def _sampled(temperature: float, n: int = 20000, classes: int = 5, seed: int = 0):
    """Labels drawn from softmax(logits / temperature): that temperature is the truth."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, classes))
    truth = softmax(logits / temperature, axis=1)
    labels = np.array([rng.choice(classes, p=p) for p in truth])
    return logits, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_true_temperature(temperature):
    logits, labels = _sampled(temperature)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.08)


def test_calibrated_probabilities_have_small_ece_and_overconfident_ones_large():
    logits, labels = _sampled(2.0)
    calibrated = softmax(logits / 2.0, axis=1)
    overconfident = softmax(logits, axis=1)
    assert expected_calibration_error(calibrated, labels) < 0.02
    assert expected_calibration_error(overconfident, labels) > 0.08


def test_reliability_bins_count_every_example():
    logits, labels = _sampled(1.0, n=500)
    bins = reliability_bins(softmax(logits, axis=1), labels, bins=15)
    assert len(bins) == 15 and sum(b.count for b in bins) == 500


def test_fit_temperature_refuses_empty_input():
    with pytest.raises(ValueError, match="zero"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


@pytest.mark.parametrize("catch", [0.5, 0.8, 1.0])
def test_review_threshold_is_the_lowest_that_catches_the_share_of_errors_asked_for(catch):
    logits, labels = _sampled(1.0, n=3000)
    probabilities = softmax(logits, axis=1)
    rule = fit_review_threshold(probabilities, labels, catch)
    confidence = probabilities.max(axis=1)
    wrong = probabilities.argmax(axis=1) != labels
    caught = np.sum(confidence[wrong] < rule.threshold)
    assert rule.errors == wrong.sum() and rule.caught == caught >= catch * wrong.sum()
    assert rule.flagged == np.sum(confidence < rule.threshold) and rule.cells == 3000
    # One step lower and it would miss the share: the threshold is no higher than needed.
    lower = np.max(confidence[wrong][confidence[wrong] < rule.threshold])
    assert np.sum(confidence[wrong] < lower) < catch * wrong.sum()
    assert f"{rule.caught} of {rule.errors} fall under it" in rule.describe()


def test_review_threshold_without_errors_falls_back_and_says_so():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    rule = fit_review_threshold(probabilities, np.array([0, 1]))
    assert rule.threshold == FALLBACK_REVIEW_THRESHOLD and rule.errors == 0
    assert "no wrong answers" in rule.describe()
    with pytest.raises(ValueError, match="catch"):
        fit_review_threshold(probabilities, np.array([0, 1]), catch=0.0)


@pytest.mark.parametrize("labels,predicted,expected", [
    ([0, 0, 0, 1], [0, 0, 0, 0], 0.5),
    ([0, 1, 2], [0, 1, 2], 1.0),
    ([0, 0, 1, 1], [1, 1, 0, 0], 0.0),
    # A class predicted but absent from the labels has no recall: left out, not a zero.
    ([0, 0, 1, 1], [2, 0, 1, 1], 0.75),
    ([], [], float("nan")),
])
def test_balanced_accuracy(labels, predicted, expected):
    value = balanced_accuracy(np.array(labels, int), np.array(predicted, int))
    assert value == pytest.approx(expected, nan_ok=True)


def test_report_intervals_contain_the_estimates_and_auc_is_perfect_when_separable():
    labels = np.repeat(np.arange(3), 40)
    probabilities = np.full((120, 3), 0.05)
    probabilities[np.arange(120), labels] = 0.9
    probabilities[:5] = [0.1, 0.8, 0.1]  # five class-0 cells called class 1
    report = classification_report(labels, probabilities, ["a", "b", "c"], bootstrap=200)
    low, high = report["balanced_accuracy_ci95"]
    assert low <= report["balanced_accuracy"] <= high
    assert report["confusion_matrix"][0][1] == 5
    assert report["per_class"]["a"]["recall"] == pytest.approx(35 / 40)
    assert 0.9 < report["macro_auc_ovr"] <= 1.0


def test_a_class_with_no_cells_has_no_recall_and_the_report_is_strict_json():
    labels = np.repeat([0, 1], 20)
    probabilities = np.full((40, 3), 0.1)
    probabilities[np.arange(40), labels] = 0.8
    probabilities[:3] = [0.1, 0.1, 0.8]  # three class-0 cells called the absent class
    report = classification_report(labels, probabilities, ["a", "b", "c"], bootstrap=50)
    absent = report["per_class"]["c"]
    assert absent["support"] == 0 and absent["precision"] == 0.0
    assert absent["recall"] is None and absent["f1"] is None
    assert absent["recall_ci95"] is None and absent["f1_ci95"] is None
    # NaN is not JSON; other tools (jq, a browser) must read the card.
    json.loads(json.dumps(report, allow_nan=False))
    # A set of one class has no AUC.
    one = classification_report(np.zeros(10, int), probabilities[:10], ["a", "b", "c"],
                                bootstrap=20)
    assert one["macro_auc_ovr"] is None
    json.loads(json.dumps(one, allow_nan=False))


def test_a_rarely_predicted_class_keeps_a_precision_interval_from_its_predictions():
    # Three cells of class b, all called b, nothing else called b: every resample that
    # predicts b at all is right, so the interval is [1, 1], not [0, 1].
    labels = np.array([0] * 40 + [1] * 3)
    probabilities = np.full((43, 3), 0.1)
    probabilities[np.arange(43), labels] = 0.8
    report = classification_report(labels, probabilities, ["a", "b", "c"], bootstrap=300)
    assert report["per_class"]["b"]["precision"] == 1.0
    assert report["per_class"]["b"]["precision_ci95"] == [1.0, 1.0]


def test_a_class_never_predicted_has_no_precision_and_the_table_says_so():
    from hematovision.measure.evaluation import format_report

    labels = np.repeat([0, 1], 10)
    probabilities = np.tile([0.8, 0.1, 0.1], (20, 1))  # everything called a
    report = classification_report(labels, probabilities, ["a", "b", "c"], bootstrap=50)
    assert report["per_class"]["b"]["precision"] is None
    assert report["per_class"]["b"]["recall"] == 0.0
    report.update(ece_before_temperature=0.1, ece_after_temperature=0.1)
    table = format_report({"model": "m", "data": "d", "kind": "external folder", "unreadable": [],
                           "classes": ["a", "b", "c"], "metrics": report})
    assert "b                 10          –   0.0000" in table


def test_no_resamples_is_refused():
    with pytest.raises(ValueError, match="bootstrap must be 1 or more"):
        classification_report(np.zeros(4, int), np.full((4, 2), 0.5), ["a", "b"], bootstrap=0)


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn: a class absent from y_true
def test_the_vectorised_bootstrap_gives_scikit_learn_s_metrics_for_every_resample():
    from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

    from hematovision.measure.metrics import bootstrap_metrics

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 60)  # class 3 of 4 never occurs; some resamples lack more
    predicted = np.where(rng.random(60) < 0.7, labels, rng.integers(0, 4, 60))
    boot = bootstrap_metrics(labels, predicted, 4, 25, seed=5)
    samples = np.random.default_rng(5).integers(0, 60, (25, 60))
    for row, sample in enumerate(samples):
        y, p = labels[sample], predicted[sample]
        precision, recall, f1, support = precision_recall_fscore_support(
            y, p, labels=range(4), zero_division=0)
        called = np.bincount(p, minlength=4)
        np.testing.assert_allclose(boot["precision"][row], np.where(called, precision, np.nan))
        np.testing.assert_allclose(boot["recall"][row], np.where(support, recall, np.nan))
        np.testing.assert_allclose(boot["f1"][row], np.where(support, f1, np.nan))
        assert boot["accuracy"][row] == pytest.approx(np.mean(y == p))
        assert boot["balanced_accuracy"][row] == pytest.approx(balanced_accuracy(y, p))
        assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, p))
