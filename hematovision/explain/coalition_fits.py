"""The two fits of one set of scored coalitions: LIME's and Kernel SHAP's.

LIME's map is what the library's fit of 5,000 samples tends to: its kernel and ridge fit
over *every* coalition of the patches (up to :data:`COMPLETION_LIMIT` of them), each
weighted as often as 5,000 uniform draws would hold it. The coalitions not scored are
filled in by a surrogate fitted on every scored row, LIME's and SHAP's: the score as a sum
of one term per patch and one per pair of patches (the pairs slightly shrunk); scored
coalitions keep their own score. LIME's ~125 own draws alone, fitted as the library fits
them, agreed less often with the library's own 5,000-sample fit (docs/explanations.md).
With more patches LIME fits its own draws as the library fits its samples.

Kernel SHAP fits every row, post-stratified by size: given its size, any draw (LIME's too)
is a coalition chosen uniformly among those of that size, so each size's rows share that
size's whole Shapley weight equally, the singles at their exact weight, with the
constraint that the values add up to the whole cell's score minus the fully hidden one's.
(Weighing each draw by the ratio of the kernel to the mixture it was drawn from, as
before, left Kernel SHAP at a Spearman of 0.80 against shap's 5,000-sample estimate on a
held-out monocyte; see docs/explanations.md.) With ``2**M`` masks or fewer in the budget
every coalition is scored and both fits are exact. The logits of every class are kept, so
another class costs no more network calls.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb
from typing import TYPE_CHECKING

import numpy as np

from hematovision.model.runtime import one_blas_thread

if TYPE_CHECKING:
    from hematovision.explain.coalitions import ScoredCoalitions

__all__ = ["lime_fit", "lime_limit", "kernel_shap_fit", "completed_scores", "every_coalition",
           "shapley_kernel", "KERNEL_WIDTH"]

KERNEL_WIDTH = 0.25  # LIME's default for images
COMPLETION_LIMIT = 13  # patches up to which LIME's fit reads every coalition (2**13 rows)
REFERENCE_SAMPLES = 5000  # the library fit LIME's map stands for
PAIR_SHRINKAGE = 1.0  # ridge penalty on the surrogate's pair terms (the patch terms have none)


def _weighted_ridge(x: np.ndarray, y: np.ndarray, weights: np.ndarray,
                    alpha: float = 1.0) -> np.ndarray:
    """``Ridge(alpha, fit_intercept=True).fit(x, y, sample_weight=weights).coef_``, as
    LIME's ``LimeBase`` fits it."""
    total = weights.sum()
    x_mean, y_mean = weights @ x / total, weights @ y / total
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ (weights[:, None] * xc) + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, xc.T @ (weights * yc))


def _lime_kernel(masks: np.ndarray) -> np.ndarray:
    """LIME's kernel on the cosine distance of each 0/1 mask to the whole cell (the
    all-ones row); an empty mask is at distance 1."""
    shown = masks.sum(axis=1)
    similarity = np.where(shown > 0, np.sqrt(shown / masks.shape[1]), 0.0)
    return np.sqrt(np.exp(-((1.0 - similarity) ** 2) / KERNEL_WIDTH ** 2))


def every_coalition(count: int) -> np.ndarray:
    """All ``2**count`` masks ``(2**count, count)``; row ``k`` shows patch ``i`` where bit
    ``i`` of ``k`` is set."""
    return ((np.arange(2 ** count)[:, None] >> np.arange(count)) & 1).astype(np.int64)


