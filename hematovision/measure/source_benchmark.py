"""Leave one source out: does a model recognise cells from laboratories it never saw?

Each model is scored on every data set: a source it was trained on by that source's own
held-out test split, any other set whole. The table puts a one-hospital model beside a
several-source one, so what the second source buys on laboratories that *neither* learned
from can be read off one line per set. The headline number is balanced accuracy over
the four white cells every set here holds (eosinophil, lymphocyte, monocyte, neutrophil),
with the model choosing among all its classes, as in the dashboard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hematovision.io.data_home import datasets_dir
from hematovision.io.dataset import recorded_sources, scan_folder, source_name, test_split_files
from hematovision.measure.evaluation import evaluate
from hematovision.model.card import load_card, save_card
from hematovision.model.classifier import Classifier

__all__ = ["COMMON_CELLS", "RESULT_CELL", "benchmark_rows", "common_balanced_accuracy",
           "common_cell_recall", "format_markdown", "result_cell", "scored_sets",
           "trained_sources", "save_benchmark"]

COMMON_CELLS = ("eosinophil", "lymphocyte", "monocyte", "neutrophil")

# What :func:`result_cell` shows, in its order.
RESULT_CELL = "strict balanced accuracy; Confident and wrong; Unfamiliar"


def trained_sources(model_dir: str | Path) -> list[str]:
    """The sources a model learned from; a model from before sources were recorded
    learned from the one folder its card names."""
    names = recorded_sources(model_dir)
    if names:
        return names
    return [source_name(load_card(model_dir).results.data.get("source", ""))]


def common_cell_recall(confusion: np.ndarray, classes: list[str]) -> float | None:
    """Mean recall over the :data:`COMMON_CELLS` a confusion matrix (true classes in rows,
    the model's answers among all its classes in columns) holds cells of."""
    matrix = np.asarray(confusion)
    recalls = [matrix[i, i] / matrix[i].sum() for i in
               (classes.index(name) for name in COMMON_CELLS if name in classes)
               if matrix[i].sum()]
    return float(np.mean(recalls)) if recalls else None


def common_balanced_accuracy(report: dict) -> float | None:
    """:func:`common_cell_recall` of an evaluation report (strict: the model's answer
    among all its classes)."""
    return common_cell_recall(report["metrics"]["confusion_matrix"], report["classes"])


def _row(model: str, report: dict, trained_on: list[str]) -> dict:
    metrics = report["metrics"]
    name = source_name(report["data"])
    restricted = report.get("restricted", metrics)
    return {
        "model": model, "data": name,
        "role": ("held-out test split" if name in trained_on else "never trained on"),
        "n": metrics["n"],
        "balanced_common": common_balanced_accuracy(report),
        "balanced": metrics["balanced_accuracy"],
        "balanced_restricted": restricted["balanced_accuracy"],
        "ece": metrics["ece_after_temperature"],
        "share_unfamiliar": metrics["share_unfamiliar"],
        "share_confident_wrong": metrics["share_confident_wrong"],
    }


def benchmark_rows(model_dirs: list[str | Path], folders: list[str | Path],
                   bootstrap: int = 200, save: bool = False, progress: bool = False
                   ) -> list[dict]:
    """One row per (model, data set); ``save`` also stores each evaluation in its model
    folder, as ``hematovision evaluate`` does."""
    rows = []
    for model_dir in model_dirs:
        classifier = Classifier(model_dir)
        trained_on = trained_sources(model_dir)
        for folder in folders:
            report = evaluate(classifier, folder, bootstrap=bootstrap, save=save,
                              progress=progress)
            rows.append(_row(classifier.name, report, trained_on))
    return rows


def save_benchmark(model_dir: str | Path, rows: list[dict], command: str) -> None:
    """Record the table in a model's card (every model's rows, for comparison)."""
    card = load_card(model_dir)
    save_card(model_dir, card.with_results(source_benchmark={"command": command, "rows": rows}))


def _number(value, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f} %" if percent else f"{value:.3f}"


def result_cell(row: dict) -> str:
    """One row of :func:`benchmark_rows` as a table cell (see ``RESULT_CELL``)."""
    return (f"{_number(row['balanced'])}; {_number(row['share_confident_wrong'], True)}; "
            f"{_number(row['share_unfamiliar'], True)}")


def scored_sets(split_model: str | Path, quick: bool = False
                ) -> dict[str, list[tuple[Path, str]]]:
    """The labelled cells the benchmarks that change pictures (cut, shrunk) score, by name:
    ``zheng2018_d2`` and the Kaggle sample whole, and the PBC and Raabin-WBC test cells of
    ``split_model``'s ``split.json`` (which no shipped model trained on); ``quick``: the
    first alone."""
    data = datasets_dir()

    def whole(folder: Path) -> list[tuple[Path, str]]:
        return [(item.path, item.label) for item in scan_folder(folder).items]

    sets = {"zheng2018_d2": whole(data / "zheng2018_d2" / "images")}
    if not quick:
        sets["Kaggle sample"] = whole(data / "kaggle_bloodcells_sample")
        sets["PBC test"] = test_split_files(split_model, data / "pbc")
        sets["Raabin-WBC test"] = test_split_files(split_model, data / "raabin_wbc")
    return sets


def format_markdown(rows: list[dict]) -> str:
    """The table as Markdown, for the README and the terminal."""
    lines = ["| model | data | role | n | balanced, 4 common cells | balanced | balanced, "
             "classes present | ECE | Unfamiliar | Confident and wrong |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['data']} | {row['role']} | {row['n']} | "
            f"{_number(row['balanced_common'])} | {_number(row['balanced'])} | "
            f"{_number(row['balanced_restricted'])} | {_number(row['ece'])} | "
            f"{_number(row['share_unfamiliar'], True)} | "
            f"{_number(row['share_confident_wrong'], True)} |")
    return "\n".join(lines)
