"""Can the maps be trusted? Measured checks of every registered explainer.

1. Faithfulness (Petsiuk et al. 2018, "RISE"): deletion and insertion curves. Pixels are
   removed (replaced by a blurred copy) or inserted in the order the map ranks them and the
   class probability is followed; a faithful map makes it fall fast (low deletion AUC) and
   rise fast (high insertion AUC). A random map is the baseline.
2. Localisation (Zhang et al. 2018, "Top-down neural attention by excitation backprop"):
   the pointing game on cells with expert masks: is the map's maximum on the white cell,
   on its nucleus? A patch map (LIME, SHAP) has a whole patch at its maximum; the share of
   that patch on the cell is scored, so a patch half on the cell counts one half.
3. Model randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): maps
   from a copy of the model with its top layers re-initialised must differ from the
   trained model's; the Spearman rank correlation between the two is reported (near 0 is
   good, near 1 means the map does not depend on what the model learned).
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy.stats import spearmanr

from hematovision.explain.explanation import explain
from hematovision.explain.registry import available_methods, get_explainer
from hematovision.io.files import write_json_atomic
from hematovision.io.images import read_image
from hematovision.model.classifier import Classifier

__all__ = ["CHECKS_FILE", "deletion_insertion", "pointing_game", "randomised_copy",
           "run_checks", "save_checks"]

CHECKS_FILE = "explanation_checks.json"
STEPS = 11


def _blurred(model_input: np.ndarray) -> np.ndarray:
    picture = Image.fromarray(model_input.astype(np.uint8)).filter(ImageFilter.GaussianBlur(16))
    return np.asarray(picture, dtype=np.float32)


def deletion_insertion(classifier: Classifier, model_input: np.ndarray, heatmap: np.ndarray,
                       class_index: int, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Class probability as the top-ranked 0, 10, …, 100 % of pixels are deleted / inserted.

    Returns two ``(steps,)`` curves; their means are the areas under them.
    """
    order = np.argsort(-heatmap.ravel(), kind="stable")
    blurred = _blurred(model_input)
    pixels = heatmap.size
    deleted, inserted = [], []
    for fraction in np.linspace(0.0, 1.0, steps):
        chosen = np.zeros(pixels, bool)
        chosen[order[: int(round(fraction * pixels))]] = True
        mask = chosen.reshape(heatmap.shape)[..., None]
        deleted.append(np.where(mask, blurred, model_input))
        inserted.append(np.where(mask, model_input, blurred))
    probabilities = classifier.predict_proba(np.stack(deleted + inserted).astype(np.float32))
    curve = probabilities[:, class_index]
    return curve[:steps], curve[steps:]


