"""Which training cells a batch draws: balanced over classes, then over sources.

PBC brings 12,735 cells from one hospital's CellaVision and Raabin-WBC 1,762 from
smartphone cameras. Drawn in proportion, nine cells in ten come from one camera and the
network learns that camera again. Drawn here, every class has the same share of the
draws, and inside a class every source that holds it the same share, so a source's
cells count as much as its classes, whatever its size (as in Chossegros et al. 2024,
who balance two training sets per class).
"""

from __future__ import annotations

import numpy as np

__all__ = ["draw_shares", "balanced_indices"]


def draw_shares(labels: np.ndarray, sources: np.ndarray) -> dict[tuple[int, int], float]:
    """The share of the draws each (class, source) pair gets: ``1 / classes`` for each
    class present, divided equally among the sources that hold it.

    Args:
        labels: ``(n,)`` class index of each training cell.
        sources: ``(n,)`` source index of each training cell.
    """
    labels, sources = np.asarray(labels), np.asarray(sources)
    if labels.shape != sources.shape or labels.ndim != 1:
        raise ValueError(f"labels and sources must be two equal 1-D arrays, got shapes "
                         f"{labels.shape} and {sources.shape}")
    classes = np.unique(labels)
    shares = {}
    for label in classes:
        holders = np.unique(sources[labels == label])
        for source in holders:
            shares[(int(label), int(source))] = 1.0 / (len(classes) * len(holders))
    return shares


def balanced_indices(labels: np.ndarray, sources: np.ndarray, count: int, seed: int
                     ) -> np.ndarray:
    """``count`` indices into the training cells, drawn with :func:`draw_shares`.

    Inside each (class, source) pair the cells are taken in shuffled passes, so a small
    pair repeats its cells evenly instead of some cells many times and others never.
    Deterministic for a given ``seed``.
    """
    labels, sources = np.asarray(labels), np.asarray(sources)
    shares = draw_shares(labels, sources)
    if count < 0:
        raise ValueError(f"count must be ≥ 0, got {count}")
    rng = np.random.default_rng(seed)
    pairs = list(shares)
    picks = rng.choice(len(pairs), size=count, p=np.array([shares[p] for p in pairs]))
    result = np.empty(count, dtype=np.int64)
    for number, (label, source) in enumerate(pairs):
        slots = np.flatnonzero(picks == number)
        members = np.flatnonzero((labels == label) & (sources == source))
        passes = -(-len(slots) // len(members)) if len(slots) else 0
        order = np.concatenate([rng.permutation(members) for _ in range(passes)] or
                               [np.empty(0, dtype=np.int64)])
        result[slots] = order[: len(slots)]
    return result
