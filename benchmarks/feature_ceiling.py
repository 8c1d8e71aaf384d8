"""How far any refit of the last layer could go on another laboratory's cells.

    python benchmarks/feature_ceiling.py --data ../shared/datasets/zheng2018_d2 \\
        [--model models/pbc-lite0] [--per-class 10] [--splits 5]
    python benchmarks/feature_ceiling.py --quick   # 10 cells per class, one C: a smoke test

Adapting the last layer can only redraw boundaries in the model's pooled features. This
fits a logistic regression on those features of the laboratory's cells alone, restricted
to the classes it shows (an easier task than the adapted model's, which keeps every class):

- leave-one-out: each cell scored by a fit on all the others, the most labelled cells a
  user could ever give. What it cannot separate, no last layer will;
- ``--per-class`` cells per class, scored on the rest, over ``--splits`` random splits
  (the same splits as ``hematovision adapt --study``).

Prints balanced accuracy for both and lists the cells the leave-one-out fit gets wrong,
with the shipped model's own answer, so that their labels can be looked at.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import LeaveOneOut, cross_val_predict  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from hematovision.adapt.adaptation import read_cells  # noqa: E402
from hematovision.adapt.head import choose_cells
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.measure.metrics import balanced_accuracy  # noqa: E402
from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402


def _probe(strength: float):
    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=strength, max_iter=5000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", help="the other laboratory's class folders")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--strength", type=float, nargs="+", default=[0.01, 0.1, 1.0],
                        help="inverse L2 strengths of the logistic regression to try")
    parser.add_argument("--quick", action="store_true",
                        help="zheng2018_d2 unless --data, 10 cells of each class, C=0.1 only, "
                             "5 per class over 2 splits: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.data = args.data or str(datasets_dir() / "zheng2018_d2")
        args.strength, args.per_class, args.splits = [0.1], 5, 2
    if args.data is None:
        parser.error("--data is required (or --quick)")

    classifier = Classifier(args.model)
    classes = list(classifier.classes)
    # Read as adapt reads them, so that choose_cells draws the same splits.
    items, labels, logits, features, _ = read_cells(classifier, args.data)
    if args.quick:  # the first 10 cells of each class, in the order adapt reads them
        keep = [i for i, label in enumerate(labels) if np.sum(labels[:i] == label) < 10]
        items, labels, logits, features = ([items[i] for i in keep], labels[keep],
                                           logits[keep], features[keep])
    names = [item.label for item in items]
    print(f"{args.data}: {len(labels)} cells; the model unadapted: balanced accuracy "
          f"{balanced_accuracy(labels, logits.argmax(1)):.3f} (strict)")

    print(f"{'C':>6}  {'leave-one-out':>13}  {f'{args.per_class} per class':>16}")
    best = None
    for strength in args.strength:
        left_out = cross_val_predict(_probe(strength), features, labels, cv=LeaveOneOut())
        few = []
        for seed in range(args.splits):
            used, held = choose_cells(names, args.per_class, seed)
            fitted = _probe(strength).fit(features[used], labels[used])
            few.append(balanced_accuracy(labels[held], fitted.predict(features[held])))
        score = balanced_accuracy(labels, left_out)
        print(f"{strength:>6g}  {score:>13.3f}  {np.mean(few):>9.3f} ± {np.std(few):.3f}")
        if best is None or score > best[0]:
            best = (score, strength, left_out)

    score, strength, left_out = best
    wrong = np.nonzero(left_out != labels)[0]
    print(f"\nleave-one-out errors at C={strength:g} ({len(wrong)} of {len(labels)}):")
    for i in wrong:
        print(f"  {items[i].path}: labelled {names[i]}, fit says {classes[left_out[i]]}, "
              f"model says {classes[int(logits[i].argmax())]}")


if __name__ == "__main__":
    main()
