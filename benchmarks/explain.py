"""Explanation speed and fidelity: naive library use against HematoVision, same cell, one run.

    python benchmarks/explain.py [--model models/pbc-lite0] [--image PATH] [--fidelity-cells N]

For each method it prints the naive time (the libraries used as their docs show, on
``model.predict``), ours, and the ratio. For LIME and SHAP it also computes a slow
reference (LIME 5,000 samples, SHAP 2,000 evaluations, each on the same superpixels) and
prints the Spearman rank correlation of our map with it; ``--fidelity-cells N`` repeats
that check on N more held-out cells, one class after another. Last, the whole Explain
panel for a new cell and for a cached one (the dashboard's cache).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
logging.getLogger("streamlit").setLevel(logging.ERROR)

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from hematovision.classifier import Classifier  # noqa: E402
from hematovision.dataset import test_split_files  # noqa: E402
from hematovision.explainers import available_methods, explain, get_explainer  # noqa: E402
from hematovision.images import read_image  # noqa: E402
from hematovision.models import default_model_dir  # noqa: E402


def timed(function, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def row(name: str, naive: float, ours: float, extra: str = "") -> None:
    print(f"{name:<12}{naive:>10.3f} s{ours:>10.3f} s{naive / ours:>9.1f}×  {extra}")


def gradcam_rows(classifier: Classifier, x: np.ndarray, index: int) -> None:
    import keras
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    for name, library in (("gradcam", Gradcam), ("gradcampp", GradcamPlusPlus)):
        def naive(library=library):
            # As in the tf-keras-vis examples: clone the model, make the output linear.
            cam = library(classifier.model, model_modifier=ReplaceToLinear(), clone=True)
            return cam(CategoricalScore([index]), x[None],
                       penultimate_layer=classifier.card.gradcam_layer)

        naive()
        naive_seconds, _ = timed(naive, 3)
        compute = get_explainer(name).compute
        compute(x, classifier, index)
        ours, _ = timed(lambda c=compute: c(x, classifier, index), 5)
        row(name, naive_seconds, ours, "(warm; naive builds its explainer per call as in the docs)")
    del keras


def fidelity(method: str, classifier: Classifier, x: np.ndarray, index: int,
             ours: np.ndarray | None = None) -> tuple[float, int]:
    """Spearman of the default LIME or SHAP map (``ours``, computed when not given) with the
    slow reference on the same superpixels, and how many superpixels there are."""
    from hematovision.explainers.lime_map import lime_weights
    from hematovision.explainers.shap_map import shap_values
    from hematovision.explainers.superpixels import segment_cell

    defaults = get_explainer(method).defaults
    if method == "lime":
        segmentation = segment_cell(x, defaults["segments"], defaults["compactness"])
        # LIME's own sampling, 5,000 samples, fitted to what the map explains.
        reference = lime_weights(x, classifier, index, segmentation, samples=5000, seed=123,
                                 link=defaults["link"])
    else:
        segmentation = segment_cell(x, defaults["segments"])
        reference, _ = shap_values(x, classifier, index, segmentation, 2000, defaults["blur"])
    if ours is None:
        ours = get_explainer(method).compute(x, classifier, index, **defaults)[1]
    return (spearmanr(ours.ravel(), reference[segmentation].ravel()).statistic,
            int(segmentation.max() + 1))


def lime_row(classifier: Classifier, x: np.ndarray, index: int) -> None:
    from lime.lime_image import LimeImageExplainer

    def keras_predict(images):
        return classifier.model.predict(np.asarray(images, np.float32), verbose=0)

    naive_seconds, _ = timed(lambda: LimeImageExplainer(random_state=0).explain_instance(
        x.astype(np.float64), keras_predict, labels=(index,), top_labels=None,
        num_samples=1000, batch_size=32, random_seed=0))
    defaults = get_explainer("lime").defaults
    # Warm, as in the dashboard: its start-up has already made the batch interpreter.
    get_explainer("lime").compute(x, classifier, index, **{**defaults, "samples": 40})
    ours_seconds, ours = timed(lambda: get_explainer("lime").compute(
        x, classifier, index, **defaults))
    correlation, count = fidelity("lime", classifier, x, index, ours[1])
    row("lime", naive_seconds, ours_seconds,
        f"Spearman vs 5,000-sample reference {correlation:.3f} "
        f"({defaults['samples']} samples, {count} superpixels)")


def shap_row(classifier: Classifier, x: np.ndarray, index: int) -> None:
    import shap

    def keras_predict(images):
        return classifier.model.predict(np.asarray(images, np.float32), verbose=0)

    masker = shap.maskers.Image("blur(32,32)", x.shape)
    get_explainer("shap").compute(x, classifier, index, evaluations=60)  # compile SHAP's code
    naive_seconds, _ = timed(lambda: shap.PartitionExplainer(keras_predict, masker)(
        x[None], max_evals=500, batch_size=50, outputs=[index], silent=True))
    defaults = get_explainer("shap").defaults
    ours_seconds, ours = timed(lambda: get_explainer("shap").compute(
        x, classifier, index, **defaults))
    correlation, count = fidelity("shap", classifier, x, index, ours[1])
    row("shap", naive_seconds, ours_seconds,
        f"Spearman vs 2,000-evaluation reference {correlation:.3f} "
        f"({defaults['evaluations']} evaluations, {count} superpixels)")


def middle_cells(files: list[tuple[Path, str]], count: int) -> list[Path]:
    """``count`` held-out cells, one class after another, each the middle one of its class
    (then the next): one cell can be lucky."""
    by_class: dict[str, list[Path]] = {}
    for path, label in files:
        by_class.setdefault(label, []).append(path)
    return [paths[len(paths) // 2 + turn] for turn in range(count)
            for paths in by_class.values()][:count]


def fidelity_rows(classifier: Classifier, files: list[tuple[Path, str]], count: int) -> None:
    """LIME's and SHAP's fidelity on ``count`` more held-out cells."""
    chosen = middle_cells(files, count)
    results = {"lime": [], "shap": []}
    for path in chosen:
        x = classifier.prepare(read_image(path))
        index = int(np.argmax(classifier.predict_proba(x[None])[0]))
        lime, _ = fidelity("lime", classifier, x, index)
        shap, count_shap = fidelity("shap", classifier, x, index)
        results["lime"].append(lime)
        results["shap"].append(shap)
        print(f"  {path.parent.name}/{path.name}: LIME {lime:.3f}, SHAP {shap:.3f} "
              f"({count_shap} superpixels)", flush=True)
    for name, values in results.items():
        print(f"{name} fidelity over {len(values)} cells: min {min(values):.3f}, "
              f"median {np.median(values):.3f}, mean {np.mean(values):.3f}")


def panel_rows(classifier: Classifier, image: np.ndarray, sha: str) -> None:
    from dashboard.results import explanation

    methods = [m.name for m in available_methods()]

    def new_cell():
        # As the dashboard does: frame and classify once, then every method.
        box = classifier.frame(image)
        probabilities = classifier.predict_proba(classifier.prepare(image, box)[None])[0]
        return [explain(m, image, classifier, int(np.argmax(probabilities)), box=box)
                for m in methods]

    new_seconds, _ = timed(new_cell)
    index = classifier.classes.index(classifier.predict([image])[0].label)
    for method in methods:
        explanation(classifier, sha, image, method, index, {})
    cached, _ = timed(lambda: [explanation(classifier, sha, image, m, index, {})
                               for m in methods], 3)
    print(f"whole panel, new cell: {new_seconds:.2f} s (naive: the sum of the naive column)")
    print(f"whole panel, cached cell: {cached:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--image", help="a cell image (default: a held-out PBC test cell)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "pbc"))
    parser.add_argument("--fidelity-cells", type=int, default=0,
                        help="also check LIME and SHAP fidelity on this many more cells")
    args = parser.parse_args()
    classifier = Classifier(args.model)
    files = test_split_files(args.model, args.data)
    path = Path(args.image) if args.image else files[0][0]
    image = read_image(path)
    x = classifier.prepare(image)
    index = classifier.classes.index(classifier.predict([image])[0].label)
    print(f"cell {path.name}, class {classifier.classes[index]}, model {classifier.name} "
          f"({classifier.runtime}), {os.cpu_count()} CPU cores")
    print(f"{'method':<12}{'naive':>12}{'ours':>12}{'ratio':>10}")
    gradcam_rows(classifier, x, index)
    lime_row(classifier, x, index)
    shap_row(classifier, x, index)
    import hashlib

    panel_rows(classifier, image, hashlib.sha256(path.read_bytes()).hexdigest())
    if args.fidelity_cells:
        fidelity_rows(classifier, files, args.fidelity_cells)


if __name__ == "__main__":
    main()
