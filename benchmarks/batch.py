"""End-to-end speed of a batch (read, find the cell, classify) on one thread and on the
default worker threads, in one run.

    python benchmarks/batch.py [--data ../shared/datasets/pbc/basophil] [--limit 400]

Prints cells per second for ``hematovision.batch.classify_sources`` with ``workers=1``
(reading and framing one file after another, as before) and with the default (one thread
per core), their ratio, and whether the two give the same answers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hematovision.batch import classify_sources, sources_from_paths  # noqa: E402
from hematovision.classifier import Classifier  # noqa: E402
from hematovision.models import default_model_dir  # noqa: E402


def _cells_per_second(classifier, sources, workers):
    started = time.perf_counter()
    results = classify_sources(classifier, sources, workers=workers)
    return len(sources) / (time.perf_counter() - started), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", default="../shared/datasets/pbc/basophil")
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    classifier = Classifier(args.model)
    sources = sources_from_paths([args.data])[: args.limit]
    classify_sources(classifier, sources[:32])  # warm up the runtime
    one, first = _cells_per_second(classifier, sources, workers=1)
    default = min(4, os.cpu_count() or 1)
    many, second = _cells_per_second(classifier, sources, workers=None)
    same = all(a.prediction == b.prediction for a, b in zip(first, second))
    print(f"{len(sources)} files from {args.data}, {os.cpu_count()} cores")
    print(f"one thread          {one:7.1f} cells/s")
    print(f"{default} worker threads   {many:7.1f} cells/s   {many / one:.2f}×")
    print(f"same answers: {same}")


if __name__ == "__main__":
    main()
