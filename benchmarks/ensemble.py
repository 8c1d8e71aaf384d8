"""A backbone ensemble across laboratories: each model alone, and their averaged answers.

    python benchmarks/ensemble.py --models models/multi-lite0 PATH/TO/multi-lite1
    python benchmarks/ensemble.py --quick     # the two shipped models on zheng2018_d2

Every model scores the same cells (the first model's test split of a source it learned
from, any other set whole; the models must share their splits, as models trained by
HematoVision on the same folders do), each framed and sized as that model expects. The
ensemble averages the models' calibrated probabilities. Prints one Markdown table:
strict balanced accuracy (the model's answer among all its classes, over the classes the
set holds), over the four white cells every set holds, restricted to the classes present,
and ECE; and the cost, the seconds each model took per cell on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.special import softmax  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.decoding import decode_images  # noqa: E402
from hematovision.measure.evaluation import select_cells  # noqa: E402
from hematovision.measure.metrics import balanced_accuracy  # noqa: E402
from hematovision.measure.source_benchmark import common_cell_recall  # noqa: E402
from hematovision.model.calibration import expected_calibration_error  # noqa: E402
from hematovision.model.classifier import Classifier  # noqa: E402

DATASETS = datasets_dir()
SETS = ("pbc", "raabin_wbc", "zheng2018_d2", "kaggle_bloodcells_sample")
SHIPPED = (ROOT / "models" / "multi-lite0", ROOT / "models" / "pbc-lite0")


def _scores(classifier: Classifier, paths: list[Path]) -> tuple[dict[Path, np.ndarray], float]:
    """Each readable, framed cell's logits (divided by the model's temperature), and the
    seconds per cell it took to read, frame and classify them."""
    start = time.perf_counter()
    images, kept, _, _ = decode_images(paths, classifier.input_size,
                                       framing=classifier.card.config.framing)
    logits, _, _ = classifier.analyse(images.astype(np.float32))
    seconds = (time.perf_counter() - start) / max(len(kept), 1)
    scaled = logits / classifier.card.config.temperature
    return {paths[i]: scaled[row] for row, i in enumerate(kept)}, seconds


def _measures(labels: np.ndarray, probabilities: np.ndarray, restricted: np.ndarray,
              present: list[int], classes: list[str]) -> dict:
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, labels=range(len(classes)))
    common = common_cell_recall(matrix, classes)
    mapped = np.array([present.index(label) for label in labels])
    return {
        "balanced": balanced_accuracy(labels, predicted),
        "common": float("nan") if common is None else common,
        "restricted": balanced_accuracy(mapped, restricted.argmax(axis=1)),
        "ece": expected_calibration_error(probabilities, labels),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[str(m) for m in SHIPPED])
    parser.add_argument("--sets", nargs="+", default=list(SETS),
                        help=f"data set folders under {DATASETS}")
    parser.add_argument("--quick", action="store_true",
                        help="zheng2018_d2 only, which neither shipped model learned from")
    args = parser.parse_args(argv)
    if args.quick:
        args.sets = ["zheng2018_d2"]
    if len(args.models) < 2:
        parser.error("an ensemble needs two models or more")
    classifiers = [Classifier(model) for model in args.models]
    classes = list(classifiers[0].classes)
    if any(list(c.classes) != classes for c in classifiers):
        parser.error("the models must share their classes, in the same order")
    names = [c.name for c in classifiers] + ["ensemble (mean of probabilities)"]
    rows: list[str] = []
    costs = np.zeros(len(classifiers))
    for set_name in args.sets:
        folder = DATASETS / set_name
        selections = [select_cells(c, folder) for c in classifiers]
        if any(s.files != selections[0].files for s in selections):
            parser.error(f"{set_name}: the models score different cells (their splits "
                         "differ); an ensemble's number would mix held-out and seen cells")
        files = selections[0].files
        paths = [path for path, _ in files]
        scored = []
        for k, classifier in enumerate(classifiers):
            logits, seconds = _scores(classifier, paths)
            scored.append(logits)
            costs[k] += seconds / len(args.sets)
        shared = [i for i, path in enumerate(paths) if all(path in s for s in scored)]
        labels = np.array([classes.index(files[i][1]) for i in shared])
        present = sorted(set(labels.tolist()))
        each = [np.stack([s[paths[i]] for i in shared]) for s in scored]
        strict = [softmax(z, axis=1) for z in each]
        narrow = [softmax(z[:, present], axis=1) for z in each]
        results = [_measures(labels, p, r, present, classes) for p, r in zip(strict, narrow)]
        results.append(_measures(labels, np.mean(strict, axis=0), np.mean(narrow, axis=0),
                                 present, classes))
        role = selections[0].kind
        for name, result in zip(names, results):
            rows.append(f"| {set_name} ({role}, n={len(shared)}) | {name} | "
                        f"{result['balanced']:.3f} | {result['common']:.3f} | "
                        f"{result['restricted']:.3f} | {result['ece']:.3f} |")
    print("| data | model | balanced | balanced, 4 common cells | classes present | ECE |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    for classifier, cost in zip(classifiers, costs):
        print(f"{classifier.name}: {1000 * cost:.1f} ms per cell to read, frame and "
              f"classify ({classifier.input_size} px), in this run")
    print(f"ensemble: {1000 * costs.sum():.1f} ms per cell")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
