"""Many cells at once: classify them, count the differential, keep every file accounted for."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import queue
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hematovision.io.archive import ArchiveError, read_zip
from hematovision.io.cell_finder import CellBox
from hematovision.io.folders import FolderLimits, files_under
from hematovision.io.images import (
    IMAGE_SUFFIXES,
    ImageError,
    ImageLimits,
    read_image,
    table_thumbnail,
)
from hematovision.model.classifier import Classifier
from hematovision.model.prediction import REVIEW, UNFAMILIAR, Prediction
from hematovision.model.runtime import one_blas_thread

__all__ = ["CellResult", "Differential", "sources_from_paths", "sources_from_upload",
           "classify_sources", "copies", "copies_warning", "differential", "results_csv",
           "read_results_csv", "CSV_ENCODING", "NOT_WHITE_CELLS", "Framed"]

log = logging.getLogger(__name__)
# With its byte-order mark, Excel reads UTF-8 as UTF-8 ("Zelle ä" instead of "Zelle Ã¤");
# Python's csv, pandas and LibreOffice read it either way.
CSV_ENCODING = "utf-8-sig"


@dataclass(frozen=True)
class CellResult:
    """One input: its prediction and a small copy of the image, or why it failed."""

    name: str
    sha256: str
    prediction: Prediction | None = None
    thumbnail: np.ndarray | None = None
    error: str = ""


# Classes a model may know that are not white cells: a white-cell differential leaves them
# out, or a slide full of platelets would lower every white cell's share. Erythroblasts are
# reported per 100 white cells, as haematologists count nucleated red cells.
NOT_WHITE_CELLS = frozenset({"erythroblast", "platelet"})


@dataclass(frozen=True)
class Differential:
    """The white-cell differential: counts and shares per white-cell class; Review and
    Unfamiliar cells are left out of the counts and reported on their own, and so are the
    confident answers for classes that are not white cells (``others``)."""

    classes: tuple[str, ...]
    counts: dict[str, int]
    shares: dict[str, float]
    review: int
    unreadable: int
    total: int
    unfamiliar: int = 0
    others: dict[str, int] = field(default_factory=dict)

    @property
    def counted(self) -> int:
        """White cells counted: the total the shares are of."""
        return sum(self.counts.values())

    def per_100_white_cells(self, name: str) -> float | None:
        """A class outside the differential, per 100 white cells counted (``None`` without
        white cells)."""
        return 100 * self.others[name] / self.counted if self.counted else None

    def others_text(self) -> str:
        """The classes outside the differential in words, e.g. "2 platelet, 1 erythroblast
        (1.0 per 100 white cells)"; empty when the model knows none."""
        parts = []
        for name, count in self.others.items():
            rate = self.per_100_white_cells(name)
            parts.append(f"{count} {name}" + (
                f" ({rate:.1f} per 100 white cells)" if rate is not None and count else ""))
        return ", ".join(parts)

    def interval(self, name: str) -> tuple[float, float]:
        """95 % interval of a class's share: how far a differential of this many cells can
        stray from the smear's true one by chance alone (Wilson score, as for any
        proportion; a 100-cell manual differential has the same uncertainty)."""
        # Imported here: scipy.stats takes seconds to import, and every dashboard page (the
        # sidebar's audit log) imports this module before its first answer.
        from scipy.stats import binomtest

        if not self.counted:
            return 0.0, 1.0
        ci = binomtest(self.counts[name], self.counted).proportion_ci(method="wilson")
        return float(ci.low), float(ci.high)


