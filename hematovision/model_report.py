"""Read what a model folder records about its quality: evaluations and training history."""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["load_evaluation", "load_external_evaluations", "load_history",
           "load_explanation_checks", "gallery", "checks_table", "check_verdicts",
           "check_cautions"]


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


RANDOM_MAP = "random map (baseline)"


def _number(value: float) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def checks_table(checks: dict, titles: dict[str, str] | None = None) -> list[dict]:
    """One row per method: faithfulness, pointing game and randomisation numbers, the
    methods named by ``titles`` (registry name → what the Explain page calls it)."""
    titles = {**(titles or {}), "random": RANDOM_MAP}
    pointing = checks["pointing_game"]["by_method"]
    rows = []
    for name, row in checks["faithfulness"].items():
        rows.append({
            "method": titles.get(name, name),
            "deletion AUC (lower better)": _number(row["deletion_auc"]),
            "insertion AUC (higher better)": _number(row["insertion_auc"]),
            "maximum on the cell": _number(pointing.get(name, {}).get("on_cell")),
            "maximum on the nucleus": _number(pointing.get(name, {}).get("on_nucleus")),
            "rank corr. with a scrambled model (lower better)": _number(
                checks["randomisation"].get(name, {}).get("spearman_mean")),
        })
    return rows


def _judged(checks: dict) -> dict[str, tuple[bool, float | None, float]]:
    """Per method: whether it beats a random map on deletion and insertion, how often its
    maximum lies on the cell, and its rank correlation with a scrambled model's map."""
    random = checks["faithfulness"]["random"]
    pointing = checks["pointing_game"]["by_method"]
    judged = {}
    for name, row in checks["faithfulness"].items():
        if name == "random":
            continue
        faithful = (row["deletion_auc"] < random["deletion_auc"]
                    and row["insertion_auc"] > random["insertion_auc"])
        correlation = checks["randomisation"].get(name, {}).get("spearman_mean", float("nan"))
        judged[name] = (faithful, pointing.get(name, {}).get("on_cell"), correlation)
    return judged


def _follows_the_model(correlation: float) -> bool:
    return correlation < 0.5


def check_verdicts(checks: dict, titles: dict[str, str] | None = None) -> dict[str, str]:
    """A plain sentence per method on what its numbers mean for a reader of the maps."""
    titles = titles or {}
    verdicts = {}
    for name, (faithful, on_cell, correlation) in _judged(checks).items():
        parts = [
            ("Removing what it highlights lowers the probability faster than removing random "
             "pixels: its bright regions matter to the model." if faithful else
             "It does not beat a random map on deletion and insertion: do not read its bright "
             "regions as what the model relies on."),
            (f"Its maximum (for a patch map, its top patch) lies on the white cell "
             f"{100 * on_cell:.0f} % of the time, over cells with expert masks."
             if on_cell is not None else "Where its maximum lies was not measured (no cells "
             "with expert masks were given)."),
            ("It changes when the model's top layers are scrambled (rank correlation "
             f"{correlation:.2f}), so it reflects what the model learned."
             if _follows_the_model(correlation)
             else f"It barely changes when the model's top layers are scrambled (rank "
                  f"correlation {correlation:.2f}): it partly shows the image, not the model."),
        ]
        verdicts[titles.get(name, name)] = " ".join(parts)
    return verdicts


def check_cautions(checks: dict | None) -> dict[str, str]:
    """For each method that failed one of the model audit's checks, a short caution to
    show beside its map (keyed by method name); the maps that passed get none."""
    if not checks:
        return {}
    cautions = {}
    for name, (faithful, _, correlation) in _judged(checks).items():
        failed = []
        if not faithful:
            failed.append("it did not beat a random map at finding what the model relies on")
        if not _follows_the_model(correlation):
            failed.append("it barely changed when the model's top layers were scrambled "
                          f"(rank correlation {correlation:.2f}), so it partly shows the "
                          "image rather than the model")
        if failed:
            cautions[name] = "Model audit: " + "; ".join(failed) + ". Read it with care."
    return cautions
