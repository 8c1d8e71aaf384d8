"""End-to-end speed of a batch (read, find the cell, classify), today's path against the
path before issue 26, in one run; and how far the frames moved.

    python benchmarks/batch.py [--data ../shared/datasets/pbc/basophil] [--limit 400]
    python benchmarks/batch.py --quick     # 32 files, 5 frames per set: a smoke test

Prints cells per second for the network alone (inputs framed beforehand: the ceiling on
this machine as busy as it is), the earlier path (the float64 ``rgb2hed`` cell finder kept in
``tests/reference_framing.py``, reading and framing a batch, then classifying it, in turn)
and for ``hematovision.report.batch.classify_sources`` (the fast finder, reading and framing the
next batches while the network classifies this one), their ratio, and whether the two give
the same answers. Then, for up to ``--frames`` pictures of PBC, zheng2018_d2 and the Kaggle
sample, the intersection over union of the two frames (lowest, 1st percentile, median).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hematovision.io.cell_finder import find_cell  # noqa: E402
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.images import ImageError, read_image  # noqa: E402
from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402
from hematovision.report.batch import (  # noqa: E402
    CellResult,
    Framed,
    classify_sources,
    sources_from_paths,
    table_thumbnail,
)
from tests.reference_framing import box_iou, reference_find_cell  # noqa: E402

DATASETS = datasets_dir()
FRAME_SETS = {"PBC": DATASETS / "pbc", "zheng2018_d2": DATASETS / "zheng2018_d2" / "images",
              "Kaggle sample": DATASETS / "kaggle_bloodcells_sample"}


def earlier_path(classifier: Classifier, sources, batch_size: int = 32) -> list[CellResult]:
    """``classify_sources`` as of commit 9557a01: a batch is read and framed on the worker
    threads, then classified, then the next batch is read."""
    def prepare(source):
        name, data, error = source
        digest = hashlib.sha256(data).hexdigest() if data is not None else ""
        if data is None:
            return CellResult(name, digest, error=error)
        try:
            image = read_image(data, name=name)
        except ImageError as failure:
            return CellResult(name, digest, error=str(failure))
        box = reference_find_cell(image)
        return Framed(name, digest, classifier.prepare(image, box), box, table_thumbnail(image))

    results = []
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        for start in range(0, len(sources), batch_size):
            rows = list(pool.map(prepare, sources[start : start + batch_size]))
            framed = [row for row in rows if isinstance(row, Framed)]
            answers = iter(classifier.predict_inputs(
                np.stack([row.model_input for row in framed]), [row.box for row in framed]))
            results += [CellResult(row.name, row.digest, next(answers), row.thumbnail)
                        if isinstance(row, Framed) else row for row in rows]
    return results


def network_alone(classifier: Classifier, sources, batch_size: int = 32) -> float:
    """Cells per second of the seam alone, on inputs read and framed beforehand: the
    ceiling for files → answers on this machine, as busy as it is now."""
    framed = []
    for name, data, _ in sources:
        image = read_image(data, name=name)
        box = classifier.frame(image)
        framed.append((classifier.prepare(image, box), box))
    started = time.perf_counter()
    for start in range(0, len(framed), batch_size):
        chunk = framed[start : start + batch_size]
        classifier.predict_inputs(np.stack([row[0] for row in chunk]), [row[1] for row in chunk])
    return len(framed) / (time.perf_counter() - started)


def _timed(function, *args):
    started = time.perf_counter()
    results = function(*args)
    return time.perf_counter() - started, results


def frame_agreement(limit: int) -> None:
    """IoU of the fast finder's frame against the earlier one, per data set."""
    for label, root in FRAME_SETS.items():
        files = sorted(path for path in root.rglob("*")
                       if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        files = [files[i] for i in np.linspace(0, len(files) - 1, min(limit, len(files)),
                                                dtype=int)]
        scores = []
        for path in files:
            image = read_image(path)
            scores.append(box_iou(find_cell(image), reference_find_cell(image)))
        scores = np.array(scores)
        print(f"frames {label:14s} {len(scores):4d} pictures  IoU lowest {scores.min():.3f}  "
              f"1st pct {np.percentile(scores, 1):.3f}  median {np.median(scores):.3f}  "
              f"≥ 0.95: {np.mean(scores >= 0.95):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(DATASETS / "pbc" / "basophil"))
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--frames", type=int, default=300,
                        help="pictures per data set for the frame comparison (0: none)")
    parser.add_argument("--quick", action="store_true",
                        help="32 files and 5 pictures per data set: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.limit, args.frames = 32, 5
    classifier = Classifier(args.model)
    sources = [source for source in sources_from_paths([args.data])
               if source[1] is not None][: args.limit]
    classify_sources(classifier, sources[:64])  # warm up the runtime
    earlier_path(classifier, sources[:64])
    ceiling = network_alone(classifier, sources)
    before, first = _timed(earlier_path, classifier, sources)
    now, second = _timed(classify_sources, classifier, sources)
    # The whole prediction: label, every probability, familiarity distance and status.
    same = sum(a.prediction == b.prediction for a, b in zip(first, second))
    print(f"{len(sources)} files from {args.data}, {os.cpu_count()} cores")
    print(f"network alone     {ceiling:7.1f} cells/s   (inputs framed beforehand)")
    print(f"earlier path      {len(sources) / before:7.1f} cells/s")
    print(f"classify_sources  {len(sources) / now:7.1f} cells/s   {before / now:.2f}× the earlier, "
          f"{len(sources) / now / ceiling:.0%} of the network alone")
    print(f"same answers: {same} of {len(sources)}")
    if args.frames:
        frame_agreement(args.frames)


if __name__ == "__main__":
    main()
