"""Classification metrics with bootstrap confidence intervals."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

__all__ = ["balanced_accuracy", "bootstrap_metrics", "classification_report"]


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``labels`` (scikit-learn's
    ``balanced_accuracy_score``); NaN for no cells.

    A class the model predicts but ``labels`` lacks has no recall and is left out, as
    scikit-learn does. Its warnings about that, and about a set of one class, are
    silenced: an external set that lacks some of the model's classes, or a bootstrap
    resample of a small one, is the normal case here.
    """
    if len(labels) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", "A single label was found")
        return float(balanced_accuracy_score(labels, predicted))


def bootstrap_metrics(labels: np.ndarray, predicted: np.ndarray, classes: int,
                      resamples: int, seed: int) -> dict[str, np.ndarray]:
    """The metrics of ``resamples`` bootstrap resamples of the cells, all at once.

    Every resample's confusion matrix comes from one ``bincount``; accuracy, balanced
    accuracy and per-class precision, recall and F1 follow from them as scikit-learn
    defines them, with NaN where a value is undefined in that resample: recall and F1 of a
    class it has no cells of, precision of a class it never predicts (counting that as 0
    dragged the lower bound of a rarely predicted class to 0).

    Returns:
        ``accuracy`` and ``balanced_accuracy`` shaped ``(resamples,)``; ``precision``,
        ``recall`` and ``f1`` shaped ``(resamples, classes)``.
    """
    n, cells = len(labels), classes * classes
    rng = np.random.default_rng(seed)
    confusion = labels * classes + predicted  # each cell's place in a confusion matrix
    # Resampled in blocks of about four million cells, so a large set needs no more memory.
    block = max(1, 4_000_000 // max(n, 1))
    matrices = []
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        drawn = confusion[rng.integers(0, n, (count, n))]
        drawn += np.arange(count)[:, None] * cells
        matrices.append(np.bincount(drawn.ravel(), minlength=count * cells)
                        .reshape(count, classes, classes))
    matrices = np.concatenate(matrices).astype(float)
    hits = np.diagonal(matrices, axis1=1, axis2=2)
    support, called = matrices.sum(axis=2), matrices.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
        precision = np.where(called > 0, hits / called, np.nan)
        f1 = np.where(support > 0, 2 * hits / (support + called), np.nan)
    return {"accuracy": hits.sum(axis=1) / n, "balanced_accuracy": np.nanmean(recall, axis=1),
            "precision": precision, "recall": recall, "f1": f1}


def _interval(samples: np.ndarray) -> list[float] | None:
    finite = samples[np.isfinite(samples)]
    if len(finite) == 0:
        return None
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def classification_report(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy, balanced accuracy, per-class precision/recall/F1 with 95 % bootstrap
    intervals (percentile method, resampling cells), macro one-vs-rest ROC AUC over the
    classes present, and the confusion matrix (rows: true, columns: predicted).

    Args:
        labels: ``(n,)`` true class indices into ``class_names``.
        probabilities: ``(n, len(class_names))``.
    """
    if bootstrap < 1:
        raise ValueError(f"bootstrap must be 1 or more resamples, got {bootstrap}")
    predicted = probabilities.argmax(axis=1)
    indices = list(range(len(class_names)))
    present = sorted(set(labels.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0
    )
    boot = bootstrap_metrics(labels, predicted, len(indices), bootstrap, seed)
    per_class = {}
    for i, name in enumerate(class_names):
        if support[i] == 0 and not np.any(predicted == i):
            continue
        # A class with no cells here has no recall or F1 (None, null in JSON), not 0; one
        # never predicted has no precision.
        defined = support[i] > 0
        per_class[name] = {
            "support": int(support[i]),
            "precision": float(precision[i]) if np.any(predicted == i) else None,
            "precision_ci95": _interval(boot["precision"][:, i]),
            "recall": float(recall[i]) if defined else None,
            "recall_ci95": _interval(boot["recall"][:, i]),
            "f1": float(f1[i]) if defined else None,
            "f1_ci95": _interval(boot["f1"][:, i]),
        }
    # One-vs-rest per present class, then the mean: defined even when the external set
    # lacks some of the model's classes.
    aucs = [roc_auc_score(labels == c, probabilities[:, c]) for c in present
            if 0 < np.sum(labels == c) < len(labels)]
    auc = float(np.mean(aucs)) if aucs else None  # one class only: undefined
    return {
        "n": int(len(labels)),
        "accuracy": float(np.mean(labels == predicted)),
        "accuracy_ci95": _interval(boot["accuracy"]),
        "balanced_accuracy": balanced_accuracy(labels, predicted),
        "balanced_accuracy_ci95": _interval(boot["balanced_accuracy"]),
        "macro_auc_ovr": auc,
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(labels, predicted, labels=indices).tolist(),
    }