def sources_from_paths(paths: Iterable[str | Path], limits: FolderLimits = FolderLimits()
                       ) -> list[tuple[str, bytes | None, str]]:
    """``(name, bytes, error)`` for files, folders (recursive) and .zip files on disk; a
    file named twice (a folder and a file in it, say) is read once. ``limits`` bound each
    folder walked (:class:`hematovision.errors.FolderTooLargeError` past them).

    Inside folders, files are taken by their suffix; the others (notes, tables, a phone's
    .heic) are skipped with a warning that names them, so none goes missing unnoticed.
    """
    files: list[Path] = []
    skipped: list[Path] = []
    unreachable: list[tuple[str, bytes | None, str]] = []
    for path in map(Path, paths):
        try:
            is_folder = path.is_dir()
        except OSError as error:  # a name too long for the file system, say
            unreachable.append(_unreadable(path, error))
            continue
        if is_folder:
            contents = files_under(path, limits)
            for file in contents.files:
                taken = file.suffix.lower() in IMAGE_SUFFIXES + (".zip",)
                (files if taken else skipped).append(file)
            unreachable += [(str(link), None, f"{link}: a broken link or unreadable folder")
                            for link in contents.broken]
        else:
            files.append(path)
    if skipped:
        log.warning("skipped %d file%s without an image suffix (%s): %s", len(skipped),
                    "s" if len(skipped) > 1 else "", ", ".join(IMAGE_SUFFIXES),
                    ", ".join(map(str, skipped[:10])) + (" …" if len(skipped) > 10 else ""))
    sources = unreachable
    for path in _once(files):
        try:
            data = path.read_bytes()
        except OSError as error:
            sources.append(_unreadable(path, error))
            continue
        if path.suffix.lower() == ".zip":
            sources += sources_from_upload(str(path), data)
        else:
            sources.append((str(path), data, ""))
    return sources


def _unreadable(path: Path, error: OSError) -> tuple[str, None, str]:
    return str(path), None, f"{path}: cannot be read ({error.strerror})"


def _once(files: list[Path]) -> list[Path]:
    """The files in order, each once however it was named (``a/x.jpg``, ``./a/x.jpg``)."""
    seen: set[Path] = set()
    kept = []
    for path in files:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept


def sources_from_upload(name: str, data: bytes) -> list[tuple[str, bytes | None, str]]:
    """An uploaded file, or each member of an uploaded .zip, as ``(name, bytes, error)``."""
    if not name.lower().endswith(".zip"):
        return [(name, data, "")]
    try:
        return [(f"{name}/{m.name}", m.data if not m.error else None, m.error)
                for m in read_zip(data)]
    except ArchiveError as error:
        return [(name, None, f"{name}: {error}")]


class Framed(NamedTuple):
    """A readable input, framed and ready for the network."""

    name: str
    digest: str
    model_input: np.ndarray
    box: CellBox
    thumbnail: np.ndarray


