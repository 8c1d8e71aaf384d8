"""Does moving the network's BatchNorm statistics to another laboratory's cells help?

    python benchmarks/batchnorm_statistics.py --data ../shared/datasets/zheng2018_d2 \\
        --home ../shared/datasets/pbc [--model models/pbc-lite0] [--splits 20]
    python benchmarks/batchnorm_statistics.py --quick   # a few cells, 1 split: a smoke test

Re-estimating BatchNorm statistics on the target domain's images (AdaBN, Li et al. 2016)
is the usual cheap answer to a shift between laboratories: no labels, no training. Our
model was fine-tuned with BatchNorm frozen at ImageNet's statistics, so the layers after
each BatchNorm learned to expect *those*, and plain re-estimation breaks the model even on
its own laboratory's cells. The variant that fits it aligns instead: each layer's input
statistics on the other laboratory's cells are mapped onto those of training cells, layer
by layer (each layer measured after the ones before it were aligned).

Prints, for the other laboratory (strict labels, argmax over all classes):

1. plain re-estimation, on home validation cells (scored on home test cells) and on the
   other laboratory's cells;
2. alignment on all the other laboratory's cells, the training cells taken in equal
   shares of every class, and taken in the other laboratory's class mix (which a user
   would have to know);
3. ``--per-class`` labelled cells per class over ``--splits`` splits (the splits of
   ``hematovision adapt --study``), scored on the rest: unadapted, alignment on the
   labelled cells (training cells of the same classes in the same shares), the shipped
   last-layer refit, and both.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy.special import softmax  # noqa: E402

from hematovision.adapt.adaptation import read_cells
from hematovision.adapt.head import REMEMBERED_PER_CLASS, choose_cells, fit_head
from hematovision.io.data_home import datasets_dir  # noqa: E402
from hematovision.io.dataset import split_files  # noqa: E402
from hematovision.io.decoding import decode_images  # noqa: E402
from hematovision.measure.metrics import balanced_accuracy  # noqa: E402
from hematovision.model.calibration import expected_calibration_error  # noqa: E402
from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.network import LOGITS_LAYER, feature_model  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402


class BatchNormStatistics:
    """Reads and moves the statistics of every BatchNorm layer of a Keras model."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.layers = [layer for layer in model.layers
                       if isinstance(layer, keras.layers.BatchNormalization)]
        self.trained = [(layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy())
                        for layer in self.layers]
        probe = keras.Model(model.inputs, [layer.input for layer in self.layers])

        @tf.function
        def moments(x):
            outputs = probe(x, training=False)
            return [(tf.reduce_mean(o, axis=[1, 2]), tf.reduce_mean(o * o, axis=[1, 2]))
                    for o in outputs]

        self._moments = moments

    def per_cell(self, images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer: each cell's channel means of the layer's input and of its square."""
        parts = [[(a.numpy().astype(np.float64), b.numpy().astype(np.float64))
                  for a, b in self._moments(tf.constant(images[i:i + 25]))]
                 for i in range(0, len(images), 25)]
        return [(np.concatenate([p[k][0] for p in parts]),
                 np.concatenate([p[k][1] for p in parts])) for k in range(len(self.layers))]

    def reset(self) -> None:
        for layer, (mean, variance) in zip(self.layers, self.trained):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)

    def move(self, images: np.ndarray, labels: np.ndarray, shares: dict[int, float],
             source: list | None = None) -> None:
        """Layer by layer, set the statistics from ``images`` mixed by class ``shares``.

        Without ``source`` they replace the trained ones (AdaBN). With ``source`` (per-cell
        moments of training cells and their labels), the layer is changed so that a
        target cell's normalised input lands where a training cell's did.
        """
        for k, layer in enumerate(self.layers):
            mean_t, var_t = _mixed(self.per_cell(images)[k], labels, shares)
            mean, variance = self.trained[k]
            if source is None:
                new_mean, new_var = mean_t, var_t
            else:
                mean_s, var_s = _mixed(source[0][k], source[1], shares)
                ratio = np.sqrt((var_t + 1e-6) / (var_s + 1e-6))
                new_mean = mean_t - (mean_s - mean) * ratio
                new_var = (variance + layer.epsilon) * ratio**2 - layer.epsilon
            layer.moving_mean.assign(new_mean.astype(np.float32))
            layer.moving_variance.assign(new_var.astype(np.float32))


def _mixed(moments: tuple[np.ndarray, np.ndarray], labels: np.ndarray,
           shares: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of a mixture of classes in the given shares."""
    first = sum(w * moments[0][labels == c].mean(axis=0) for c, w in shares.items())
    second = sum(w * moments[1][labels == c].mean(axis=0) for c, w in shares.items())
    return first, second - first**2


def _equal(labels: np.ndarray) -> dict[int, float]:
    present = np.unique(labels)
    return {int(c): 1 / len(present) for c in present}


def _read(classifier: Classifier, files: list, per_class: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    classes = list(classifier.classes)
    chosen = []
    for name in classes:
        members = [f for f in files if f[1] == name]
        chosen += [members[i] for i in rng.permutation(len(members))[:per_class]]
    images, kept, _, _ = decode_images([path for path, _ in chosen], classifier.input_size,
                                       framing=classifier.card.config.framing)
    return images.astype(np.float32), np.array([classes.index(chosen[i][1]) for i in kept])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--data", help="the other laboratory's class folders")
    parser.add_argument("--home", help="the training data (for its split)")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--quick", action="store_true",
                        help="zheng2018_d2 and pbc unless given, 4 cells per class of the "
                             "other lab, 3/2/2 training/validation/test cells per class of "
                             "home, 2 per class in 1 split: a smoke test")
    args = parser.parse_args()
    home_per_class = (60, 30, 40)  # training, validation, test cells per class
    if args.quick:
        args.data = args.data or str(datasets_dir() / "zheng2018_d2")
        args.home = args.home or str(datasets_dir() / "pbc")
        args.per_class, args.splits, home_per_class = 2, 1, (3, 2, 2)
    if args.data is None or args.home is None:
        parser.error("--data and --home are required (or --quick)")

    classifier = Classifier(args.model)
    model, temperature = classifier.model, classifier.card.config.temperature
    statistics = BatchNormStatistics(model)
    features_of = feature_model(model)
    weights, bias = (np.asarray(v, np.float64) for v in
                     model.get_layer(LOGITS_LAYER).get_weights())

    def probabilities(images):
        return model.predict(images, batch_size=50, verbose=0)

    def line(name, p, y):
        print(f"  {name:58s} balanced {balanced_accuracy(y, p.argmax(1)):.3f}  "
              f"accuracy {np.mean(p.argmax(1) == y):.3f}  "
              f"ECE {expected_calibration_error(p, y):.3f}", flush=True)

    items, labels, _, _, images = read_cells(classifier, args.data)
    if args.quick:  # the first 4 cells of each class, in the order adapt reads them
        keep = [i for i, label in enumerate(labels) if np.sum(labels[:i] == label) < 4]
        items, labels, images = [items[i] for i in keep], labels[keep], images[keep]
    train_x, train_y, val_x, val_y, test_x, test_y = (
        part for split, count in zip(("train", "val", "test"), home_per_class)
        for part in _read(classifier, split_files(args.model, args.home, split), count))
    source = (statistics.per_cell(train_x), train_y)
    mix = {int(c): float(np.mean(labels == c)) for c in np.unique(labels)}

    print("1. Statistics re-estimated (AdaBN)")
    line("home test, trained statistics", probabilities(test_x), test_y)
    statistics.move(val_x, val_y, _equal(val_y))
    line("home test, re-estimated on home validation cells", probabilities(test_x), test_y)
    statistics.reset()
    line("other lab, trained statistics", probabilities(images), labels)
    statistics.move(images, labels, mix)
    line("other lab, re-estimated on its cells", probabilities(images), labels)
    statistics.reset()

    print("2. Statistics aligned on all the other laboratory's cells (no labels used)")
    statistics.move(images, np.zeros_like(labels), {0: 1.0},
                    (source[0], np.zeros_like(source[1])))
    line("training cells as they come (equal shares per class)", probabilities(images), labels)
    statistics.reset()
    statistics.move(images, labels, mix, source)
    line("training cells in the other lab's class mix (must be known)",
         probabilities(images), labels)
    statistics.reset()

    print(f"3. {args.per_class} labelled cells per class, {args.splits} splits, "
          f"scored on the rest")
    names = [item.label for item in items]
    before = features_of.predict(images, batch_size=50, verbose=0).astype(np.float64)
    scores = {key: [] for key in ("unadapted", "alignment", "last layer (shipped)",
                                  "alignment + last layer")}
    for seed in range(args.splits):
        used, rest = map(np.array, choose_cells(names, args.per_class, seed))
        shares = _equal(labels[used])
        statistics.move(images[used], labels[used], shares, source)
        aligned = probabilities(images[rest])
        after = features_of.predict(images, batch_size=50, verbose=0).astype(np.float64)
        statistics.reset()
        remembered = classifier.familiarity.draw(REMEMBERED_PER_CLASS,
                                                 len(classifier.classes), seed)

        def refit(features, used=used, rest=rest, remembered=remembered):
            w, b = fit_head(features[used], labels[used], weights, bias, 1.0, remembered)
            return softmax((features[rest] @ w + b) / temperature, axis=1)

        y = labels[rest]
        for key, p in (("unadapted", softmax(before[rest] @ weights / temperature
                                             + bias / temperature, axis=1)),
                       ("alignment", aligned), ("last layer (shipped)", refit(before)),
                       ("alignment + last layer", refit(after))):
            scores[key].append((balanced_accuracy(y, p.argmax(1)),
                                expected_calibration_error(p, y)))
    gains = np.array([a[0] - b[0] for a, b in zip(scores["alignment + last layer"],
                                                   scores["last layer (shipped)"])])
    for key, values in scores.items():
        values = np.array(values)
        print(f"  {key:24s} balanced {values[:, 0].mean():.3f} ± {values[:, 0].std():.3f}  "
              f"ECE {values[:, 1].mean():.3f}")
    print(f"  alignment + last layer against the last layer: {gains.mean():+.3f} on average, "
          f"ahead on {np.sum(gains > 0)} of {len(gains)} splits")


if __name__ == "__main__":
    main()
