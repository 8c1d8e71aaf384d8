"""One set of coalitions for LIME and SHAP: the cell scored once, fitted twice.

LIME (Ribeiro et al. 2016) and Kernel SHAP (Lundberg & Lee 2017) ask the same question
of the same copies of a cell — which patches, shown or hidden, move the class's score —
and differ only in how they weigh the copies in a linear fit: LIME by closeness to the
whole cell (its exponential kernel on the cosine distance), Kernel SHAP by the Shapley
kernel, with the constraint that the values add up to the score of the cell minus that of
the cell with every patch hidden. So one set of masks over the cell's superpixels is
scored once, in batches through the classifier seam, and both fits read it:

- every mask with only one patch shown and with only one patch hidden (``2·M`` masks,
  the coalitions to which the Shapley kernel gives most weight), the whole cell and the
  fully hidden one;
- the rest drawn as LIME draws them (each patch shown with probability ½), each with its
  complement (antithetic pairs, which cancel pairwise interactions in the fit).

LIME fits the random masks and the whole cell, exactly its own design; Kernel SHAP fits
them all, the random masks weighted by the Shapley kernel over LIME's sampling
probability (self-normalised importance weights). With ``2**M`` masks or fewer in the
budget every coalition is scored and both fits are exact. The logits of every class are
kept, so another class costs no more network calls.

A hidden patch shows the cell blurred by a 32 × 32 box, as shap's ``blur(32,32)`` image
masker does. LIME's default, each patch's own mean colour, keeps the nucleus dark purple:
with every patch so hidden, the middle held-out basophil kept log-odds 10.3 of its 13.4
and the erythroblast 12.0 of 20.1, so patches that carry the class looked as if they
did not; blurred, every class falls to about even odds or below. Both fits explain the
class's calibrated log-odds, which do not saturate where the probability rounds to 1.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from math import comb

import numpy as np

from hematovision.classifier import Classifier
from hematovision.explainers.superpixels import segment_cell

__all__ = ["ScoredCoalitions", "coalition_masks", "score_coalitions", "scored_coalitions",
           "lime_fit", "kernel_shap_fit", "log_odds", "probabilities_of", "hidden_copy", "BLUR"]

KERNEL_WIDTH = 0.25  # LIME's default for images
BLUR = 32  # side of the box blur that hides a patch, in model-input pixels


def hidden_copy(model_input: np.ndarray, blur: int = BLUR) -> np.ndarray:
    """``(size, size, 3)`` float32: the cell as every hidden patch shows it, box-blurred."""
    import cv2

    return cv2.blur(np.asarray(model_input, np.float32), (blur, blur))


def log_odds(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Each class's calibrated log-odds, log p / (1 − p), from the logits ``(n, classes)``;
    computed from the logits it does not saturate where p rounds to 1."""
    from scipy.special import logsumexp

    scaled = np.asarray(logits, np.float64) / temperature
    return np.stack([scaled[:, c] - logsumexp(np.delete(scaled, c, axis=1), axis=1)
                     for c in range(scaled.shape[1])], axis=1)


def probabilities_of(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities ``(n, classes)`` from the logits."""
    from scipy.special import softmax

    return softmax(np.asarray(logits, np.float64) / temperature, axis=1)


@dataclass(frozen=True)
class ScoredCoalitions:
    """Masks ``(n, M)`` (1 = patch shown), which rows are LIME's random draws (with the
    whole cell, row 0), and the model's logits ``(n, classes)`` for each masked copy."""

    masks: np.ndarray
    random: np.ndarray  # bool (n,): rows drawn as LIME draws them
    exhaustive: bool  # every coalition is among the masks
    logits: np.ndarray
    segmentation: np.ndarray