def pointing_game(heatmap: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Which share of the map's maximum lies on the cell (mask > 0) and on the nucleus
    (mask == 255): 1 or 0 for a single peak, the patch's share for a patch map.

    Taking the first maximal pixel instead would judge a patch by its top-left corner.
    """
    heatmap = np.asarray(heatmap, np.float64)
    top = heatmap >= heatmap.max() - 1e-6 * max(abs(heatmap.max()), 1.0)
    return float((mask[top] > 0).mean()), float((mask[top] == 255).mean())


def scrambled_layers(classifier: Classifier) -> list[str]:
    """The layers a randomisation check re-initialises: the backbone's last block and
    everything above it with weights, so every backbone is scrambled to the same depth."""
    from hematovision.model.backbones import get_backbone

    names = [layer.name for layer in classifier.model.layers]
    first = names.index(get_backbone(classifier.card.config.backbone).last_block)
    return [layer.name for layer in classifier.model.layers[first:] if layer.weights]


def randomised_copy(classifier: Classifier, seed: int = 0) -> Classifier:
    """The same network with its ``scrambled_layers`` re-initialised (cascading
    randomisation from the top, as in Adebayo et al. 2018) by their own initialisers,
    drawn from ``seed``."""
    # Unseeded, the check's rank correlations moved by up to 0.4 between two runs of the
    # same command (Grad-CAM's mean 0.18 and -0.03 on multi-lite0). Keras draws initial
    # weights only from the global seed, which also reseeds Python's and numpy's global
    # generators: theirs are put back, so a caller's own draws do not repeat.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        import keras

        copy = keras.models.clone_model(classifier.model)
        copy.set_weights(classifier.model.get_weights())
        keras.utils.set_random_seed(seed)
        fresh = keras.models.clone_model(classifier.model)  # new random initial weights
        for name in scrambled_layers(classifier):
            copy.get_layer(name).set_weights(fresh.get_layer(name).get_weights())
        return Classifier.from_keras(copy, replace(classifier.card, name="randomised"),
                                     classifier.model_dir)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _settings(method: str, fast: bool) -> dict:
    return {"samples": 150} if fast and method == "lime" else \
        {"evaluations": 150} if fast and method == "shap" else {}


def _faithfulness(classifier, cells, methods, rng, progress) -> dict:
    curves = {name: {"deletion": [], "insertion": []} for name in [*methods, "random"]}
    seconds = dict.fromkeys(methods, 0.0)
    for number, path in enumerate(cells):
        x = classifier.prepare(read_image(path))
        index = int(np.argmax(classifier.predict_proba(x[None])[0]))
        maps = {"random": rng.random(x.shape[:2])}
        for name in methods:
            started = time.perf_counter()
            maps[name] = get_explainer(name).compute(x, classifier, index, None,
                                                     **get_explainer(name).defaults)[0]
            seconds[name] += time.perf_counter() - started
        for name, heatmap in maps.items():
            deletion, insertion = deletion_insertion(classifier, x, heatmap, index)
            curves[name]["deletion"].append(deletion)
            curves[name]["insertion"].append(insertion)
        if progress:
            progress(f"faithfulness {number + 1}/{len(cells)}")
    result = {}
    for name, both in curves.items():
        deletion, insertion = np.array(both["deletion"]), np.array(both["insertion"])
        result[name] = {
            "deletion_auc": float(deletion.mean()), "insertion_auc": float(insertion.mean()),
            "deletion_curve": deletion.mean(axis=0).tolist(),
            "insertion_curve": insertion.mean(axis=0).tolist(),
            "seconds_per_map": seconds.get(name, 0.0) / max(len(cells), 1),
        }
    return result


def _pointing(classifier, masked, methods, rng, progress) -> dict:
    if not masked:  # not measured: no numbers, rather than a 0 % that reads as measured
        return {"by_method": {}, "area_share": None, "cells": 0}
    hits = {name: {"on_cell": 0.0, "on_nucleus": 0.0} for name in [*methods, "random"]}
    share = {"cell": 0.0, "nucleus": 0.0}
    total = max(len(masked), 1)
    for number, (image_path, mask_path) in enumerate(masked):
        image = read_image(image_path)
        mask = np.asarray(Image.open(mask_path).convert("L"))
        share["cell"] += float((mask > 0).mean()) / total
        share["nucleus"] += float((mask == 255).mean()) / total
        box = classifier.frame(image)
        index = int(np.argmax(classifier.predict_proba(classifier.prepare(image, box)[None])[0]))
        maps = {name: explain(name, image, classifier, index, box=box).heatmap
                for name in methods}
        maps["random"] = rng.random(mask.shape)
        for name, heatmap in maps.items():
            on_cell, on_nucleus = pointing_game(heatmap, mask)
            hits[name]["on_cell"] += on_cell / total
            hits[name]["on_nucleus"] += on_nucleus / total
        if progress:
            progress(f"pointing game {number + 1}/{len(masked)}")
    return {"by_method": hits, "area_share": share, "cells": len(masked)}


def _randomisation(classifier, cells, methods, progress, seed: int = 0) -> dict:
    randomised = randomised_copy(classifier, seed)
    correlations = {name: [] for name in methods}
    for number, path in enumerate(cells):
        x = classifier.prepare(read_image(path))
        index = int(np.argmax(classifier.predict_proba(x[None])[0]))
        for name in methods:
            settings = {**get_explainer(name).defaults, **_settings(name, fast=True)}
            trained = get_explainer(name).compute(x, classifier, index, None, **settings)[0]
            random_ = get_explainer(name).compute(x, randomised, index, None, **settings)[0]
            correlation = spearmanr(trained.ravel(), random_.ravel()).statistic
            correlations[name].append(0.0 if np.isnan(correlation) else float(correlation))
        if progress:
            progress(f"randomisation {number + 1}/{len(cells)}")
    return {name: {"spearman_mean": float(np.mean(v)), "spearman_all": v}
            for name, v in correlations.items()}


def run_checks(classifier: Classifier, cells: list[Path], masked: list[tuple[Path, Path]],
               randomisation_cells: int = 20, seed: int = 0, progress=None) -> dict:
    """Run the three checks and return a JSON-ready dict (with the random-map baseline).

    Args:
        cells: held-out test images for faithfulness and randomisation.
        masked: ``(image, mask)`` pairs for the pointing game (mask 0 background, 128
            cytoplasm, 255 nucleus).
    """
    rng = np.random.default_rng(seed)
    methods = [m.name for m in available_methods()]
    return {
        "model": classifier.name, "model_sha256": classifier.model_sha256,
        "cells": len(cells), "masked_cells": len(masked),
        "faithfulness": _faithfulness(classifier, cells, methods, rng, progress),
        "pointing_game": _pointing(classifier, masked, methods, rng, progress),
        "randomisation": _randomisation(classifier, cells[:randomisation_cells], methods,
                                        progress, seed),
        "randomised_layers": scrambled_layers(classifier),
    }


def save_checks(model_dir: str | Path, checks: dict) -> Path:
    path = Path(model_dir) / CHECKS_FILE
    return write_json_atomic(path, checks)
