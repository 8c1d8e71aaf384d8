"""Balanced draws over classes and sources: the proportions, measured over many draws."""

from __future__ import annotations

import numpy as np
import pytest

from hematovision.train.sampling import balanced_indices, draw_shares


def _two_sources():
    # Source 0: a large laboratory with four classes; source 1: a small one with two.
    labels = np.array([0] * 900 + [1] * 300 + [2] * 500 + [3] * 100 + [1] * 40 + [3] * 20)
    sources = np.array([0] * 1800 + [1] * 60)
    return labels, sources


def test_shares_split_each_class_evenly_among_the_sources_that_hold_it():
    labels, sources = _two_sources()
    shares = draw_shares(labels, sources)
    assert shares == pytest.approx({(0, 0): 0.25, (1, 0): 0.125, (1, 1): 0.125,
                                    (2, 0): 0.25, (3, 0): 0.125, (3, 1): 0.125})
    assert sum(shares.values()) == pytest.approx(1.0)


def test_draws_follow_the_shares_over_many_batches():
    labels, sources = _two_sources()
    drawn = balanced_indices(labels, sources, 64_000, seed=5)
    for label in range(4):
        assert np.mean(labels[drawn] == label) == pytest.approx(0.25, abs=0.01)
    # The small source: 60 cells of 1,860, yet a quarter of the draws.
    assert np.mean(sources[drawn] == 1) == pytest.approx(0.25, abs=0.01)


def test_a_small_group_repeats_its_cells_evenly():
    labels, sources = _two_sources()
    drawn = balanced_indices(labels, sources, 8_000, seed=1)
    small = drawn[(labels[drawn] == 3) & (sources[drawn] == 1)]
    counts = np.bincount(small, minlength=len(labels))[labels.size - 20:]
    assert counts.min() >= counts.max() - 1  # shuffled passes, not independent draws


def test_draws_are_deterministic_by_seed():
    labels, sources = _two_sources()
    first = balanced_indices(labels, sources, 500, seed=7)
    assert np.array_equal(first, balanced_indices(labels, sources, 500, seed=7))
    assert not np.array_equal(first, balanced_indices(labels, sources, 500, seed=8))


@pytest.mark.parametrize("labels, sources, count, error", [
    (np.zeros(3), np.zeros(4), 10, "equal 1-D"),
    (np.zeros(3), np.zeros(3), -1, "count"),
])
def test_bad_arguments_name_the_problem(labels, sources, count, error):
    with pytest.raises(ValueError, match=error):
        balanced_indices(labels, sources, count, seed=0)
