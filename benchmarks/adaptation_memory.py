"""What the remembered training features do when the last layer is adapted, in one run.

    python benchmarks/adaptation_memory.py --data ../shared/datasets/zheng2018_d2 \\
        --home ../shared/datasets/pbc [--model models/pbc-lite0] [--per-class 10] [--splits 20]
    python benchmarks/adaptation_memory.py --quick   # 2 splits on a few cells: a smoke test

For each split, the last layer is refitted on ``--per-class`` cells per class of the other
laboratory's set, once on those cells alone (classes it shows none of left out of the
softmax) and once with features remembered from the training classes (the shipped fit).
Prints balanced accuracy on the rest of that set, and on up to 40 held-out test cells per
class of the model's own data (``--home``, the split recorded with the model). ``--quick``
takes 10 cells per class of each set and 2 splits, nothing else changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from hematovision.adapt.head import REMEMBERED_PER_CLASS, choose_cells, fit_head  # noqa: E402
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.dataset import scan_folder, test_split_files  # noqa: E402
from hematovision.io.decoding import decode_images  # noqa: E402
from hematovision.measure.metrics import balanced_accuracy  # noqa: E402
from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.network import LOGITS_LAYER  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402


def _features(classifier: Classifier, paths: list) -> tuple[list[int], np.ndarray]:
    images, kept, _, _ = decode_images(paths, classifier.input_size,
                                       framing=classifier.card.config.framing)
    return kept, classifier.analyse(images.astype(np.float32))[2].astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", help="the other laboratory's class folders")
    parser.add_argument("--home", help="the model's own data folder")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--quick", action="store_true",
                        help="zheng2018_d2 and pbc unless given, 10 cells per class of each, "
                             "5 per class over 2 splits: a smoke test")
    args = parser.parse_args()
    home_per_class = 40
    if args.quick:
        args.data = args.data or str(datasets_dir() / "zheng2018_d2")
        args.home = args.home or str(datasets_dir() / "pbc")
        args.per_class, args.splits, home_per_class = 5, 2, 10
    if args.data is None or args.home is None:
        parser.error("--data and --home are required (or --quick)")

    classifier = Classifier(args.model)
    classes = list(classifier.classes)
    items = scan_folder(args.data, tuple(classes)).items
    if args.quick:
        items = [item for i, item in enumerate(items)
                 if sum(other.label == item.label for other in items[:i]) < 10]
    kept, lab = _features(classifier, [item.path for item in items])
    names = [items[i].label for i in kept]
    labels = np.array([classes.index(name) for name in names])
    test_files = test_split_files(args.model, args.home)
    if test_files is None:
        parser.error(f"{args.home} does not hold the test split recorded with {args.model}")
    rng = np.random.default_rng(0)
    home_files = []
    for name in classes:
        members = [f for f in test_files if f[1] == name]
        rng.shuffle(members)
        home_files += members[:home_per_class]
    kept, home = _features(classifier, [path for path, _ in home_files])
    home_labels = np.array([classes.index(home_files[i][1]) for i in kept])
    weights, bias = (np.asarray(v, dtype=np.float64)
                     for v in classifier.model.get_layer(LOGITS_LAYER).get_weights())

    print(f"{args.per_class} cells per class, {args.splits} splits; balanced accuracy")
    print(f"{'fit':<28}{'other lab (rest)':>18}{'home test':>12}")
    for title, remember in (("your cells only", False), ("with remembered features", True)):
        other, own = [], []
        for seed in range(args.splits):
            used, held = choose_cells(names, args.per_class, seed)
            remembered = (classifier.familiarity.draw(REMEMBERED_PER_CLASS, len(classes), seed)
                          if remember else None)
            w, b = fit_head(lab[used], labels[used], weights, bias, remembered=remembered)
            other.append(balanced_accuracy(labels[held], (lab[held] @ w + b).argmax(1)))
            own.append(balanced_accuracy(home_labels, (home @ w + b).argmax(1)))
        print(f"{title:<28}{np.mean(other):>11.3f} ± {np.std(other):.3f}"
              f"{np.mean(own):>12.3f}")
    print(f"{'unadapted':<28}{'':>18}"
          f"{balanced_accuracy(home_labels, (home @ weights + bias).argmax(1)):>12.3f}")


if __name__ == "__main__":
    main()
