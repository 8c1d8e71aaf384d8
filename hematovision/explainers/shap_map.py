"""SHAP: each region's share of the class probability, by Owen values over a partition.

Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions"; the
partition explainer computes Owen values over a hierarchy of image halves, quarters, …,
hiding regions by blurring them. Positive values push towards the class, negative away.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from hematovision.classifier import Classifier
from hematovision.explainers import Explainer, register, signed_heatmap

__all__ = ["shap_values", "shap_map"]


def shap_values(model_input: np.ndarray, classifier: Classifier, class_index: int,
                evaluations: int, blur: int = 32, batch_size: int = 32, progress=None
                ) -> np.ndarray:
    """Owen values of the class probability, ``(size, size)`` (summed over colour)."""
    import shap

    masker = _masker(classifier.input_size, blur)
    calls = {"done": 0}

    def score(images: np.ndarray) -> np.ndarray:
        result = classifier.predict_proba(np.asarray(images, np.float32), batch_size)
        calls["done"] += len(images)
        if progress is not None:
            progress(min(1.0, calls["done"] / evaluations))
        return result

    explainer = shap.PartitionExplainer(score, masker)
    values = explainer(model_input[None], max_evals=evaluations, batch_size=batch_size,
                       outputs=[class_index], silent=True).values
    return np.asarray(values)[0, ..., 0].sum(axis=-1)


def _masker(size: int, blur: int):
    # Building the partition tree over every pixel and colour takes over half a second,
    # and it depends only on the shape. Each call gets its own shallow copy: the masker
    # remembers the last image it blurred, which must not be shared between users.
    return copy.copy(_masker_template(size, blur))


@lru_cache(maxsize=4)
def _masker_template(size: int, blur: int):
    import shap

    return shap.maskers.Image(f"blur({blur},{blur})", (size, size, 3))


def shap_map(model_input, classifier, class_index, progress=None, evaluations=250, blur=32):
    values = shap_values(model_input, classifier, class_index, evaluations, blur,
                         progress=progress)
    return signed_heatmap(values)


register(Explainer(
    name="shap",
    title="SHAP",
    caption=("Splits the image into halves, quarters and smaller blocks and measures how "
             "much each block, blurred out, changes the class probability (Owen values). "
             "Red: evidence for the class; blue: against. Block-shaped by design."),
    defaults={"evaluations": 250, "blur": 32},
    compute=shap_map,
    reference="Lundberg & Lee 2017",
))
