"""Cached predictions and explanations, keyed by image content, model and settings."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

import numpy as np
import streamlit as st

from hematovision.explain import Explanation, explain
from hematovision.explain.overlay import overlay
from hematovision.io.cell_finder import CellBox
from hematovision.model.classifier import Classifier
from hematovision.model.prediction import Prediction


def model_key(classifier: Classifier) -> str:
    return f"{classifier.name}:{classifier.model_sha256}"


@st.cache_data(max_entries=512, show_spinner=False)
def _classified(model: str, image_sha: str, _classifier: Classifier, _image: np.ndarray
                ) -> tuple[Prediction, np.ndarray, CellBox]:
    # The cell is framed once: the very input that is classified is also shown and
    # explained.
    box = _classifier.frame(_image)
    model_input = _classifier.prepare(_image, box)
    prediction = _classifier.predict_inputs(model_input[None], [box])[0]
    return prediction, model_input.astype(np.uint8), box


def predict(classifier: Classifier, image_sha: str, image: np.ndarray, threshold: float
            ) -> Prediction:
    """The model's answer for one image, cached by content; the Review threshold is the
    user's and is applied afresh."""
    prediction = _classified(model_key(classifier), image_sha, classifier, image)[0]
    return replace(prediction, review_threshold=threshold)


def model_view(classifier: Classifier, image_sha: str, image: np.ndarray
               ) -> tuple[np.ndarray, str]:
    """The model's input for this image (for cell-framing models, the crop around the
    cell, at the model's size) and, in words, how the cell was found."""
    _, view, box = _classified(model_key(classifier), image_sha, classifier, image)
    return view, box.reason


class _ExplanationStore:
    """Explanations shared by all sessions, least recently used dropped first.

    Not ``st.cache_data``: a cached function may not update a progress bar that was
    created outside it, and LIME and SHAP must show progress while they run.
    """

    def __init__(self, size: int = 512):
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@st.cache_resource
def _store() -> _ExplanationStore:
    return _ExplanationStore()


def explanation(classifier: Classifier, image_sha: str, image: np.ndarray, method: str,
                class_index: int, settings: dict, progress=None) -> Explanation:
    """Computed once per (image, model, method, class, settings); a rerun or a slider
    that only changes the overlay is served from the store."""
    key = (model_key(classifier), image_sha, method, class_index,
           tuple(sorted(settings.items())))
    found = _store().get(key)
    if found is None:
        box = _classified(model_key(classifier), image_sha, classifier, image)[2]
        found = explain(method, image, classifier, class_index, progress=progress, box=box,
                        **settings)
        _store().put(key, found)
    return found


def gradcam_view(classifier: Classifier, image_sha: str, image: np.ndarray, class_index: int,
                 opacity: float = 0.45) -> np.ndarray:
    """Grad-CAM for ``class_index`` over the part of the image the model saw.

    Over the whole picture the map would end at the edge of the model's square, a hard
    line that reads as part of the map (the Explain page offers both views).
    """
    found = explanation(classifier, image_sha, image, "gradcam", class_index, {})
    return overlay(model_view(classifier, image_sha, image)[0], found.square_heatmap, opacity)
