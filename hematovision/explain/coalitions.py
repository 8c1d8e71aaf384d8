"""One set of coalitions for LIME and SHAP: the cell scored once, fitted twice.

LIME (Ribeiro et al. 2016) and Kernel SHAP (Lundberg & Lee 2017) ask the same question
of the same copies of a cell — which patches, shown or hidden, move the class's score —
and differ only in how they weigh the copies in a linear fit: LIME by closeness to the
whole cell (its exponential kernel on the cosine distance), Kernel SHAP by the Shapley
kernel, with the constraint that the values add up to the score of the cell minus that of
the cell with every patch hidden. So one set of masks over the cell's superpixels is
scored once, in batches through the classifier seam, and both fits read it:

- the whole cell, the fully hidden one, and every mask with only one patch shown and with
  only one patch hidden (``2·M`` masks: the sizes 1 and M − 1, which the Shapley kernel
  weighs most, enumerated);
- half the rest drawn as LIME draws (each patch shown with probability ½), half for Kernel
  SHAP, stratified by size: each pair of sizes {s, M − s} gets its share of the Shapley
  kernel's weight in coalitions, drawn without repeats along random permutations (every
  patch about equally often); every draw comes with its complement (Covert & Lee 2021,
  "Improving KernelSHAP": pairs cancel the even-order interactions in the fit).

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
size's whole Shapley weight equally, the singles at their exact weight, with the constraint that the
values add up to the whole cell's score minus the fully hidden one's. (Weighing each draw
by the ratio of the kernel to the mixture it was drawn from, as before, left Kernel SHAP
at a Spearman of 0.80 against shap's 5,000-sample estimate on a held-out monocyte; see
docs/explanations.md.) With ``2**M`` masks or fewer in the budget every coalition is
scored and both fits are exact. The logits of every class are kept, so another class
costs no more network calls.

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
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from math import comb

import numpy as np

from hematovision.explain.superpixels import segment_cell
from hematovision.model.classifier import Classifier
from hematovision.model.runtime import one_blas_thread

__all__ = ["ScoredCoalitions", "coalition_masks", "score_coalitions", "scored_coalitions",
           "lime_fit", "kernel_shap_fit", "completed_scores", "every_coalition", "log_odds",
           "probabilities_of", "hidden_copy", "BLUR"]

KERNEL_WIDTH = 0.25  # LIME's default for images
COMPLETION_LIMIT = 13  # patches up to which LIME's fit reads every coalition (2**13 rows)
REFERENCE_SAMPLES = 5000  # the library fit LIME's map stands for
PAIR_SHRINKAGE = 1.0  # ridge penalty on the surrogate's pair terms (the patch terms have none)
BLUR = 32  # side of the box blur that hides a patch, in model-input pixels


def hidden_copy(model_input: np.ndarray, blur: int = BLUR) -> np.ndarray:
    """``(size, size, 3)`` float32: the cell as every hidden patch shows it, box-blurred."""
    import cv2

    return cv2.blur(np.asarray(model_input, np.float32), (blur, blur))


def log_odds(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Each class's calibrated log-odds, log p / (1 − p), from the logits ``(n, classes)``;
    computed from the logits it does not saturate where p rounds to 1."""
    scaled = np.asarray(logits, np.float64) / temperature
    return np.stack([scaled[:, c] - _logsumexp(np.delete(scaled, c, axis=1))
                     for c in range(scaled.shape[1])], axis=1)


