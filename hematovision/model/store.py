"""Where the shipped models live and which one is used by default."""

from __future__ import annotations

import os
from pathlib import Path

from hematovision.model.card import CARD_FILE

__all__ = ["MODELS_DIR", "DEFAULT_MODEL", "available_models", "default_model_dir", "models_root"]

def _project_models() -> Path:
    # Beside the package in a clone (or an editable install); an installed wheel has no
    # models of its own, so there the models/ folder of the clone it is run from.
    beside = Path(__file__).resolve().parents[2] / "models"
    return beside if beside.is_dir() else Path.cwd() / "models"


MODELS_DIR = _project_models()
DEFAULT_MODEL = "multi-lite0"


def models_root() -> Path:
    """Where models live: ``$HEMATOVISION_MODELS`` if set, else the project's ``models/``."""
    return Path(os.environ.get("HEMATOVISION_MODELS", MODELS_DIR))


def available_models(models_dir: str | Path | None = None) -> list[Path]:
    """Model folders (those with a card) under ``models_dir``, sorted by name."""
    root = Path(models_dir or models_root())
    if not root.is_dir():
        return []
    # Hidden folders are models being built (see the CLI's --overwrite), not yet ready.
    return sorted(p for p in root.iterdir()
                  if not p.name.startswith(".") and (p / CARD_FILE).is_file())


def default_model_dir() -> Path:
    """``$HEMATOVISION_MODEL`` if set, else the shipped default, ``models/multi-lite0``
    (trained on PBC and Raabin-WBC; ``models/pbc-lite0``, PBC alone, ships beside it)."""
    chosen = os.environ.get("HEMATOVISION_MODEL")
    return Path(chosen) if chosen else MODELS_DIR / DEFAULT_MODEL
