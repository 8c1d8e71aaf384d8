"""Read what a model folder records about its quality: evaluations and training history."""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["load_evaluation", "load_external_evaluations", "load_history",
           "load_explanation_checks", "gallery"]


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def load_evaluation(model_dir: str | Path) -> dict | None:
    """The test-split evaluation written by ``hematovision evaluate``, or None."""
    return _read_json(Path(model_dir) / "evaluation.json")


def load_external_evaluations(model_dir: str | Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(model_dir).glob("evaluation_*.json"))]


def load_explanation_checks(model_dir: str | Path) -> dict | None:
    """The stored explainer checks of ``hematovision evaluate --explanations``, or None."""
    return _read_json(Path(model_dir) / "explanation_checks.json")


def load_history(model_dir: str | Path) -> list[dict]:
    path = Path(model_dir) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def gallery(evaluation: dict, count: int = 6) -> tuple[list[dict], list[dict]]:
    """The most confident errors and the least confident correct answers of a report."""
    predictions = evaluation.get("predictions", [])
    wrong = sorted((p for p in predictions if p["predicted"] != p["label"]),
                   key=lambda p: -p["confidence"])
    right = sorted((p for p in predictions if p["predicted"] == p["label"]),
                   key=lambda p: p["confidence"])
    return wrong[:count], right[:count]
