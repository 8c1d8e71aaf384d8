"""Inference speed of the Classifier seam against plain ``model.predict``, in one run.

    python benchmarks/inference.py [--model models/pbc-lite0] [--repeats 30]
    python benchmarks/inference.py --quick       # 3 repeats, 1 round: a smoke test

Prints single-cell latency (median of warm calls) and batch-32 throughput for:
plain Keras ``model.predict``, a ``tf.function`` call, and the seam (LiteRT + XNNPACK),
with the ratios against ``model.predict`` and the largest probability difference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402


def _median_ms(function, repeats: int) -> float:
    function()
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _throughput(function, batch: int, rounds: int) -> float:
    function()
    started = time.perf_counter()
    for _ in range(rounds):
        function()
    return batch * rounds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true",
                        help="3 warm calls and 1 batch round per path: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.rounds = 3, 1

    classifier = Classifier(args.model)
    model = classifier.model
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (32, 224, 224, 3)).astype(np.float32)
    single = batch[:1]
    compiled = tf.function(lambda x: model(x, training=False))

    rows = [
        ("keras model.predict", lambda x: model.predict(x, verbose=0)),
        ("tf.function call", lambda x: compiled(tf.constant(x)).numpy()),
        (f"seam ({classifier.runtime})", classifier.predict_proba),
    ]
    print(f"model {args.model}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    print(f"{'path':<22}{'1 cell (ms)':>13}{'ratio':>8}{'batch 32 (cells/s)':>21}{'ratio':>8}")
    baseline = None
    for name, function in rows:
        latency = _median_ms(lambda f=function: f(single), args.repeats)
        rate = _throughput(lambda f=function: f(batch), len(batch), args.rounds)
        baseline = baseline or (latency, rate)
        print(f"{name:<22}{latency:>13.1f}{baseline[0] / latency:>7.1f}×"
              f"{rate:>21.1f}{rate / baseline[1]:>7.1f}×")
    reference = model.predict(batch, verbose=0)
    difference = float(np.abs(classifier.predict_proba(batch) - reference).max())
    print(f"largest probability difference seam vs model.predict: {difference:.2e}")


if __name__ == "__main__":
    main()