def classify_sources(classifier: Classifier, sources: list[tuple[str, bytes | None, str]],
                     threshold: float | None = None, limits: ImageLimits = ImageLimits(),
                     batch_size: int = 8, progress: Callable[[float], None] | None = None,
                     workers: int | None = None) -> list[CellResult]:
    """Classify every source in order; a bad file becomes a row with its error.

    The sources go in chunks of ``batch_size`` to ``workers`` threads (default: one per
    core, at most 4). Each reads its chunk's files, frames their cells and classifies them
    on a copy of the network of its own (:meth:`Classifier.with_threads`, the cores shared
    out), BLAS on one thread (``one_blas_thread``): every core is always preparing or
    classifying, and no threads wait for each other (docs/speed.md). A single chunk runs
    on the model's own network. Large JPEGs are decoded smaller (see ``read_image``).
    """
    cores = os.cpu_count() or 1
    workers = workers or min(4, cores)
    shortest = 2 * classifier.input_size
    chunks = [sources[start : start + batch_size] for start in range(0, len(sources), batch_size)]
    views: queue.SimpleQueue = queue.SimpleQueue()

    def prepare(source: tuple[str, bytes | None, str]):
        name, data, error = source
        digest = hashlib.sha256(data).hexdigest() if data is not None else ""
        if data is None:
            return CellResult(name, digest, error=error)
        try:
            image = read_image(data, name=name, limits=limits, shortest=shortest)
        except ImageError as failure:
            return CellResult(name, digest, error=str(failure))
        box = classifier.frame(image)
        return Framed(name, digest, classifier.prepare(image, box), box, table_thumbnail(image))

    def classify(chunk: list) -> list[CellResult]:
        try:
            view = views.get_nowait()
        except queue.Empty:  # made here: each costs ~90 MiB, and a short batch needs few
            view = classifier if len(chunks) == 1 else classifier.with_threads(
                max(1, cores // workers))
        try:
            return _classified(view, [prepare(source) for source in chunk], threshold)
        finally:
            views.put(view)

    results: list[CellResult] = []
    with ThreadPoolExecutor(workers) as pool, one_blas_thread():
        for rows in _in_order(pool, classify, chunks, ahead=2 * workers):
            results += rows
            if progress is not None:
                progress(len(results) / len(sources))
    return results


def _in_order(pool: ThreadPoolExecutor, function: Callable, items: list, ahead: int):
    """``function(item)`` for each item, in order, with at most ``ahead`` running or done
    and not yet taken (a slide of thousands of cells never sits in memory at once)."""
    pending: deque = deque(pool.submit(function, item) for item in items[:ahead])
    for item in items[ahead:]:
        yield pending.popleft().result()
        pending.append(pool.submit(function, item))
    while pending:
        yield pending.popleft().result()


def _classified(classifier: Classifier, rows: list, threshold: float | None
                ) -> list[CellResult]:
    """Rows with their answers: one network call for every framed row."""
    framed = [row for row in rows if isinstance(row, Framed)]
    if not framed:
        return rows
    answers = iter(classifier.predict_inputs(
        np.stack([row.model_input for row in framed]), [row.box for row in framed], threshold))
    return [CellResult(row.name, row.digest, next(answers), row.thumbnail)
            if isinstance(row, Framed) else row for row in rows]


def copies(results: list[CellResult]) -> int:
    """How many readable inputs are byte-identical to an earlier one: the same cell sent
    twice, which a differential would count twice."""
    digests = [r.sha256 for r in results if r.prediction is not None]
    return len(digests) - len(set(digests))


def copies_warning(results: list[CellResult]) -> str | None:
    """What to tell the user when the batch holds the same cell more than once."""
    repeated = copies(results)
    if not repeated:
        return None
    return (f"{repeated} file{'s are' if repeated > 1 else ' is'} byte-identical to another "
            "(the same sha256): the same cell counted again")


def differential(results: list[CellResult], classes: tuple[str, ...]) -> Differential:
    """Count confident answers: white cells into the differential, the classes in
    :data:`NOT_WHITE_CELLS` beside it."""
    white = tuple(name for name in classes if name.lower() not in NOT_WHITE_CELLS)
    counts = {name: 0 for name in classes}
    review = unreadable = unfamiliar = 0
    for result in results:
        if result.prediction is None:
            unreadable += 1
        elif result.prediction.status == UNFAMILIAR:
            unfamiliar += 1
        elif result.prediction.status == REVIEW:
            review += 1
        else:
            counts[result.prediction.label] += 1
    others = {name: count for name, count in counts.items() if name not in white}
    counts = {name: counts[name] for name in white}
    counted = sum(counts.values())
    shares = {name: (count / counted if counted else 0.0) for name, count in counts.items()}
    return Differential(white, counts, shares, review, unreadable, len(results),
                        unfamiliar, others)


def results_csv(results: list[CellResult], classifier: Classifier) -> str:
    """The table as CSV text: one row per input, errors included.

    Columns: path, label, confidence, status, one probability per class (named by the
    class), familiarity distance, why the image is Unfamiliar, sha256 of the file, the
    model's name and the sha256 of its file, error. The model columns let a reviewer who
    finds the table months later tell which model answered.
    """
    classes = classifier.classes
    model = [classifier.name, classifier.model_sha256]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "label", "confidence", "status", *classes, "distance",
                     "unfamiliar_reason", "sha256", "model", "model_sha256", "error"])
    for r in results:
        p = r.prediction
        if p is None:
            writer.writerow([_cell(r.name), "", "", "", *[""] * len(classes), "", "",
                             r.sha256, *model, _cell(r.error)])
        else:
            distance = "" if p.distance is None else f"{p.distance:.4f}"
            writer.writerow([_cell(r.name), p.label, f"{p.confidence:.6f}", p.status,
                             *[f"{v:.6f}" for v in p.probabilities], distance,
                             p.unfamiliar_reason, r.sha256, *model, ""])
    return buffer.getvalue()


# A spreadsheet runs a cell that starts with one of these as a formula; a file may be
# named "=HYPERLINK(...).jpg". OWASP's advice: lead such text with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    # A name that already starts with a quote gets one more, so that reading back can
    # always take exactly one off.
    return "'" + text if text.startswith((*_FORMULA_START, "'")) else text


def read_results_csv(text: str) -> list[dict[str, str]]:
    """The rows of :func:`results_csv`, names and errors as they were before quoting."""
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    for row in rows:
        for key in ("path", "error"):
            if row[key].startswith("'") and row[key][1:].startswith((*_FORMULA_START, "'")):
                row[key] = row[key][1:]
    return rows
