"""One method's map for one image and class: frame the cell, run the registered method
on the model's input, and bring its map back to the picture (see
:mod:`hematovision.explain.registry` for the methods)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hematovision.explain.registry import get_explainer
from hematovision.io.cell_finder import CellBox
from hematovision.io.images import picture_mask, to_image_grid
from hematovision.model.classifier import Classifier

__all__ = ["Explanation", "explain", "signed_heatmap", "NO_EVIDENCE", "LOW_EVIDENCE",
           "faint_reason"]

Progress = Callable[[float], None]


@dataclass(frozen=True)
class Explanation:
    """One method's answer for one image and one class.

    Attributes:
        heatmap: ``(height, width)`` float32 in [0, 1]: evidence *for* the class.
        signed: ``(height, width)`` float32 in [-1, 1] where the method also measures
            evidence *against* the class (LIME, SHAP); ``None`` otherwise.
        square_heatmap, square_signed: the same maps on the ``(size, size)`` square the
            model saw (its input), where they were computed; laid over the model's view
            they need no resampling back from the picture.
        seconds: wall time spent computing it.
        settings: the method's settings, with defaults filled in.
        probability: the model's calibrated probability for the class.
        faint: why the map must not be read as evidence for the class (the model gives
            the class almost no probability), in a sentence for the map's caption;
            empty otherwise. Shown greyed, such a map still says where the class's
            features would be, never that they are there.
    """

    method: str
    class_name: str
    class_index: int
    heatmap: np.ndarray
    signed: np.ndarray | None
    square_heatmap: np.ndarray
    square_signed: np.ndarray | None
    seconds: float
    settings: dict = field(default_factory=dict)
    probability: float = 1.0
    faint: str = ""


# Below this probability a class's map is shown greyed, its reason in the caption: every
# map is scaled by its own largest value, so without it a class at 0.0 % lights up as
# brightly as the predicted one (Grad-CAM++ keeps every feature with a positive weight).
LOW_EVIDENCE = 0.02


def faint_reason(class_name: str, probability: float) -> str:
    """Why a map of a class with ``probability`` below :data:`LOW_EVIDENCE` is greyed."""
    if probability >= LOW_EVIDENCE:
        return ""
    return (f"Greyed: the model gives {class_name} only {100 * probability:.1f} %, so there "
            f"is no real evidence for it here; the map shows where {class_name}'s features "
            "would count, scaled to its own maximum.")


def explain(method: str, image: np.ndarray, classifier: Classifier,
            class_index: int | None = None, progress: Progress | None = None,
            box: CellBox | None = None, **settings) -> Explanation:
    """Explain ``classifier``'s score for ``class_index`` (default: its prediction) on ``image``.

    Args:
        method: a registry name, e.g. ``"gradcam"``.
        image: ``(height, width, 3)`` uint8 RGB, as from ``read_image``.
        progress: called with the fraction done, for long methods.
        box: the square the model looks at, when the caller has framed the cell already
            (finding it again costs tens of milliseconds per method).
        settings: method settings; unknown names are an error.
    """
    explainer = get_explainer(method)
    unknown = set(settings) - set(explainer.defaults)
    if unknown:
        raise ValueError(f"{method} has no settings {sorted(unknown)}; "
                         f"it takes {sorted(explainer.defaults)}")
    chosen = {**explainer.defaults, **settings}
    explainer.prepare(classifier, **chosen)
    started = time.perf_counter()
    box = box or classifier.frame(image)
    model_input = classifier.prepare(image, box)
    probabilities = classifier.predict_proba(model_input[None])[0]
    if class_index is None:
        class_index = int(np.argmax(probabilities))
    if not 0 <= class_index < len(classifier.classes):
        raise ValueError(f"class index {class_index} is outside 0..{len(classifier.classes) - 1}")
    square_heatmap, square_signed = explainer.compute(model_input, classifier, class_index,
                                                      progress, **chosen)
    # Padding added where the square leaves the picture is not part of it: no evidence
    # is shown there, whatever the method made of it.
    inside = picture_mask(image.shape[:2], box, model_input.shape[0])
    square_heatmap = (np.clip(square_heatmap, 0.0, 1.0) * inside).astype(np.float32)
    shape = image.shape[:2]
    heatmap = np.clip(to_image_grid(square_heatmap, shape, box), 0.0, 1.0)
    signed = None
    if square_signed is not None:
        square_signed = (np.clip(square_signed, -1.0, 1.0) * inside).astype(np.float32)
        signed = np.clip(to_image_grid(square_signed, shape, box), -1.0, 1.0)
    probability = float(probabilities[class_index])
    return Explanation(method, classifier.classes[class_index], class_index, heatmap, signed,
                       square_heatmap, square_signed, time.perf_counter() - started, chosen,
                       probability, faint_reason(classifier.classes[class_index], probability))


# Evidence smaller than this, in the units of the explained score (a probability or
# log-odds), is floating-point rounding: on a blank picture every masked copy scores the
# same, and scaling LIME's 1e-31 weights to full strength drew patches for and against.
NO_EVIDENCE = 1e-9


def signed_heatmap(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale signed evidence to [-1, 1] by its largest magnitude; the heatmap keeps the
    evidence for the class (the positive part). Evidence no larger than
    :data:`NO_EVIDENCE` anywhere gives empty maps."""
    largest = float(np.abs(values).max()) if values.size else 0.0
    if largest <= NO_EVIDENCE:
        signed = np.zeros(values.shape, np.float32)
    else:
        signed = (values / largest).astype(np.float32)
    return np.maximum(signed, 0.0), signed
