"""Leave one source out: each model on every laboratory, trained on or not.

    python benchmarks/sources.py --save          # the table in README and the cards
    python benchmarks/sources.py --quick         # one model, one small set: a smoke test

Scores the PBC-only model and the PBC + Raabin-WBC model on PBC's and Raabin-WBC's
held-out test splits (where the model trained on that source; otherwise the whole set)
and on `zheng2018_d2` and the Kaggle sample, which neither model learned from. Prints one
Markdown table; with ``--save`` the evaluations are stored in each model folder and the
table in each model's card, where the Model audit page reads it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.measure.source_benchmark import (  # noqa: E402
    benchmark_rows,
    format_markdown,
    save_benchmark,
)

DATASETS = datasets_dir()
SETS = ("pbc", "raabin_wbc", "zheng2018_d2", "kaggle_bloodcells_sample")
MODELS = (ROOT / "models" / "pbc-lite0", ROOT / "models" / "multi-lite0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[str(m) for m in MODELS])
    parser.add_argument("--sets", nargs="+", default=list(SETS),
                        help=f"data set folders under {DATASETS}")
    # As many as ``hematovision evaluate``: with --save these intervals replace its own.
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap resamples for the 95 %% intervals")
    parser.add_argument("--save", action="store_true",
                        help="store the evaluations and the table in the model folders")
    parser.add_argument("--quick", action="store_true",
                        help="the first model on zheng2018_d2 only, nothing saved")
    args = parser.parse_args(argv)
    models, sets = args.models, args.sets
    if args.quick:
        models, sets, args.save = models[:1], ["zheng2018_d2"], False
    rows = benchmark_rows(models, [DATASETS / name for name in sets],
                          bootstrap=args.bootstrap, save=args.save)
    print(format_markdown(rows))
    if args.save:
        for model in models:
            save_benchmark(model, rows, "python benchmarks/sources.py --save")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