def coalition_masks(count: int, samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray,
                                                                       bool]:
    """The shared design over ``count`` patches in ``samples`` masks (see the module's note).

    Returns:
        masks ``(samples, count)`` of 0/1 (fewer when every coalition fits), a bool
        ``(samples,)`` marking LIME's rows, and whether the design is exhaustive.
    """
    if count < 1 or samples < 4:
        raise ValueError(f"need at least 1 patch and 4 samples, got {count} and {samples}")
    if 2 ** count <= samples:
        every = (np.arange(2 ** count)[:, None] >> np.arange(count)) & 1
        every = every[::-1].copy()  # the whole cell first
        return every, np.ones(len(every), bool), True
    rng = np.random.RandomState(seed)
    fixed = [np.ones((1, count), int), np.zeros((1, count), int)]
    if 2 * count + 2 <= samples // 2:
        fixed += [np.eye(count, dtype=int), 1 - np.eye(count, dtype=int)]
    fixed = np.concatenate(fixed)
    drawn = samples - len(fixed)
    half = rng.randint(0, 2, ((drawn + 1) // 2, count))
    random = np.concatenate([half, 1 - half])[:drawn]
    masks = np.concatenate([fixed[:1], random, fixed[1:]])
    lime_rows = np.zeros(len(masks), bool)
    lime_rows[: 1 + drawn] = True
    return masks, lime_rows, False


def score_coalitions(model_input: np.ndarray, classifier: Classifier,
                     segmentation: np.ndarray, samples: int, seed: int = 0,
                     batch_size: int = 32, progress=None) -> ScoredCoalitions:
    """Score the shared design's masked copies of the cell, in batches."""
    masks, random, exhaustive = coalition_masks(int(segmentation.max()) + 1, samples, seed)
    hidden = hidden_copy(model_input)
    image, keep_masks = np.asarray(model_input, np.float32), masks.astype(bool)
    logits = np.zeros((len(masks), len(classifier.classes)), np.float32)
    for start in range(0, len(masks), batch_size):
        keep = keep_masks[start : start + batch_size][:, segmentation][..., None]
        batch = np.where(keep, image[None], hidden[None])
        logits[start : start + batch_size] = classifier.forward(batch, batch_size)[0]
        if progress is not None:
            progress(min(1.0, (start + batch_size) / len(masks)))
    return ScoredCoalitions(masks, random, exhaustive, logits, segmentation)


_memo: OrderedDict = OrderedDict()
_memo_lock = threading.Lock()
_MEMO_SIZE = 32


def scored_coalitions(model_input: np.ndarray, classifier: Classifier, samples: int,
                      segments: int, compactness: float = 10.0, seed: int = 0,
                      progress=None) -> ScoredCoalitions:
    """:func:`score_coalitions` over the cell's superpixels, remembered for the last few
    cells: LIME and SHAP with the same budget, and any other class, reuse one scoring."""
    key = (id(classifier), classifier.model_sha256,
           hashlib.sha256(np.ascontiguousarray(model_input, np.float32).tobytes()).hexdigest(),
           int(samples), int(segments), float(compactness), int(seed))
    with _memo_lock:
        found = _memo.get(key)
        if found is not None:
            _memo.move_to_end(key)
    if found is None:
        segmentation = segment_cell(model_input, segments, compactness)
        found = score_coalitions(model_input, classifier, segmentation, samples, seed,
                                 progress=progress)
        with _memo_lock:
            _memo[key] = found
            while len(_memo) > _MEMO_SIZE:
                _memo.popitem(last=False)
    elif progress is not None:
        progress(1.0)
    return found


def _weighted_ridge(x: np.ndarray, y: np.ndarray, weights: np.ndarray,
                    alpha: float = 1.0) -> np.ndarray:
    """``Ridge(alpha, fit_intercept=True).fit(x, y, sample_weight=weights).coef_``, as
    LIME's ``LimeBase`` fits it."""
    total = weights.sum()
    x_mean, y_mean = weights @ x / total, weights @ y / total
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ (weights[:, None] * xc) + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, xc.T @ (weights * yc))


def lime_fit(scored: ScoredCoalitions, scores: np.ndarray) -> np.ndarray:
    """LIME's weight for each patch ``(M,)``: its kernel on the cosine distance to the
    whole cell, a ridge fit of ``scores`` ``(n,)`` over LIME's rows."""
    masks = scored.masks[scored.random].astype(np.float64)
    shown = masks.sum(axis=1)
    # Cosine distance of a 0/1 mask to the all-ones row; an empty mask is at distance 1.
    similarity = np.where(shown > 0, np.sqrt(shown / masks.shape[1]), 0.0)
    distances = 1.0 - similarity
    weights = np.sqrt(np.exp(-(distances ** 2) / KERNEL_WIDTH ** 2))
    return _weighted_ridge(masks, np.asarray(scores, np.float64)[scored.random], weights)


def _shapley_kernel(count: int, size: np.ndarray) -> np.ndarray:
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
    weights = _shapley_kernel(count, size)
    if not scored.exhaustive:
        # LIME's rows stand for the coalitions that are not enumerated: self-normalised
        # importance weights (Shapley kernel over LIME's uniform probability) that carry
        # those coalitions' total Shapley weight.
        enumerated = set(np.unique(size[~scored.random]).tolist()) - {0, count}
        others = [s for s in range(1, count) if s not in enumerated]
        mass = sum((count - 1) / (s * (count - s)) for s in others)
        drawn = scored.random & (size > 0) & (size < count) & ~np.isin(size, list(enumerated))
        weights = np.where(drawn | ~scored.random, weights, 0.0)
        if weights[drawn].sum() > 0:
            weights[drawn] *= mass / weights[drawn].sum()
    used = weights > 0
    if count == 1:
        return np.array([whole - empty]), float(empty)
    delta = whole - empty
    # Σφ = delta: φ_last = delta − Σ_{j<last} φ_j, then a weighted least-squares fit.
    x = masks[used, :-1] - masks[used, -1:]
    y = scores[used] - empty - masks[used, -1] * delta
    w = weights[used]
    gram = x.T @ (w[:, None] * x)
    rest = np.linalg.lstsq(gram, x.T @ (w * y), rcond=None)[0]
    return np.append(rest, delta - rest.sum()), float(empty)
