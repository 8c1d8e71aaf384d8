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

The two fits of these scores, LIME's and Kernel SHAP's, are in
:mod:`hematovision.explain.coalition_fits`.

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

import numpy as np

from hematovision.explain.coalition_fits import every_coalition, shapley_kernel
from hematovision.explain.superpixels import segment_cell
from hematovision.model.classifier import Classifier

__all__ = ["ScoredCoalitions", "coalition_masks", "score_coalitions", "scored_coalitions",
           "log_odds", "probabilities_of", "hidden_copy", "BLUR"]

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
        every = every_coalition(count)[::-1].copy()
        return every, np.ones(len(every)), shapley_kernel(count, every.sum(axis=1)), True
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
    shap_weights = np.concatenate([[0.0], shap, shapley_kernel(count, fixed_size)])
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
