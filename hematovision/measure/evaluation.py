"""Measure a trained model on its held-out test split or on an external folder."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import softmax

from hematovision.io.dataset import (
    learned_from,
    recorded_sources,
    scan_folder,
    split_files,
    test_split_files,
)
from hematovision.io.decoding import decode_images
from hematovision.io.files import write_json_atomic
from hematovision.io.focus import sharpness
from hematovision.io.images import missing_cell
from hematovision.measure.metrics import balanced_accuracy, classification_report
from hematovision.model.calibration import expected_calibration_error, reliability_bins
from hematovision.model.card import load_card, save_card
from hematovision.model.card_markdown import auc_text, percent_text
from hematovision.model.classifier import Classifier
from hematovision.model.prediction import CONFIDENT, REVIEW, UNFAMILIAR

__all__ = ["CellSelection", "evaluate", "format_report", "format_table", "select_cells"]

log = logging.getLogger(__name__)


def _calibration(logits: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict:
    raw = softmax(logits, axis=1)
    return {
        "ece_before_temperature": expected_calibration_error(raw, labels),
        "ece_after_temperature": expected_calibration_error(probabilities, labels),
        "reliability_before": [asdict(b) for b in reliability_bins(raw, labels)],
        "reliability_after": [asdict(b) for b in reliability_bins(probabilities, labels)],
    }


def _flags(labels: np.ndarray, probabilities: np.ndarray, statuses: list[str],
           classes: list[str]) -> dict:
    """How many cells were flagged, and how good the answers are on the rest."""
    statuses = np.array(statuses)
    correct = probabilities.argmax(axis=1) == labels
    familiar = statuses != UNFAMILIAR
    confident = statuses == CONFIDENT
    result = {
        "share_unfamiliar": float(np.mean(~familiar)) if len(labels) else 0.0,
        "share_review": float(np.mean(statuses == REVIEW)) if len(labels) else 0.0,
        "accuracy_familiar": float(np.mean(correct[familiar])) if familiar.any() else None,
        "balanced_accuracy_familiar": (balanced_accuracy(
            labels[familiar], probabilities[familiar].argmax(axis=1)) if familiar.any()
            else None),
        "accuracy_confident": float(np.mean(correct[confident])) if confident.any() else None,
        # The answers a user would trust and should not: Confident, yet wrong.
        "share_confident_wrong": (float(np.mean(confident & ~correct)) if len(labels)
                                  else 0.0),
        # Of the cells the model got wrong, how many did it flag (Review or Unfamiliar)?
        "wrong_flagged": (float(np.mean(~confident[~correct])) if (~correct).any() else None),
    }
    return result


@dataclass(frozen=True)
class CellSelection:
    """The labelled images an evaluation scores: a model's test split of a source it
    learned from, or another folder whole but for any image the model learned from."""

    kind: str                                # "test split" or "external folder"
    files: list[tuple[Path, str]]            # (image, class name)
    ignored_classes: list[str] = field(default_factory=list)
    left_out_learned_from: list[Path] = field(default_factory=list)


def select_cells(classifier: Classifier, data_dir: str | Path, whole_folder: bool = False
                 ) -> CellSelection:
    """The cells :func:`evaluate` scores on ``data_dir`` for this model."""
    data_dir = Path(data_dir)
    classes = list(classifier.classes)
    files = None if whole_folder else test_split_files(classifier.model_dir, data_dir)
    if files is None and not whole_folder and split_files(classifier.model_dir, data_dir,
                                                          "train") is not None:
        # Its own training data without a test split (too few images, or the test files
        # gone) is no other laboratory, and must not be filed as one.
        raise ValueError(f"{data_dir} is the data {classifier.model_dir} was trained on, but "
                         "its recorded test split is empty or mostly missing there; --all "
                         "scores the images it did not learn from instead")
    kind = "test split" if files is not None else "external folder"
    ignored: list[str] = []
    known: list = []
    if files is None:
        dataset = scan_folder(data_dir)
        ignored = [c for c in dataset.classes if c not in classes]
        if ignored:
            log.warning("left out folders that are not among the model's classes: %s",
                        ", ".join(ignored))
        items = [item for item in dataset.items if item.label in classes]
        seen = learned_from(classifier.model_dir)
        known = [item for item in items if item.sha256 in seen]
        if known:
            log.warning("left out %d of %d images the model learned from (%s); its answers "
                        "on them would flatter it", len(known), len(items),
                        ", ".join(sorted({seen[item.sha256] for item in known})))
        files = [(item.path, item.label) for item in items if item.sha256 not in seen]
        if items and not files:
            raise ValueError(f"{data_dir}: the model learned from every one of these "
                             f"{len(items)} images; score it on cells it has not seen")
    if not files:
        raise ValueError(f"{data_dir}: no images of the model's classes ({', '.join(classes)})")
    return CellSelection(kind, list(files), ignored, [item.path for item in known])


def evaluate(classifier: Classifier, data_dir: str | Path, whole_folder: bool = False,
             progress: bool = False, bootstrap: int = 1000, save: bool = True) -> dict:
    """Evaluate on the model's test split under ``data_dir`` or, for another folder, on
    all of it but the cells the model learned from (see
    :func:`hematovision.io.dataset.learned_from`; they are listed in the report).

    Class folders are matched to the model's classes case-insensitively; folders of other
    classes are left out and listed. When the folder has fewer classes than the model,
    the result is given twice: strict (argmax over all the model's classes) and
    restricted to the classes present.

    With ``save``, writes ``evaluation.json`` (test split) or
    ``evaluation_<folder>.json`` into the model folder and records the result in the card.
    """
    data_dir = Path(data_dir)
    classes = list(classifier.classes)
    selection = select_cells(classifier, data_dir, whole_folder)
    files, kind = selection.files, selection.kind
    framing = classifier.card.config.framing
    images, kept, failed, boxes = decode_images(
        [path for path, _ in files], classifier.input_size, progress=progress, framing=framing)
    if not kept:
        example = f", e.g. {failed[0][0]}: {failed[0][1]}" if failed else ""
        raise ValueError(f"{data_dir}: none of its {len(files)} images could be read{example}")
    labels = np.array([classes.index(files[i][1]) for i in kept])
    batch = images.astype(np.float32)
    logits, probabilities, features = classifier.analyse(batch)
    distances = classifier.distances(features)
    no_cell = [missing_cell(box, framing) for box in boxes]
    focus = sharpness(batch, boxes)
    statuses = [p.status for p in classifier.predictions_from(
        probabilities, None, distances, no_cell, focus)]
    report = {
        "model": classifier.name,
        "model_sha256": classifier.model_sha256,
        "data": str(data_dir),
        "kind": kind,
        "classes": classes,
        "unreadable": [str(path) for path, _ in failed],
        "ignored_classes": selection.ignored_classes,
        "left_out_learned_from": [str(path) for path in selection.left_out_learned_from],
        "metrics": classification_report(labels, probabilities, classes, bootstrap=bootstrap),
    }
    report["metrics"].update(_calibration(logits, probabilities, labels))
    report["metrics"].update(_flags(labels, probabilities, statuses, classes))
    present = sorted(set(labels.tolist()))
    if len(present) < len(classes):
        restricted = softmax(logits[:, present] / classifier.card.config.temperature, axis=1)
        mapped = np.array([present.index(label) for label in labels])
        names = [classes[i] for i in present]
        report["restricted"] = classification_report(mapped, restricted, names,
                                                     bootstrap=bootstrap)
        report["restricted"]["classes"] = names
        report["restricted"].update({
            "ece_after_temperature": expected_calibration_error(restricted, mapped)})
    report["predictions"] = [
        {"path": _relative(files[i][0], data_dir), "label": files[i][1],
         "predicted": classes[int(np.argmax(probabilities[row]))],
         "confidence": float(np.max(probabilities[row])), "status": statuses[row],
         "distance": None if distances is None else round(float(distances[row]), 4),
         "sharpness": round(float(focus[row]), 3), "no_cell": no_cell[row]}
        for row, i in enumerate(kept)
    ]
    if save:
        _save(classifier, report, data_dir)
    return report


def _relative(path: Path, root: Path) -> str:
    """Paths below the data folder are stored relative to it, so the report stays valid
    wherever the dataset is mounted."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _save(classifier: Classifier, report: dict, data_dir: Path) -> None:
    model_dir = classifier.model_dir
    # Re-read: an earlier evaluation in this process may have added to the card on disk.
    card = load_card(model_dir)
    summary_keys = ("n", "accuracy", "accuracy_ci95", "balanced_accuracy",
                    "balanced_accuracy_ci95", "macro_auc_ovr", "per_class",
                    "ece_before_temperature", "ece_after_temperature", "share_unfamiliar",
                    "share_review", "accuracy_familiar", "balanced_accuracy_familiar",
                    "accuracy_confident", "share_confident_wrong", "wrong_flagged")
    summary = {k: report["metrics"][k] for k in summary_keys if k in report["metrics"]}
    # Resolved: "--data ." names the folder, not "", which every such set would share.
    set_name = data_dir.resolve().name
    if report["kind"] == "test split":
        sources = recorded_sources(model_dir)
        # The first source's test split is the model's own (evaluation.json, the card's
        # metrics); every source's is also kept under its name.
        first = not sources or sources[0] == set_name
        file_name = "evaluation.json" if first else f"evaluation_test_{set_name}.json"
        write_json_atomic(model_dir / file_name, report)
        if first:
            card = card.with_results(metrics=summary)
        if sources:
            card = card.with_results(source_tests={**card.results.source_tests,
                                                   set_name: summary})
    else:
        write_json_atomic(model_dir / f"evaluation_{set_name}.json", report)
        entry = {"name": set_name, "metrics": summary}
        if "restricted" in report:
            entry["restricted"] = {k: report["restricted"][k] for k in summary_keys
                                   if k in report["restricted"]}
            entry["restricted"]["classes"] = report["restricted"]["classes"]
        # A set measured again keeps its place in the card; a new one goes last.
        names = [e.get("name") for e in card.results.external]
        external = list(card.results.external)
        if set_name in names:
            external[names.index(set_name)] = entry
        else:
            external.append(entry)
        card = card.with_results(external=external)
    save_card(model_dir, card)


def _row(name: str, metrics: dict) -> str:
    ci = metrics.get("balanced_accuracy_ci95", [float("nan")] * 2)
    ece = metrics.get("ece_after_temperature", float("nan"))
    return (f"{name:<24} n={metrics['n']:<6} accuracy {metrics['accuracy']:.4f}  "
            f"balanced {metrics['balanced_accuracy']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]  "
            f"AUC {auc_text(metrics['macro_auc_ovr'])}  ECE {ece:.4f}")


def format_report(report: dict) -> str:
    """A plain-text table of an evaluation report, for the terminal."""
    metrics = report["metrics"]
    lines = [f"{report['model']} on {report['data']} ({report['kind']})",
             _row("all model classes", metrics)]
    if "restricted" in report:
        lines.append(_row("classes present only", report["restricted"]))
    lines.append(f"ECE before temperature {metrics['ece_before_temperature']:.4f}, "
                 f"after {metrics['ece_after_temperature']:.4f}")
    lines.append(f"{'class':<14}{'n':>6}{'precision':>11}{'recall':>9}{'F1':>8}   F1 95% CI")
    for name, row in metrics["per_class"].items():
        if not row["support"]:  # recall and F1 are undefined, not 0
            lines.append(f"{name:<14}{0:>6}   no cells of this class here")
            continue
        precision = "–" if row["precision"] is None else f"{row['precision']:.4f}"
        interval = "[{:.4f}, {:.4f}]".format(*row["f1_ci95"]) if row["f1_ci95"] else "–"
        lines.append(f"{name:<14}{row['support']:>6}{precision:>11}{row['recall']:>9.4f}"
                     f"{row['f1']:>8.4f}   {interval}")
    matrix = metrics["confusion_matrix"]
    short = [c[:5] for c in report["classes"]]
    lines.append("confusion matrix (rows true, columns predicted):")
    lines.append(" " * 14 + "".join(f"{c:>7}" for c in short))
    for name, row in zip(report["classes"], matrix):
        if sum(row):
            lines.append(f"{name:<14}" + "".join(f"{v:>7}" for v in row))
    if "share_unfamiliar" in metrics:
        familiar = metrics["accuracy_familiar"]
        lines.append(
            f"flagged Unfamiliar {percent_text(metrics['share_unfamiliar'])}, Review "
            f"{percent_text(metrics['share_review'])}; accuracy on the cells not flagged "
            f"Unfamiliar {percent_text(familiar)}; of the wrong answers "
            f"{percent_text(metrics['wrong_flagged'])} were flagged")
    if report["unreadable"]:
        lines.append(f"unreadable files left out: {len(report['unreadable'])}")
    if report.get("left_out_learned_from"):
        lines.append("left out, as the model learned from them: "
                     f"{len(report['left_out_learned_from'])}")
    return "\n".join(lines)


def format_table(reports: list[dict]) -> str:
    """One line per data set: the cross-laboratory comparison, strict and restricted."""
    header = (f"{'data':<28}{'labels':<12}{'n':>6}{'accuracy':>10}{'balanced':>10}"
              f"{'ECE':>8}{'Unfamiliar':>12}{'Review':>9}")
    lines = [header, "-" * len(header)]
    for report in reports:
        name = (Path(report["data"]).resolve().name
                + (" (test)" if report["kind"] == "test split" else ""))
        metrics = report["metrics"]
        flags = (f"{percent_text(metrics.get('share_unfamiliar')):>12}"
                 f"{percent_text(metrics.get('share_review')):>9}")
        for labels, row in (("strict", metrics), ("restricted", report.get("restricted"))):
            if row is None:
                continue
            lines.append(f"{name:<28}{labels:<12}{row['n']:>6}{row['accuracy']:>10.3f}"
                         f"{row['balanced_accuracy']:>10.3f}"
                         f"{row.get('ece_after_temperature', float('nan')):>8.3f}{flags}")
    return "\n".join(lines)