@lru_cache(maxsize=4)
def _every_design(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every coalition as floats, the surrogate's rows for them (intercept, patches, pairs)
    and LIME's weight for each in a 5,000-draw fit; the same for every cell with ``count``
    patches, so made once (tens of milliseconds at a dozen patches)."""
    every = every_coalition(count).astype(np.float64)
    rows = np.hstack([np.ones((len(every), 1)), every, _pairs(every)])
    weights = _lime_kernel(every) * (REFERENCE_SAMPLES / len(every))
    for array in (every, rows, weights):
        array.flags.writeable = False
    return every, rows, weights


def _pairs(masks: np.ndarray) -> np.ndarray:
    first, second = np.triu_indices(masks.shape[1], 1)
    return masks[:, first] * masks[:, second]


def completed_scores(scored: ScoredCoalitions, scores: np.ndarray) -> np.ndarray:
    """The score of every coalition ``(2**M,)`` (rows as :func:`every_coalition`): the
    scored ones as scored, the others from a surrogate — one term per patch and one per
    pair, fitted by least squares on every scored row, through the whole and the empty
    cell, the pair terms shrunk by :data:`PAIR_SHRINKAGE`."""
    masks = scored.masks.astype(np.int64)
    count = masks.shape[1]
    codes, first = np.unique(masks @ (1 << np.arange(count)), return_index=True)
    seen = masks[first].astype(np.float64)
    values = np.asarray(scores, np.float64)[first]
    design = np.hstack([np.ones((len(seen), 1)), seen, _pairs(seen)])
    size = seen.sum(axis=1)
    weights = np.where((size == 0) | (size == count), 1e4, 1.0)
    penalty = np.zeros(design.shape[1])
    penalty[1 + count:] = PAIR_SHRINKAGE
    coefficients = np.linalg.solve(design.T @ (weights[:, None] * design) + np.diag(penalty),
                                   design.T @ (weights * values))
    completed = _every_design(count)[1] @ coefficients
    completed[codes] = values
    return completed


def lime_limit(every_score: np.ndarray) -> np.ndarray:
    """What the library's LIME fit of 5,000 uniform draws tends to, given the score of
    every coalition ``(2**M,)`` (rows as :func:`every_coalition`): its kernel and ridge
    over all of them, each weighted as often as those draws would hold it."""
    every_score = np.asarray(every_score, np.float64)
    count = int(np.log2(len(every_score)))
    every, _, weights = _every_design(count)
    # Small products: split over busy cores, BLAS's threads wait for each other
    # (30-40 ms instead of 2 on one thread, with a training run beside it).
    with one_blas_thread():
        return _weighted_ridge(every, every_score, weights)


def lime_fit(scored: ScoredCoalitions, scores: np.ndarray) -> np.ndarray:
    """LIME's weight for each patch ``(M,)``: a ridge fit of ``scores`` ``(n,)`` weighted by
    its kernel on the cosine distance to the whole cell. Up to :data:`COMPLETION_LIMIT`
    patches over every coalition, the unscored ones completed (:func:`completed_scores`),
    each weighted as 5,000 uniform draws would hold it; beyond, over LIME's own draws
    (times each draw's importance weight), as the library fits its samples."""
    count = scored.masks.shape[1]
    if count <= COMPLETION_LIMIT:
        with one_blas_thread():
            return lime_limit(completed_scores(scored, scores))
    used = scored.lime_importance > 0
    masks = scored.masks[used].astype(np.float64)
    return _weighted_ridge(masks, np.asarray(scores, np.float64)[used],
                           _lime_kernel(masks) * scored.lime_importance[used])


def shapley_kernel(count: int, size: np.ndarray) -> np.ndarray:
    """The Shapley kernel's weight of one coalition of ``size`` of ``count`` patches."""
    size = np.asarray(size)
    inner = (size > 0) & (size < count)
    safe = np.where(inner, size, 1)
    binomial = np.array([comb(count, int(s)) for s in safe.ravel()], np.float64)
    weight = (count - 1) / (binomial.reshape(safe.shape) * safe * (count - safe))
    return np.where(inner, weight, 0.0)


def kernel_shap_fit(scored: ScoredCoalitions, scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Kernel SHAP's values ``(M,)`` of ``scores`` ``(n,)`` and the score with every patch
    hidden; the values add up to the whole cell's score minus that one."""
    masks, scores = scored.masks.astype(np.float64), np.asarray(scores, np.float64)
    count = masks.shape[1]
    size = masks.sum(axis=1).astype(int)
    whole, empty = scores[size == count][0], scores[size == 0][0]
    delta = whole - empty
    if count == 1:
        return np.array([delta]), float(empty)
    used = (scored.shap_weights > 0) & (size > 0) & (size < count)
    # Σφ = delta: φ_last = delta − Σ_{j<last} φ_j, then a weighted least-squares fit.
    x = masks[used, :-1] - masks[used, -1:]
    y = scores[used] - empty - masks[used, -1] * delta
    w = scored.shap_weights[used]
    gram = x.T @ (w[:, None] * x)
    rest = np.linalg.lstsq(gram, x.T @ (w * y), rcond=None)[0]
    return np.append(rest, delta - rest.sum()), float(empty)
