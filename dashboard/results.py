"""Cached predictions and explanations, keyed by image content, model and settings."""

from __future__ import annotations

import numpy as np
import streamlit as st

from hematovision.classifier import Classifier, Prediction
from hematovision.explainers import Explanation, explain


def model_key(classifier: Classifier) -> str:
    return f"{classifier.name}:{classifier.model_sha256}"


@st.cache_data(max_entries=2048, show_spinner=False)
def _probabilities(model: str, image_sha: str, _classifier: Classifier, _image: np.ndarray
                   ) -> np.ndarray:
    return _classifier.predict_proba(_classifier.prepare(_image)[None])[0]


def predict(classifier: Classifier, image_sha: str, image: np.ndarray, threshold: float
            ) -> Prediction:
    probabilities = _probabilities(model_key(classifier), image_sha, classifier, image)
    return classifier.predictions_from(probabilities[None], threshold)[0]


@st.cache_data(max_entries=512, show_spinner=False)
def _explanation(model: str, image_sha: str, method: str, class_index: int, settings: tuple,
                 _classifier: Classifier, _image: np.ndarray, _progress=None) -> Explanation:
    return explain(method, _image, _classifier, class_index, progress=_progress, **dict(settings))


def explanation(classifier: Classifier, image_sha: str, image: np.ndarray, method: str,
                class_index: int, settings: dict, progress=None) -> Explanation:
    """Computed once per (image, model, method, class, settings); a rerun or a slider
    that only changes the overlay is served from the cache."""
    return _explanation(model_key(classifier), image_sha, method, class_index,
                        tuple(sorted(settings.items())), classifier, image, progress)
