"""Classify many files at once and write one CSV row per file."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hematovision.classifier import Classifier, Prediction
from hematovision.images import IMAGE_SUFFIXES, ImageError, ImageLimits, read_image

__all__ = ["FileResult", "collect_files", "classify_files", "write_csv"]


@dataclass(frozen=True)
class FileResult:
    """One input file: a prediction, or the reason it could not be classified."""

    path: Path
    prediction: Prediction | None = None
    error: str = ""


def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """Named files as given; folders searched recursively for image files (by suffix).

    A named path that does not exist is kept, so it gets an error row instead of
    vanishing from the results.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file()
                            and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        else:
            files.append(path)
    return files


def classify_files(classifier: Classifier, files: list[Path], batch_size: int = 32,
                   limits: ImageLimits = ImageLimits(), progress: bool = False
                   ) -> Iterator[FileResult]:
    """Yield a :class:`FileResult` per file, in order; bad files never stop the batch."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="img", desc="classifying")
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        inputs, ok, errors = [], [], {}
        for index, path in enumerate(chunk):
            try:
                inputs.append(classifier.prepare(read_image(path, limits=limits)))
                ok.append(index)
            except ImageError as error:
                errors[index] = str(error)
        predictions = (classifier.predictions_from(classifier.predict_proba(np.stack(inputs)))
                       if inputs else [])
        by_index = dict(zip(ok, predictions))
        for index, path in enumerate(chunk):
            yield FileResult(path, by_index.get(index), errors.get(index, ""))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()


def write_csv(results: Iterable[FileResult], classes: tuple[str, ...], out: str | Path) -> int:
    """Write results as CSV; returns how many files failed."""
    failed = 0
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "confidence", "status", *classes, "error"])
        for result in results:
            if result.prediction is None:
                failed += 1
                writer.writerow([result.path, "", "", "", *[""] * len(classes), result.error])
            else:
                p = result.prediction
                writer.writerow([result.path, p.label, f"{p.confidence:.6f}", p.status,
                                 *[f"{v:.6f}" for v in p.probabilities], ""])
    return failed
