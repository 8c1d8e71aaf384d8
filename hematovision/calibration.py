"""Confidence calibration: temperature scaling and the expected calibration error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

__all__ = [
    "fit_temperature", "expected_calibration_error", "ReliabilityBin",
    "reliability_bins",
]


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the negative log-likelihood of ``softmax(logits / T)``.

    Guo et al. 2017, "On Calibration of Modern Neural Networks". Fit it on validation
    data, never on the test split.

    Args:
        logits: ``(n, classes)`` pre-softmax scores.
        labels: ``(n,)`` integer class indices.
    """
    if len(logits) == 0:
        raise ValueError("cannot fit a temperature on zero examples")

    def nll(log_t: float) -> float:
        scaled = log_softmax(logits / np.exp(log_t), axis=1)
        return -float(np.mean(scaled[np.arange(len(labels)), labels]))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    confidence: float  # mean top probability in the bin (nan when empty)
    accuracy: float  # share correct in the bin (nan when empty)


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
                     ) -> list[ReliabilityBin]:
    """Equal-width bins of top-class confidence, for ECE and the reliability diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    result = []
    for lower, upper in zip(edges[:-1], edges[1:]):
        inside = (confidence > lower) & (confidence <= upper)
        if lower == 0.0:
            inside |= confidence == 0.0
        count = int(inside.sum())
        result.append(ReliabilityBin(
            float(lower), float(upper), count,
            float(confidence[inside].mean()) if count else float("nan"),
            float(correct[inside].mean()) if count else float("nan"),
        ))
    return result


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = 15) -> float:
    """ECE (Naeini et al. 2015): the count-weighted gap between confidence and accuracy."""
    total = len(labels)
    if total == 0:
        return float("nan")
    return float(sum(
        b.count / total * abs(b.accuracy - b.confidence)
        for b in reliability_bins(probabilities, labels, bins) if b.count
    ))
