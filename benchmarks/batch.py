"""End-to-end speed of a batch (read, find the cell, classify): the path now against the
path of commit 66c5e47 and the path before issue 26, in one run; where a cell's time goes;
and how far the frames moved.

    python benchmarks/batch.py [--data ../shared/datasets/pbc/basophil] [--limit 400]
    python benchmarks/batch.py --repeats 3  # each path three times, in turn: the medians
    python benchmarks/batch.py --quick     # 32 files, 5 frames per set: a smoke test

Prints cells per second for
- the network alone (inputs framed beforehand): the seam's one interpreter over all cores,
  and one single-threaded copy per core as ``classify_sources`` now runs it; the ceilings
  on this machine as busy as it is;
- the path before issue 26 (commit 9557a01: the float64 ``rgb2hed`` finder kept in
  ``tests/reference_framing.py``; a batch read and framed on the worker threads, then
  classified, then the next read);
- the path of commit 66c5e47 (its finder, also kept there, and its thumbnail; two threads
  read and frame up to two batches of 32 ahead of the one network spread over both cores);
- ``hematovision.report.batch.classify_sources`` now;
their ratios, and whether they give the same answers (label, every probability, distance,
status). Then the milliseconds a cell spends in each step on one thread, then and now,
and, for up to ``--frames`` pictures of PBC, zheng2018_d2 and the Kaggle sample, the
intersection over union of today's frame with each earlier finder's.
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

from PIL import Image  # noqa: E402

from hematovision.io.cell_finder import find_cell  # noqa: E402
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.images import (  # noqa: E402
    ImageError,
    read_image,
    table_thumbnail,
    to_model_input,
)
from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.runtime import one_blas_thread  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402
from hematovision.report.batch import (  # noqa: E402
    CellResult,
    Framed,
    classify_sources,
    sources_from_paths,
)
from tests.reference_framing import box_iou, finder_66c5e47, reference_find_cell  # noqa: E402

DATASETS = datasets_dir()
FRAME_SETS = {"PBC": DATASETS / "pbc", "zheng2018_d2": DATASETS / "zheng2018_d2" / "images",
              "Kaggle sample": DATASETS / "kaggle_bloodcells_sample"}


def thumbnail_66c5e47(image: np.ndarray, size: int = 96) -> np.ndarray:
    """The table's thumbnail as of commit 66c5e47."""
    picture = Image.fromarray(image)
    picture.thumbnail((size, size), Image.BILINEAR, reducing_gap=1.5)
    return np.asarray(picture)


def _preparer(classifier: Classifier, finder, thumbnail, shortest: int | None = None):
    """The worker threads' step of an earlier path: read, frame, shape, thumbnail."""
    def prepare(source):
        name, data, error = source
        digest = hashlib.sha256(data).hexdigest() if data is not None else ""
        if data is None:
            return CellResult(name, digest, error=error)
        try:
            image = read_image(data, name=name, shortest=shortest)
        except ImageError as failure:
            return CellResult(name, digest, error=str(failure))
        box = finder(image)
        return Framed(name, digest, classifier.prepare(image, box), box, thumbnail(image))
    return prepare


def _answered(classifier: Classifier, rows: list) -> list[CellResult]:
    framed = [row for row in rows if isinstance(row, Framed)]
    answers = iter(classifier.predict_inputs(
        np.stack([row.model_input for row in framed]), [row.box for row in framed]))
    return [CellResult(row.name, row.digest, next(answers), row.thumbnail)
            if isinstance(row, Framed) else row for row in rows]


def path_9557a01(classifier: Classifier, sources, batch_size: int = 32) -> list[CellResult]:
    """``classify_sources`` as of commit 9557a01: a batch is read and framed on the worker
    threads, then classified, then the next batch is read."""
    prepare = _preparer(classifier, reference_find_cell, thumbnail_66c5e47)
    results = []
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        for start in range(0, len(sources), batch_size):
            results += _answered(classifier, list(pool.map(
                prepare, sources[start : start + batch_size])))
    return results


def path_66c5e47(classifier: Classifier, sources, batch_size: int = 32) -> list[CellResult]:
    """``classify_sources`` as of commit 66c5e47: two threads read and frame up to two
    batches ahead while the network, over all cores, classifies the current one."""
    prepare = _preparer(classifier, finder_66c5e47, thumbnail_66c5e47,
                        2 * classifier.input_size)
    results = []
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        pending = [pool.submit(prepare, source) for source in sources[: 2 * batch_size]]
        ahead = iter(sources[2 * batch_size :])
        while pending:
            rows = []
            for future in pending[:batch_size]:
                rows.append(future.result())
                following = next(ahead, None)
                if following is not None:
                    pending.append(pool.submit(prepare, following))
            pending = pending[batch_size:]
            results += _answered(classifier, rows)
    return results


def network_alone(classifier: Classifier, framed: list, lanes: bool) -> float:
    """Cells per second of the network alone, on inputs read and framed beforehand: the
    seam's one interpreter over all cores in batches of 32, or (``lanes``) one
    single-threaded copy per core in batches of 8 with BLAS on one thread, as
    ``classify_sources`` runs it."""
    if not lanes:
        started = time.perf_counter()
        for start in range(0, len(framed), 32):
            chunk = framed[start : start + 32]
            classifier.predict_inputs(np.stack([row[0] for row in chunk]),
                                      [row[1] for row in chunk])
        return len(framed) / (time.perf_counter() - started)
    cores = os.cpu_count() or 1
    views = [classifier.with_threads(1) for _ in range(cores)]
    chunks = [framed[start : start + 8] for start in range(0, len(framed), 8)]
    for view in views:
        view.predict_inputs(np.stack([row[0] for row in chunks[0]]))  # plan the tensors
    started = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool, one_blas_thread():
        list(pool.map(lambda lane: [views[lane].predict_inputs(
            np.stack([row[0] for row in chunk]), [row[1] for row in chunk])
            for chunk in chunks[lane::cores]], range(cores)))
    return len(framed) / (time.perf_counter() - started)


