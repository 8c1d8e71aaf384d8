"""Explanation speed and fidelity: the old path against the new one, same cell, one run.

    python benchmarks/explain.py [--model models/pbc-lite0] [--image PATH]
                                 [--fidelity-cells N] [--cold N] [--naive] [--no-references]

For each method it prints the old path's time (Grad-CAM from the Keras model's gradients;
LIME and SHAP each scoring their own 250 masked copies, SHAP through shap's partition
explainer), the new one's (Grad-CAM in closed form from the fast runtime; LIME and SHAP
from one shared set of 250 scored copies), and the ratio, all in this run. For LIME and
SHAP it also computes the 5,000-sample references on the same superpixels (LIME's own
sampling and ``LimeBase`` fit; shap's ``KernelExplainer``) and prints the Spearman rank
correlation of the map with them; ``--fidelity-cells N`` repeats that on N more held-out
cells. Then the whole Explain panel for a new cell, old and new. ``--cold N`` times N
whole ``python -m hematovision explain`` calls per method (new processes: Python, the
model and the map), ``--naive`` adds the libraries used as their docs show.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hematovision.io.data_home import datasets_dir  # noqa: E402

logging.getLogger("streamlit").setLevel(logging.ERROR)

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from hematovision.explain import (  # noqa: E402
    available_methods,
    coalitions,
    explain,
    get_explainer,
)
from hematovision.io.dataset import test_split_files  # noqa: E402
from hematovision.io.images import read_image  # noqa: E402
from hematovision.model.classifier import Classifier  # noqa: E402
from hematovision.model.store import default_model_dir  # noqa: E402


def timed(function, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def row(name: str, naive: float, ours: float, extra: str = "") -> None:
    print(f"{name:<12}{naive:>10.3f} s{ours:>10.3f} s{naive / ours:>9.1f}×  {extra}")


def old_gradcam(classifier: Classifier, x: np.ndarray, index: int, plus: bool):
    """The path before: the Keras model's gradients, traced once, then the same formulas."""
    from hematovision.explain.gradcam import gradcam_from, gradcam_plus_plus_from
    from hematovision.explain.gradcam_keras import keras_activations_and_gradients

    activations, gradients, score = keras_activations_and_gradients(
        x, classifier, index, classifier.card.gradcam_layer)
    return (gradcam_plus_plus_from(activations, gradients, score) if plus
            else gradcam_from(activations, gradients))


def gradcam_rows(classifier: Classifier, x: np.ndarray, index: int) -> None:
    for name in ("gradcam", "gradcampp"):
        old_gradcam(classifier, x, index, name == "gradcampp")  # traced: the warm case
        old, _ = timed(lambda n=name: old_gradcam(classifier, x, index, n == "gradcampp"), 5)
        compute = get_explainer(name).compute
        compute(x, classifier, index)
        ours, _ = timed(lambda c=compute: c(x, classifier, index), 5)
        row(name, old, ours, "(warm; old: Keras gradients, new: closed form on LiteRT)")


def old_lime_and_shap(classifier: Classifier, x: np.ndarray, index: int) -> None:
    """The path before: LIME's 250 samples (mean colour, mask pairs), then SHAP's
    partition explainer over a tree of the same superpixels, 250 more evaluations."""
    import cv2
    import shap

    from hematovision.explain.lime_map import lime_weights
    from hematovision.explain.superpixels import segment_cell, segment_hierarchy

    segmentation = segment_cell(x, 24, 10.0)
    lime_weights(x, classifier, index, segmentation, 250, link="logit", antithetic=True)
    blurred = cv2.blur(x.astype(np.float32), (32, 32))

    class Masker:
        shape = (1, int(segmentation.max()) + 1)
        clustering = segment_hierarchy(x, segmentation)
        immutable_outputs = fixed_background = True

        def __call__(self, mask, image):
            keep = np.asarray(mask, bool)[segmentation][..., None]
            return (np.where(keep, image, blurred)[None],)

        def mask_shapes(self, image):
            return [(self.shape[1],)]

    shap.PartitionExplainer(lambda images: classifier.predict_proba(
        np.asarray(images, np.float32)), Masker())(
        x[None].astype(np.float32), max_evals=250, batch_size=32, outputs=[index], silent=True)


def new_lime_and_shap(classifier: Classifier, x: np.ndarray, index: int):
    coalitions._memo.clear()  # a new cell
    return (get_explainer("lime").compute(x, classifier, index, **get_explainer("lime").defaults),
            get_explainer("shap").compute(x, classifier, index, **get_explainer("shap").defaults))


def lime_shap_row(classifier: Classifier, x: np.ndarray, index: int,
                  references: bool = True) -> None:
    old_lime_and_shap(classifier, x, index)  # warm: shap's compiled code, the interpreters
    old, _ = timed(lambda: old_lime_and_shap(classifier, x, index))
    new_lime_and_shap(classifier, x, index)
    ours, (lime, shap) = timed(lambda: new_lime_and_shap(classifier, x, index))
    if not references:
        row("lime+shap", old, ours, "(250 scored copies in all; references skipped)")
        return
    lime_r, count = fidelity("lime", classifier, x, index, lime[1])
    shap_r, _ = fidelity("shap", classifier, x, index, shap[1])
    row("lime+shap", old, ours, f"Spearman vs 5,000-sample references: LIME {lime_r:.3f}, "
        f"SHAP {shap_r:.3f} (250 scored copies in all, {count} superpixels)")


