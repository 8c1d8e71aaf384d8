"""Cells cut to their outline: does a model still recognise them?

    python benchmarks/tight_crops.py                              # the shipped models
    python benchmarks/tight_crops.py --models models/multi-lite0 <another model folder>
    python benchmarks/tight_crops.py --quick                      # the default model, zheng only

Detectors and smear-photo sets such as BCCD hand over a cell cut to its bounding box, where
PBC, Raabin-WBC and CellaVision exports show it amid its neighbours. Framing brings both to
the same scale, and fills what lies past a tight crop's edges with the colour of its border.
This cuts every cell of four sets tightly, into a temporary folder (never into the
repository), and scores each model on each set whole and cut, side by side:

- `zheng2018_d2`: each cell's bounding box from the authors' mask, with a 5 % margin;
- the Kaggle sample: the found nucleus' box widened by a quarter of it on every side
  (about the whole cell; cells without a found nucleus are left out of both columns);
- the PBC and Raabin-WBC test cells of the first model's `split.json`, cut like the Kaggle
  cells (cut files score as a whole set; no model trained on them).

Strict balanced accuracy (the model choosing among all its classes), the share of cells
answered Confident and wrong, and the share flagged Unfamiliar.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from hematovision.io.cell_finder import find_cell  # noqa: E402
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.images import read_image  # noqa: E402
from hematovision.measure.source_benchmark import (  # noqa: E402
    RESULT_CELL,
    benchmark_rows,
    result_cell,
    scored_sets,
)

DATASETS = datasets_dir()
MODELS = (ROOT / "models" / "pbc-lite0", ROOT / "models" / "multi-lite0")


def _cut(image: np.ndarray, top, left, bottom, right, margin: float) -> np.ndarray:
    height, width = bottom - top, right - left
    top, left = max(0, int(top - margin * height)), max(0, int(left - margin * width))
    bottom = min(image.shape[0], int(np.ceil(bottom + margin * height)))
    right = min(image.shape[1], int(np.ceil(right + margin * width)))
    return image[top:bottom, left:right]


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path.with_suffix(".png"))


def _around_nucleus(files: list[tuple[Path, str]], name: str, out: Path) -> tuple[Path, Path]:
    """Link each file whose nucleus is found into a whole folder and write its cut into a
    tight one; both folders, under ``out``."""
    whole, tight = out / f"{name}_whole", out / f"{name}_tight"
    for index, (path, label) in enumerate(files):
        image = read_image(path)
        box = find_cell(image)
        if not box.found:
            continue
        stem = f"{index:05d}_{path.stem}"
        (whole / label).mkdir(parents=True, exist_ok=True)
        (whole / label / f"{stem}{path.suffix.lower()}").symlink_to(path.resolve())
        _save(_cut(image, *box.nucleus, margin=0.25), tight / label / stem)
    return whole, tight


def _zheng(out: Path) -> tuple[Path, Path]:
    """The whole pictures, and each cell cut to its mask's box."""
    folder = DATASETS / "zheng2018_d2"
    tight = out / "zheng2018_d2_tight"
    with open(folder / "labels.csv", newline="") as table:
        for row in csv.DictReader(table):
            mask = read_image(folder / row["mask"])[..., 0]
            rows, cols = np.nonzero(mask > 0)
            cut = _cut(read_image(folder / row["image"]), rows.min(), cols.min(), rows.max() + 1,
                       cols.max() + 1, margin=0.05)
            _save(cut, tight / row["label"] / Path(row["image"]).stem)
    return folder / "images", tight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[str(m) for m in MODELS])
    parser.add_argument("--keep", metavar="FOLDER",
                        help="write the cut cells here and keep them (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--quick", action="store_true",
                        help="the default model on zheng2018_d2 only: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.models = args.models[-1:]
    split_model = Path(args.models[-1])
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.keep or scratch)
        sets = scored_sets(split_model, args.quick)
        pairs = [_zheng(out) if name == "zheng2018_d2"
                 else _around_nucleus(files, name.lower().replace(" ", "_"), out)
                 for name, files in sets.items()]
        folders = [folder for pair in pairs for folder in pair]
        rows = benchmark_rows(args.models, folders, bootstrap=1)
    print(f"test splits from {split_model}/split.json; {RESULT_CELL}\n")
    print("| model | set | n whole / cut | whole | cut tightly |")
    print("|---|---|---|---|---|")
    for model_index, model in enumerate(args.models):
        model_rows = rows[model_index * len(folders):(model_index + 1) * len(folders)]
        for name, whole, tight in zip(sets, model_rows[::2], model_rows[1::2]):
            print(f"| {Path(model).name} | {name} | {whole['n']} / {tight['n']} | "
                  f"{result_cell(whole)} | {result_cell(tight)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
