"""Explanation speed and fidelity: the old path against the new one, same cell, one run.

    python benchmarks/explain.py [--model models/pbc-lite0] [--image PATH]
                                 [--fidelity-cells N [--seeds S]] [--cold N] [--naive]
                                 [--no-references]

For each method it prints the old path's time (Grad-CAM from the Keras model's gradients;
LIME and SHAP each scoring their own 250 masked copies, SHAP through shap's partition
explainer), the new one's (Grad-CAM in closed form from the fast runtime; LIME and SHAP
from one shared set of 250 scored copies), and the ratio, all in this run. For LIME and
SHAP it also computes the 5,000-sample references on the same superpixels (LIME's own
sampling and ``LimeBase`` fit; shap's ``KernelExplainer``) and prints the Spearman rank
correlation of the map with them; ``--fidelity-cells N`` repeats that on the first
held-out cell and the middle one of N classes, ``--seeds S`` adds the worst over S seeds. With
up to 13 superpixels every coalition is scored once and both references read those scores.
Then the whole Explain panel for a new cell, old and new. ``--cold N`` times N
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
        x, classifier, index, classifier.card.config.gradcam_layer)
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
    cell = fidelity_of_cell(classifier, x, index)
    row("lime+shap", old, ours, f"Spearman vs 5,000-sample references: LIME "
        f"{cell['lime'][0]:.3f}, SHAP {cell['shap'][0]:.3f} (250 scored copies in all, "
        f"{cell['count']} superpixels)")


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
                                   penultimate_layer=classifier.card.config.gradcam_layer), 3)
    print(f"naive tf-keras-vis Gradcam: {seconds:.3f} s")
    seconds, _ = timed(lambda: LimeImageExplainer(random_state=0).explain_instance(
        x.astype(np.float64), keras_predict, labels=(index,), top_labels=None,
        num_samples=1000, batch_size=32, random_seed=0))
    print(f"naive LIME, 1,000 samples on Keras: {seconds:.3f} s")


class CoalitionTable:
    """The model's logits for every coalition of a cell's ``M`` superpixels, scored once
    (``2**M`` masked copies, hidden as the maps hide them), read back by mask. With the
    default dozen or so patches that is about 4,000 copies, fewer than the two references
    would score on their own (5,000 each), and both libraries read the same scores; the
    network is deterministic, so they see what they would have computed."""

    def __init__(self, classifier: Classifier, x: np.ndarray, segmentation: np.ndarray):
        from hematovision.explain.coalition_fits import every_coalition
        from hematovision.explain.coalitions import hidden_copy

        self.count = int(segmentation.max()) + 1
        every = every_coalition(self.count)
        image, hidden = np.asarray(x, np.float32), hidden_copy(x)
        self.logits = np.zeros((len(every), len(classifier.classes)), np.float32)
        for start in range(0, len(every), 64):
            keep = every[start : start + 64].astype(bool)[:, segmentation][..., None]
            self.logits[start : start + 64] = classifier.forward(
                np.where(keep, image[None], hidden[None]), 64)[0]

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        codes = np.asarray(masks).astype(np.int64) @ (1 << np.arange(self.count))
        return self.logits[codes]


TABLE_LIMIT = 13  # patches up to which scoring every coalition is cheaper than the references


def references(classifier: Classifier, x: np.ndarray, index: int, segmentation: np.ndarray,
               table: CoalitionTable | None, seed: int = 123) -> tuple[np.ndarray, np.ndarray]:
    """The libraries' own 5,000-sample estimates on the same superpixels and hiding, of what
    the maps explain (the class's calibrated log-odds): LIME's own sampling and
    ``LimeBase`` fit, and shap's ``KernelExplainer``."""
    import shap

    from hematovision.explain.coalitions import log_odds, probabilities_of
    from hematovision.explain.lime_map import LimeSamples, fit_lime, lime_masks, lime_weights
    from hematovision.explain.shap_map import kernel_shap_reference

    temperature = classifier.card.config.temperature
    if table is None:
        return (lime_weights(x, classifier, index, segmentation, samples=5000, seed=123,
                             link="logit", hide="blur"),
                kernel_shap_reference(x, classifier, index, segmentation, 5000))
    masks = lime_masks(np.random.RandomState(seed), 5000, table.count, False)
    logits = table(masks)
    probabilities = probabilities_of(logits, temperature)
    lime = fit_lime(LimeSamples(masks, logits, probabilities), index, "logit", temperature,
                    seed=seed)
    if seed != 123:
        return lime, np.zeros(table.count)
    explainer = shap.KernelExplainer(
        lambda m: log_odds(table(m), temperature)[:, index], np.zeros((1, table.count)))
    # l1_reg=False: the default keeps only 10 features and zeroes the rest.
    values = explainer.shap_values(np.ones((1, table.count)), nsamples=5000, l1_reg=False,
                                   silent=True)
    return lime, np.asarray(values, np.float64).reshape(-1)[: table.count]


def fidelity_of_cell(classifier: Classifier, x: np.ndarray, index: int,
                     seeds: int = 1) -> dict[str, list[float]]:
    """Spearman (over pixels) of the default LIME and SHAP maps with their references, for
    seed 0 (the default: the maps the page shows, computed as the page computes them) and,
    where every coalition was scored, seeds 1 … ``seeds − 1`` from the same scores."""
    from hematovision.explain.coalition_fits import kernel_shap_fit, lime_fit, lime_limit
    from hematovision.explain.coalitions import ScoredCoalitions, coalition_masks, log_odds
    from hematovision.explain.superpixels import segment_cell

    lime_defaults, shap_defaults = get_explainer("lime").defaults, get_explainer("shap").defaults
    segmentation = segment_cell(x, lime_defaults["segments"], lime_defaults["compactness"])
    count = int(segmentation.max()) + 1
    table = CoalitionTable(classifier, x, segmentation) if count <= TABLE_LIMIT else None
    lime_reference, shap_reference = references(classifier, x, index, segmentation, table)

    def rho(values, reference):
        return float(spearmanr(np.ravel(values), reference[segmentation].ravel()).statistic)

    coalitions._memo.clear()
    if table is not None:
        # How far the 5,000-sample LIME reference agrees with itself: the library with
        # three other seeds, read from the same scores (SHAP's reference with every
        # coalition in 5,000 samples is exact, so it agrees with itself).
        ceiling = [rho(references(classifier, x, index, segmentation, table, seed)[0][segmentation],
                       lime_reference) for seed in (7, 8, 9)]
    lime_map = get_explainer("lime").compute(x, classifier, index, **lime_defaults)[1]
    if table is not None:
        # What LIME's samples tend to: its fit over every coalition's stored score. How far
        # the map and the 5,000-sample reference each are from it.
        limit = lime_limit(log_odds(table.logits, classifier.card.config.temperature)[:, index])
        towards_limit = [rho(lime_map, limit), rho(lime_reference[segmentation], limit)]
    result = {"lime": [rho(lime_map, lime_reference)],
              "shap": [rho(get_explainer("shap").compute(x, classifier, index,
                                                         **shap_defaults)[1], shap_reference)],
              "count": count, "ceiling": ceiling if table is not None else [],
              "limit": towards_limit if table is not None else []}
    for seed in range(1, seeds if table is not None else 1):
        masks, lime_importance, shap_weights, exhaustive = coalition_masks(
            count, lime_defaults["samples"], seed)
        logits = table(masks)
        scored = ScoredCoalitions(masks, lime_importance, shap_weights, exhaustive, logits,
                                  segmentation)
        scores = log_odds(logits, classifier.card.config.temperature)[:, index]
        result["lime"].append(rho(lime_fit(scored, scores)[segmentation], lime_reference))
        result["shap"].append(rho(kernel_shap_fit(scored, scores)[0][segmentation],
                                  shap_reference))
    return result


def middle_cells(files: list[tuple[Path, str]], count: int) -> list[Path]:
    """``count`` held-out cells, one class after another, each the middle one of its class
    (then the next): one cell can be lucky."""
    by_class: dict[str, list[Path]] = {}
    for path, label in files:
        by_class.setdefault(label, []).append(path)
    return [paths[len(paths) // 2 + turn] for turn in range(count)
            for paths in by_class.values()][:count]


def fidelity_rows(classifier: Classifier, files: list[tuple[Path, str]], count: int,
                  seeds: int = 1) -> None:
    """LIME's and SHAP's fidelity on the first held-out cell and ``count`` more, the middle
    one of each class; with ``seeds`` > 1 also the worst over that many seeds."""
    chosen = [files[0][0], *middle_cells(files, count)]
    results = {"lime": [], "shap": []}
    for path in chosen:
        x = classifier.prepare(read_image(path))
        index = int(np.argmax(classifier.predict_proba(x[None])[0]))
        cell = fidelity_of_cell(classifier, x, index, seeds)
        line = f"  {path.parent.name}/{path.name} ({cell['count']} superpixels): "
        parts = []
        for name in ("lime", "shap"):
            results[name].append(cell[name])
            parts.append(f"{name.upper()} {cell[name][0]:.3f}"
                         + (f" (worst of {len(cell[name])} seeds {min(cell[name]):.3f})"
                            if len(cell[name]) > 1 else ""))
        if cell["ceiling"]:
            parts.append(f"LIME's reference against itself, other seeds: "
                         f"{min(cell['ceiling']):.3f}–{max(cell['ceiling']):.3f}")
        if cell["limit"]:
            parts.append(f"against LIME's limit (every coalition): the map "
                         f"{cell['limit'][0]:.3f}, the reference {cell['limit'][1]:.3f}")
        print(line + ", ".join(parts), flush=True)
    for name, values in results.items():
        default = [v[0] for v in values]
        worst = min(min(v) for v in values)
        print(f"{name} fidelity, default seed, over {len(default)} cells: min {min(default):.3f}, "
              f"median {np.median(default):.3f}; under 0.95: {sum(d < 0.95 for d in default)}"
              + (f"; worst over every seed {worst:.3f}" if seeds > 1 else ""))


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


def timing_rows(classifier: Classifier, x: np.ndarray, index: int, image: np.ndarray,
                path: Path, references: bool) -> None:
    import hashlib

    print(f"{'method':<12}{'old':>12}{'new':>12}{'ratio':>10}")
    gradcam_rows(classifier, x, index)
    lime_shap_row(classifier, x, index, references)
    panel_rows(classifier, image, hashlib.sha256(path.read_bytes()).hexdigest())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_dir()))
    parser.add_argument("--image", help="a cell image (default: a held-out PBC test cell)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "pbc"))
    parser.add_argument("--fidelity-cells", type=int, default=0,
                        help="also check LIME and SHAP fidelity on this many more cells")
    parser.add_argument("--fidelity-only", action="store_true",
                        help="with --fidelity-cells: no timings (they need a quiet machine)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="with --fidelity-cells, also the worst of this many seeds")
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
    if not args.fidelity_only:
        timing_rows(classifier, x, index, image, path, not args.no_references)
    if args.naive:
        naive_rows(classifier, x, index)
    if args.fidelity_cells:
        fidelity_rows(classifier, files, args.fidelity_cells, args.seeds)
    if args.cold:
        cold_rows(path, args.model, args.cold)


if __name__ == "__main__":
    main()
