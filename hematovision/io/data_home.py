"""Where the datasets live: one setting moves them all.

``$HEMATOVISION_DATASETS`` if set, else ``../shared/datasets`` beside the project. The
dashboard's example cells, the tests and every benchmark read their data from here, so a
copy of the project placed elsewhere needs only this one variable.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["datasets_dir"]

_PROJECT = Path(__file__).resolve().parents[2]


def datasets_dir() -> Path:
    """The folder holding ``pbc/``, ``raabin_wbc/``, ``zheng2018_d2/`` and the others."""
    setting = os.environ.get("HEMATOVISION_DATASETS")
    return Path(setting) if setting else _PROJECT.parent / "shared" / "datasets"
