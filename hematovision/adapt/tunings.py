"""The depths of tuning adaptation offers, as light metadata that the Adapt page and the
command line read their choices from (importing it imports neither Keras nor the model).

- ``last-layer``: only the class weights on the pooled features are refitted (seconds);
- ``last-block``: the network's last block is fine-tuned as well (a few minutes), with the
  settings in :class:`BlockTuning`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hematovision.errors import InputError

__all__ = ["BlockTuning", "TUNINGS", "check_tuning"]


@dataclass(frozen=True)
class BlockTuning:
    """How the last block is tuned.

    The defaults were chosen on zheng2018_d2 (docs/other-laboratories.md)."""

    copies: int = 16  # augmented copies of each cell (flips, turns, stain, focus …)
    epochs: int = 20
    learning_rate: float = 3e-4
    pull: float = 1e-3  # weight of the L2 pull towards the trained weights
    batch_size: int = 32
    seed: int = 0


# Each depth's name (for --tuning and the card) and what the Adapt page calls it.
TUNINGS = {"last-layer": "Last layer only (seconds)",
           "last-block": "Last block and layer (a few minutes)"}


def check_tuning(tuning: str) -> None:
    """An unknown depth is an error that names the known ones."""
    if tuning not in TUNINGS:
        raise InputError(f"unknown tuning {tuning!r}; use one of: {', '.join(TUNINGS)}")
