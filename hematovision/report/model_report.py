"""Read what a model folder records about its quality: evaluations and training history."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hematovision.report.atlas import common_name

__all__ = ["load_evaluation", "load_external_evaluations", "load_history",
           "load_explanation_checks", "gallery", "checks_table", "check_verdicts",
           "check_cautions", "GLOSSARY", "audit_answers", "source_test_rows",
           "source_rows", "external_rows", "source_benchmark_rows"]


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
    methods named by ``titles`` (registry name → what the Explain page calls it).

    Column names are short (↓ lower is better, ↑ higher is better; "scrambled corr." is the
    rank correlation with the map of a model whose top layers were scrambled) so that the
    table fits a 1,280-pixel window; ``GLOSSARY`` says what each measures."""
    titles = {**(titles or {}), "random": RANDOM_MAP}
    pointing = checks["pointing_game"]["by_method"]
    rows = []
    for name, row in checks["faithfulness"].items():
        rows.append({
            "method": titles.get(name, name),
            "deletion AUC ↓": _number(row["deletion_auc"]),
            "insertion AUC ↑": _number(row["insertion_auc"]),
            "peak on cell": _number(pointing.get(name, {}).get("on_cell")),
            "peak on nucleus": _number(pointing.get(name, {}).get("on_nucleus")),
            "scrambled corr. ↓": _number(
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


# What the audit's terms mean, in plain words, with the paper each comes from.
GLOSSARY = {
    "Balanced accuracy": "The mean of the per-class recalls: every class counts the same "
    "however many cells it has, so being right on the common classes only does not score "
    "well. Accuracy is the plain share of cells named correctly.",
    "ECE (expected calibration error)": "How far the stated confidence is from how often "
    "the answer is right, averaged over confidence bins weighted by their cells: an ECE of "
    "0.02 means a stated 90 % is right about 88–92 % of the time (Guo et al. 2017, 'On "
    "calibration of modern neural networks').",
    "Deletion / insertion AUC": "Blur away the pixels a map ranks most important first and "
    "follow the probability of the explained class: it should fall fast (a low area under "
    "the curve). Insertion starts from the blurred picture and puts them back: it should "
    "rise fast (a high area). A map must beat a random one on both (Petsiuk et al. 2018, "
    "RISE).",
    "Pointing game": "How often a map's brightest point lies on the white cell (or its "
    "nucleus) that an expert outlined (Zhang et al. 2018, 'Top-down neural attention by "
    "excitation backprop').",
    "Randomisation check": "The model's top layers are given random weights and the map is "
    "made again. A map that hardly changes (a high rank correlation with the first) shows "
    "the picture's edges, not what the model learned (Adebayo et al. 2018, 'Sanity checks "
    "for saliency maps').",
}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _lab(external: dict) -> str:
    return str(external.get("data", "?")).rstrip("/").split("/")[-1]


def _errors(metrics: dict, classes: list[str]) -> str:
    """The commonest confusion and the class recognised least often, in words."""
    matrix = metrics.get("confusion_matrix")
    if not matrix:
        return "No confusion matrix was stored."
    cells = [(count, true, predicted) for true, row in enumerate(matrix)
             for predicted, count in enumerate(row) if true != predicted]
    count, true, predicted = max(cells, default=(0, 0, 0))
    if count == 0:
        return "No test cell was named wrongly."
    recalls = {name: row["recall"] for name, row in metrics.get("per_class", {}).items()
               if row.get("recall") is not None}
    weakest = min(recalls, key=recalls.get) if recalls else None
    def named(name: str) -> str:  # as the atlas spells it: "ig" → "immature granulocyte"
        return common_name(name).lower()

    return (f"Its commonest slip: {named(classes[true])} called {named(classes[predicted])} "
            f"({count} of {sum(matrix[true])} cells)."
            + (f" It recognises {named(weakest)} least often ({_percent(recalls[weakest])})."
               if weakest else ""))


def audit_answers(evaluation: dict, externals: list[dict], checks: dict | None,
                  titles: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The five questions a reviewer asks of a model, each with a short answer (a figure)
    and one plain sentence: how often it is right, where it errs, how sure it is, on
    which laboratories it was measured, and whether its maps can be trusted. Answers are
    at most 9 characters: a Streamlit metric cuts a longer value off in a fifth of the
    page."""
    metrics, classes = evaluation["metrics"], list(evaluation["classes"])
    low, high = metrics.get("balanced_accuracy_ci95", (None, None))
    answers = [{
        "question": "How often is it right?",
        "answer": _percent(metrics["balanced_accuracy"]),
        "reading": f"Balanced accuracy on {metrics['n']:,} held-out test cells of its own "
                   f"laboratory (95 % interval {_percent(low)}–{_percent(high)}); "
                   f"{_percent(metrics['accuracy'])} of all cells named correctly.",
    }]
    wrong = metrics["n"] - round(metrics["accuracy"] * metrics["n"])
    answers.append({"question": "Where does it err?", "answer": f"{wrong} wrong",
                    "reading": _errors(metrics, classes)})
    ece = metrics.get("ece_after_temperature")
    confident = metrics.get("accuracy_confident")
    answers.append({
        "question": "How sure is it?",
        "answer": "–" if ece is None else f"ECE {ece:.3f}",
        "reading": ("Its stated confidence is within about "
                    f"{100 * ece:.1f} points of how often it is right"
                    if ece is not None else "Its calibration was not measured")
                   + (f"; the answers it does not send to Review are right "
                      f"{_percent(confident)} of the time." if confident is not None else "."),
    })
    if externals:
        scores = {_lab(e): e["metrics"]["balanced_accuracy"] for e in externals}
        worst = min(scores, key=scores.get)
        answers.append({
            "question": "On which labs?",
            "answer": f"{len(scores) + 1} labs",  # short: a metric's value does not wrap
            "reading": f"Its own and {', '.join(scores)}. Elsewhere it is right less often: "
                       f"{_percent(scores[worst])} balanced on {worst}, against "
                       f"{_percent(metrics['balanced_accuracy'])} at home.",
        })
    else:
        answers.append({"question": "On which labs?", "answer": "1 lab",
                        "reading": "It was not measured on another laboratory's cells, so how "
                                   "it does on them is unknown."})
    if checks:
        judged = _judged(checks)
        passed = [(titles or {}).get(name, name) for name, (faithful, _, correlation)
                  in judged.items() if faithful and _follows_the_model(correlation)]
        answers.append({
            "question": "Can the maps be trusted?",
            "answer": f"{len(passed)} of {len(judged)}",
            "reading": (f"{len(passed)} of {len(judged)} map methods ({', '.join(passed)}) "
                        "passed both checks: what they highlight "
                        "matters to the model, and they change when the model does."
                        if passed else "No method passed both checks: read every map "
                        "with care."),
        })
    else:
        answers.append({"question": "Can the maps be trusted?", "answer": "–",
                        "reading": "No explanation checks are stored for this model."})
    return answers


def _total(counts) -> int | None:
    if isinstance(counts, dict):
        return sum(_total(value) or 0 for value in counts.values())
    return counts if isinstance(counts, int) else None


def source_test_rows(source_tests: dict) -> list[dict]:
    """One row per training source (a model card's ``source_tests``): the held-out test
    cells of that source and how the model did on them."""
    rows = []
    for name, metrics in source_tests.items():
        interval = metrics.get("balanced_accuracy_ci95")
        rows.append({
            "source": name,
            "test cells": metrics.get("n"),
            "balanced accuracy": _percent(metrics.get("balanced_accuracy")),
            "95 % interval": (f"{_percent(interval[0])}–{_percent(interval[1])}"
                              if interval else "–"),
            "accuracy": _percent(metrics.get("accuracy")),
        })
    return rows


def source_rows(data: dict) -> list[dict]:
    """One row per training source of a card's ``data["sources"]`` (``name``, ``root``,
    ``counts``): where its cells came from and how many each split holds."""
    rows = []
    for source in data.get("sources", []):
        counts = source.get("counts", {})
        row = {"source": source.get("name", "?"), "folder": str(source.get("root", "?"))}
        if isinstance(counts, dict) and all(isinstance(v, dict) for v in counts.values()):
            row.update({split: _total(value) for split, value in counts.items()})
        else:
            row["cells"] = _total(counts)
        rows.append(row)
    return rows


def external_rows(externals: list[dict], home: dict) -> list[dict]:
    """One row per other laboratory: its cells and balanced accuracy, and the change from
    the model's own test split (``home``, its metrics)."""
    rows = []
    for external in externals:
        metrics = external["metrics"]
        change = metrics["balanced_accuracy"] - home["balanced_accuracy"]
        restricted = external.get("restricted", {}).get("balanced_accuracy")
        rows.append({"laboratory": _lab(external), "cells": metrics["n"],
                     "balanced accuracy": _percent(metrics["balanced_accuracy"]),
                     "change from home": f"{100 * change:+.1f} points",
                     "its classes only": _percent(restricted)})
    return rows


def source_benchmark_rows(benchmark: dict) -> list[dict]:
    """The leave-one-source-out table of a card's ``source_benchmark`` (see
    :mod:`hematovision.measure.source_benchmark`), one row per model and set, short headers."""
    return [{"model": row["model"], "data": row["data"],
             "seen in training": "its test split" if row["role"] == "held-out test split"
             else "never",
             "cells": row["n"],
             "4 common cells": _percent(row["balanced_common"]),
             "balanced": _percent(row["balanced"]),
             "ECE": f"{row['ece']:.3f}",
             "confident & wrong": _percent(row["share_confident_wrong"])}
            for row in benchmark.get("rows", [])]