def probabilities_of(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities ``(n, classes)`` from the logits."""
    scaled = np.asarray(logits, np.float64) / temperature
    return np.exp(scaled - _logsumexp(scaled)[:, None])


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """``scipy.special.logsumexp(values, axis=1)`` in NumPy (SciPy's special functions
    take about half a second to import)."""
    largest = values.max(axis=1)
    return largest + np.log(np.exp(values - largest[:, None]).sum(axis=1))


@dataclass(frozen=True)
class ScoredCoalitions:
    """Masks ``(n, M)`` (1 = patch shown; row 0 the whole cell), each row's weight in
    LIME's fit before its kernel (its importance weight, 0 where LIME does not use it) and
    in Kernel SHAP's fit, and the model's logits ``(n, classes)`` for each masked copy."""

    masks: np.ndarray
    lime_importance: np.ndarray
    shap_weights: np.ndarray
    exhaustive: bool  # every coalition is among the masks
    logits: np.ndarray
    segmentation: np.ndarray


def _size_mass(count: int, size: np.ndarray) -> np.ndarray:
    """The Shapley kernel's total weight over all coalitions of each ``size`` (0 < size <
    count): ``(count − 1) / (size · (count − size))``."""
    size = np.asarray(size, np.float64)
    return (count - 1) / (size * (count - size))


def _allocate(total: int, shares: np.ndarray) -> np.ndarray:
    """``total`` split in proportion to ``shares``, in whole numbers (largest remainders)."""
    raw = total * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(counts - raw, kind="stable")[: total - counts.sum()]] += 1
    return counts


def _subsets(rng: np.random.RandomState, count: int, size: int, wanted: int,
             taken: set) -> list[np.ndarray]:
    """Up to ``wanted`` new coalitions of ``size`` patches, none of them or their
    complements in ``taken``: consecutive runs of random permutations, so that every
    patch is shown about equally often."""
    found: list[np.ndarray] = []
    order, position, tries = rng.permutation(count), 0, 0
    while len(found) < wanted and tries < 50 * wanted:
        tries += 1
        if position + size > count:
            order, position = rng.permutation(count), 0
        mask = np.zeros(count, int)
        mask[order[position : position + size]] = 1
        position += size
        if mask.tobytes() in taken or (1 - mask).tobytes() in taken:
            continue
        taken.add(mask.tobytes())
        found.append(mask)
    return found


def coalition_masks(count: int, samples: int, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The shared design over ``count`` patches in ``samples`` masks (see the module's note).

    Returns:
        masks ``(n, count)`` of 0/1 (fewer than ``samples`` when every coalition fits),
        LIME's importance weight per row, Kernel SHAP's weight per row, and whether the
        design is exhaustive.
    """
    if count < 1 or samples < 4:
        raise ValueError(f"need at least 1 patch and 4 samples, got {count} and {samples}")
    if 2 ** count <= samples:
        every = ((np.arange(2 ** count)[:, None] >> np.arange(count)) & 1)[::-1].copy()
        return every, np.ones(len(every)), _shapley_kernel(count, every.sum(axis=1)), True
    rng = np.random.RandomState(seed)
    fixed = [np.ones((1, count), int), np.zeros((1, count), int)]
    if 2 * count + 2 <= samples // 2:
        fixed += [np.eye(count, dtype=int), 1 - np.eye(count, dtype=int)]
    fixed = np.concatenate(fixed)
    drawn = samples - len(fixed)
    # Half the draws as LIME draws (each patch shown with probability ½), each with its
    # complement; LIME's fit reads these alone, as it reads its own samples.
    shapley = count >= 4 and drawn >= 8
    lime_half = 2 * ((drawn // 2 if shapley else drawn) // 2)
    half = rng.randint(0, 2, (lime_half // 2, count))
    parts = [np.concatenate([half, 1 - half])]
    if shapley:
        # The other half for Kernel SHAP, stratified by size: each pair of sizes {s, M − s}
        # (2 ≤ s ≤ M/2) gets its share of the Shapley kernel's weight in coalitions (at
        # least one where there is room), each drawn with its complement.
        sizes = np.arange(2, count // 2 + 1)
        mass = _size_mass(count, sizes) * np.where(2 * sizes == count, 1.0, 2.0)
        pairs = (drawn - lime_half) // 2
        counts = np.maximum(_allocate(max(pairs - len(sizes), 0), mass), 0)
        counts += np.arange(len(sizes)) < min(pairs, len(sizes))
        taken = {row.tobytes() for row in parts[0]}
        for size, wanted in zip(sizes, counts):
            chosen = _subsets(rng, count, int(size), int(wanted), taken)
            if chosen:
                chosen = np.array(chosen)
                parts.append(np.concatenate([chosen, 1 - chosen]))
    random = np.concatenate(parts)
    size = random.sum(axis=1)
    # Kernel SHAP weighs every row by its size's share of the Shapley kernel, divided among
    # the rows of that size: given its size, every draw (LIME's too) is a coalition chosen
    # uniformly among those of that size, so each stratum stands for all of its size
    # (post-stratification). With the single-patch masks the sizes 1 and M − 1 are exact.
    enumerated = {1, count - 1} if len(fixed) > 2 else set()
    inner = (size > 0) & (size < count) & ~np.isin(size, list(enumerated))
    rows_of_size = np.bincount(size, minlength=count + 1)
    shap = np.where(inner, _size_mass(count, np.clip(size, 1, count - 1))
                    / np.maximum(rows_of_size[size], 1), 0.0)
    # A size without rows (tiny budgets) leaves its weight to the others.
    others = [s for s in range(1, count) if s not in enumerated]
    if shap.sum() > 0:
        shap *= _size_mass(count, np.array(others)).sum() / shap.sum()
    masks = np.concatenate([fixed[:1], random, fixed[1:]])
    lime_weights = np.concatenate([[1.0], np.arange(len(random)) < lime_half,
                                   np.zeros(len(fixed) - 1)]).astype(np.float64)
    fixed_size = fixed[1:].sum(axis=1)
    shap_weights = np.concatenate([[0.0], shap, _shapley_kernel(count, fixed_size)])
    return masks, lime_weights, shap_weights, False


def score_coalitions(model_input: np.ndarray, classifier: Classifier,
                     segmentation: np.ndarray, samples: int, seed: int = 0,
                     batch_size: int = 32, progress=None) -> ScoredCoalitions:
    """Score the shared design's masked copies of the cell, in batches."""
    masks, lime_importance, shap_weights, exhaustive = coalition_masks(
        int(segmentation.max()) + 1, samples, seed)
    # LIME draws with replacement, as the library does: a mask drawn twice (or equal to
    # one of the fixed masks) is scored once.
    distinct, inverse = np.unique(masks, axis=0, return_inverse=True)
    hidden = hidden_copy(model_input)
    image, keep_masks = np.asarray(model_input, np.float32), distinct.astype(bool)
    logits = np.zeros((len(distinct), len(classifier.classes)), np.float32)
    for start in range(0, len(distinct), batch_size):
        keep = keep_masks[start : start + batch_size][:, segmentation][..., None]
        batch = np.where(keep, image[None], hidden[None])
        logits[start : start + batch_size] = classifier.forward(batch, batch_size)[0]
        if progress is not None:
            progress(min(1.0, (start + batch_size) / len(distinct)))
    return ScoredCoalitions(masks, lime_importance, shap_weights, exhaustive,
                            logits[inverse.reshape(-1)], segmentation)


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
        entry = _memo.get(key)
        # An id is reused once its object is gone: the entry must be this very classifier's.
        found = entry[1] if entry is not None and entry[0]() is classifier else None
        if found is not None:
            _memo.move_to_end(key)
    if found is None:
        segmentation = segment_cell(model_input, segments, compactness)
        found = score_coalitions(model_input, classifier, segmentation, samples, seed,
                                 progress=progress)
        with _memo_lock:
            _memo[key] = (weakref.ref(classifier), found)
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


def lime_fit(scored: ScoredCoalitions, scores: np.ndarray) -> np.ndarray:
    """LIME's weight for each patch ``(M,)``: a ridge fit of ``scores`` ``(n,)`` weighted by
    its kernel on the cosine distance to the whole cell. Up to :data:`COMPLETION_LIMIT`
    patches over every coalition, the unscored ones completed (:func:`completed_scores`),
    each weighted as 5,000 uniform draws would hold it; beyond, over LIME's own draws
    (times each draw's importance weight), as the library fits its samples."""
    count = scored.masks.shape[1]
    if count <= COMPLETION_LIMIT:
        every, _, weights = _every_design(count)
        # Small products: split over busy cores, BLAS's threads wait for each other
        # (30-40 ms instead of 2 on one thread, with a training run beside it).
        with one_blas_thread():
            return _weighted_ridge(every, completed_scores(scored, scores), weights)
    used = scored.lime_importance > 0
    masks = scored.masks[used].astype(np.float64)
    return _weighted_ridge(masks, np.asarray(scores, np.float64)[used],
                           _lime_kernel(masks) * scored.lime_importance[used])


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