def stages(classifier: Classifier, sources, shortest: int) -> None:
    """Milliseconds per cell in each step on one thread, for commit 66c5e47 and now (best
    of three passes each)."""
    steps = {
        "decode": (lambda data: read_image(data, shortest=shortest),) * 2,
        "frame": (finder_66c5e47, find_cell),
        "crop": (lambda item: to_model_input(item[0], classifier.input_size, box=item[1]),) * 2,
        "thumbnail": (thumbnail_66c5e47, table_thumbnail),
    }
    images = [read_image(data, shortest=shortest) for _, data, _ in sources]
    inputs = {"decode": [data for _, data, _ in sources], "frame": images,
              "crop": [(image, find_cell(image)) for image in images], "thumbnail": images}
    totals = [0.0, 0.0]
    for step, functions in steps.items():
        times = []
        for function in functions:
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                for item in inputs[step]:
                    function(item)
                best = min(best, time.perf_counter() - started)
            times.append(1000 * best / len(images))
        totals = [total + spent for total, spent in zip(totals, times)]
        print(f"  {step:10s} 66c5e47 {times[0]:5.2f} ms   now {times[1]:5.2f} ms")
    print(f"  {'together':10s} 66c5e47 {totals[0]:5.2f} ms   now {totals[1]:5.2f} ms")


def frame_agreement(limit: int) -> None:
    """IoU of today's frame against each earlier finder's, per data set."""
    for label, root in FRAME_SETS.items():
        files = sorted(path for path in root.rglob("*")
                       if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        files = [files[i] for i in np.linspace(0, len(files) - 1, min(limit, len(files)),
                                                dtype=int)]
        scores = {"66c5e47": [], "9557a01": []}
        for path in files:
            image = read_image(path)
            box = find_cell(image)
            scores["66c5e47"].append(box_iou(box, finder_66c5e47(image)))
            scores["9557a01"].append(box_iou(box, reference_find_cell(image)))
        for earlier, values in scores.items():
            values = np.array(values)
            print(f"frames {label:14s} {len(values):4d} pictures  against {earlier}: IoU "
                  f"lowest {values.min():.3f}  1st pct {np.percentile(values, 1):.3f}  "
                  f"median {np.median(values):.3f}  ≥ 0.95: {np.mean(values >= 0.95):.1%}")


def _same(first: list[CellResult], second: list[CellResult]) -> int:
    # The whole prediction: label, every probability, familiarity distance and status.
    return sum(a.prediction == b.prediction for a, b in zip(first, second))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default=str(DATASETS / "pbc" / "basophil"))
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=1,
                        help="passes of each path, in turn; the medians are printed")
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
    paths = {"9557a01": path_9557a01, "66c5e47": path_66c5e47, "now": classify_sources}
    for path in paths.values():
        path(classifier, sources[:64])  # warm up the runtime
    framed = []
    for name, data, _ in sources:
        image = read_image(data, name=name)
        box = classifier.frame(image)
        framed.append((classifier.prepare(image, box), box))
    ceiling = network_alone(classifier, framed, lanes=False)
    lanes = network_alone(classifier, framed, lanes=True)
    spent = {name: [] for name in paths}
    busy = {name: [] for name in paths}
    answers = {}
    for _ in range(args.repeats):
        for name, path in paths.items():
            started, cpu = time.perf_counter(), time.process_time()
            answers[name] = path(classifier, sources)
            spent[name].append(time.perf_counter() - started)
            busy[name].append(1000 * (time.process_time() - cpu) / len(sources))
    speed = {name: len(sources) / float(np.median(times)) for name, times in spent.items()}
    # Where other programs hold the cores, cells per second also measure how much of them
    # each path wins (more threads, more share); the CPU time a cell costs does not.
    cost = {name: f"({float(np.median(values)):.1f} ms of CPU a cell)"
            for name, values in busy.items()}
    print(f"{len(sources)} files from {args.data}, {os.cpu_count()} cores, "
          f"{args.repeats} pass{'es' if args.repeats > 1 else ''} each")
    print(f"network alone     {ceiling:7.1f} cells/s   (inputs framed beforehand; one "
          f"interpreter on all cores)")
    print(f"                  {lanes:7.1f} cells/s   (one single-threaded copy per core)")
    print(f"path of 9557a01   {speed['9557a01']:7.1f} cells/s   {cost['9557a01']}")
    print(f"path of 66c5e47   {speed['66c5e47']:7.1f} cells/s   {cost['66c5e47']}")
    print(f"classify_sources  {speed['now']:7.1f} cells/s   {cost['now']}")
    print(f"                  {speed['now'] / speed['66c5e47']:.2f}× 66c5e47's, "
          f"{speed['now'] / speed['9557a01']:.2f}× 9557a01's, "
          f"{speed['now'] / lanes:.0%} of its network alone")
    print(f"same answers: {_same(answers['66c5e47'], answers['now'])} of {len(sources)} "
          f"as 66c5e47's path, {_same(answers['9557a01'], answers['now'])} as 9557a01's")
    print("one cell on one thread, each step:")
    stages(classifier, sources[:100], 2 * classifier.input_size)
    if args.frames:
        frame_agreement(args.frames)


if __name__ == "__main__":
    main()