def naive_rows(classifier: Classifier, x: np.ndarray, index: int) -> None:
    """The libraries as their docs show them, on ``model.predict`` (slow: minutes)."""
    from lime.lime_image import LimeImageExplainer
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    def keras_predict(images):
        return classifier.model.predict(np.asarray(images, np.float32), verbose=0)

    cam = Gradcam(classifier.model, model_modifier=ReplaceToLinear(), clone=True)
    seconds, _ = timed(lambda: cam(CategoricalScore([index]), x[None],
                                   penultimate_layer=classifier.card.gradcam_layer), 3)
    print(f"naive tf-keras-vis Gradcam: {seconds:.3f} s")
    seconds, _ = timed(lambda: LimeImageExplainer(random_state=0).explain_instance(
        x.astype(np.float64), keras_predict, labels=(index,), top_labels=None,
        num_samples=1000, batch_size=32, random_seed=0))
    print(f"naive LIME, 1,000 samples on Keras: {seconds:.3f} s")


def fidelity(method: str, classifier: Classifier, x: np.ndarray, index: int,
             ours: np.ndarray | None = None) -> tuple[float, int]:
    """Spearman of the default LIME or SHAP map (``ours``, computed when not given) with
    its 5,000-sample library reference on the same superpixels and hiding, and how many
    superpixels there are."""
    from hematovision.explain.lime_map import lime_weights
    from hematovision.explain.shap_map import kernel_shap_reference
    from hematovision.explain.superpixels import segment_cell

    defaults = get_explainer(method).defaults
    segmentation = segment_cell(x, defaults["segments"], defaults["compactness"])
    if method == "lime":
        # LIME's own sampling, 5,000 samples, fitted to what the map explains.
        reference = lime_weights(x, classifier, index, segmentation, samples=5000, seed=123,
                                 link=defaults["link"], hide="blur")
    else:
        reference = kernel_shap_reference(x, classifier, index, segmentation, 5000)
    if ours is None:
        ours = get_explainer(method).compute(x, classifier, index, **defaults)[1]
    return (spearmanr(ours.ravel(), reference[segmentation].ravel()).statistic,
            int(segmentation.max() + 1))


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
        coalitions._memo.clear()
        box = classifier.frame(image)
        probabilities = classifier.predict_proba(classifier.prepare(image, box)[None])[0]
        return [explain(m, image, classifier, int(np.argmax(probabilities)), box=box)
                for m in methods]

    def old_cell():
        box = classifier.frame(image)
        x = classifier.prepare(image, box)
        index = int(np.argmax(classifier.predict_proba(x[None])[0]))
        old_gradcam(classifier, x, index, False)
        old_gradcam(classifier, x, index, True)
        old_lime_and_shap(classifier, x, index)

    old_seconds, _ = timed(old_cell)
    new_seconds, results = timed(new_cell)
    index = classifier.classes.index(classifier.predict([image])[0].label)
    for method in methods:
        explanation(classifier, sha, image, method, index, {})
    cached, _ = timed(lambda: [explanation(classifier, sha, image, m, index, {})
                               for m in methods], 3)
    parts = ", ".join(f"{r.method} {r.seconds:.2f} s" for r in results)
    row("panel", old_seconds, new_seconds, f"whole panel, new cell ({parts})")
    print(f"whole panel, cached cell: {cached:.3f} s")


def cold_rows(path: Path, model: str, repeats: int) -> None:
    """Whole ``python -m hematovision explain`` calls, each a new process."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for method in ("gradcam", "gradcampp", "lime", "shap"):
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "hematovision", "explain", str(path),
                                "--method", method, "--model", model, "--out",
                                str(Path(folder) / "map.png")], check=True, cwd=ROOT,
                               capture_output=True)
                times.append(time.perf_counter() - started)
            print(f"cold explain --method {method:<10} median {np.median(times):.2f} s, "
                  f"max {max(times):.2f} s over {repeats}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--image", help="a cell image (default: a held-out PBC test cell)")
    parser.add_argument("--data", default=str(datasets_dir() / "pbc"))
    parser.add_argument("--fidelity-cells", type=int, default=0,
                        help="also check LIME and SHAP fidelity on this many more cells")
    parser.add_argument("--cold", type=int, default=0,
                        help="time this many whole CLI calls per method")
    parser.add_argument("--no-references", action="store_true",
                        help="skip the first cell's 5,000-sample references (minutes)")
    parser.add_argument("--naive", action="store_true",
                        help="also time the libraries as their docs show them (minutes)")
    args = parser.parse_args()
    classifier = Classifier(args.model)
    files = test_split_files(args.model, args.data)
    path = Path(args.image) if args.image else files[0][0]
    image = read_image(path)
    x = classifier.prepare(image)
    index = classifier.classes.index(classifier.predict([image])[0].label)
    print(f"cell {path.name}, class {classifier.classes[index]}, model {classifier.name} "
          f"({classifier.runtime}), {os.cpu_count()} CPU cores")
    print(f"{'method':<12}{'old':>12}{'new':>12}{'ratio':>10}")
    gradcam_rows(classifier, x, index)
    lime_shap_row(classifier, x, index, not args.no_references)
    import hashlib

    panel_rows(classifier, image, hashlib.sha256(path.read_bytes()).hexdigest())
    if args.naive:
        naive_rows(classifier, x, index)
    if args.fidelity_cells:
        fidelity_rows(classifier, files, args.fidelity_cells)
    if args.cold:
        cold_rows(path, args.model, args.cold)


if __name__ == "__main__":
    main()
