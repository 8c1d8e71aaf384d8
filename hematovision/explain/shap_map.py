"""SHAP: each patch of the cell's share of the model's confidence, by Kernel SHAP.

Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions". Kernel SHAP
estimates Shapley values by a linear fit over coalitions of features, weighted by the
Shapley kernel. The features are the cell's superpixels, the same as LIME's; a hidden
patch shows the cell blurred. The score is the class's calibrated log-odds (as LIME's):
a confident model's probability stays at 1 until the decisive patch goes, and the other
patches' shares would be noise. Positive values push towards the class, negative away,
and all of them add up to the log-odds of the cell minus those of the blurred copy.

The copies are scored once for LIME and SHAP together
(:mod:`hematovision.explain.coalitions`). :func:`kernel_shap_reference` is shap's own
``KernelExplainer`` on the same patches, the reference the tests and benchmarks use.
"""

from __future__ import annotations

import numpy as np

from hematovision.explain.coalition_fits import kernel_shap_fit
from hematovision.explain.coalitions import hidden_copy, log_odds, scored_coalitions
from hematovision.explain.explanation import signed_heatmap
from hematovision.model.classifier import Classifier

__all__ = ["shap_values", "kernel_shap_reference", "shap_map"]


def shap_values(model_input: np.ndarray, classifier: Classifier, class_index: int,
                samples: int = 250, segments: int = 12, compactness: float = 10.0,
                seed: int = 0, progress=None) -> tuple[np.ndarray, float, np.ndarray]:
    """Kernel SHAP values of the class's log-odds, one per superpixel ``(M,)``, the
    log-odds with every superpixel hidden (the values add up to the difference), and the
    superpixels ``(size, size)``."""
    scored = scored_coalitions(model_input, classifier, samples, segments, compactness, seed,
                               progress)
    scores = log_odds(scored.logits, classifier.card.config.temperature)[:, class_index]
    values, empty = kernel_shap_fit(scored, scores)
    return values, empty, scored.segmentation


def kernel_shap_reference(model_input: np.ndarray, classifier: Classifier, class_index: int,
                          segmentation: np.ndarray, samples: int = 5000,
                          batch_size: int = 64) -> np.ndarray:
    """shap's ``KernelExplainer`` on the same superpixels, hiding and log-odds: values
    ``(M,)``."""
    import shap

    count = int(segmentation.max()) + 1
    image = np.asarray(model_input, np.float32)
    hidden = hidden_copy(model_input)

    def score(masks: np.ndarray) -> np.ndarray:
        result = []
        for start in range(0, len(masks), batch_size):
            keep = masks[start : start + batch_size].astype(bool)[:, segmentation][..., None]
            batch = np.where(keep, image[None], hidden[None])
            logits = classifier.forward(batch, batch_size)[0]
            result.append(log_odds(logits, classifier.card.config.temperature)[:, class_index])
        return np.concatenate(result)

    explainer = shap.KernelExplainer(score, np.zeros((1, count)))
    # l1_reg=False: the default keeps only 10 features and zeroes the rest.
    values = explainer.shap_values(np.ones((1, count)), nsamples=samples, l1_reg=False,
                                   silent=True)
    return np.asarray(values, np.float64).reshape(-1)[:count]


def shap_map(model_input, classifier, class_index, progress=None, evaluations=250,
             segments=12, compactness=10.0, seed=0):
    values, _, segmentation = shap_values(model_input, classifier, class_index, evaluations,
                                          segments, compactness, seed, progress)
    return signed_heatmap(values[segmentation])
