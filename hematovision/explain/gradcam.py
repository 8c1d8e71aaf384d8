"""Grad-CAM and Grad-CAM++: where the last convolutional features that raise the class's
score lie.

Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"; Chattopadhyay et al. 2018, "Grad-CAM++: Improved Visual
Explanations for Deep Convolutional Networks".

The formulas are those of tf-keras-vis (``Gradcam``, ``GradcamPlusPlus``), which the
tests use as the reference. After the Grad-CAM layer the shipped network is linear:
global average pooling, dropout (inactive at inference), a dense layer without
activation, then the temperature. The gradient of logit *c* with respect to the
``(h, w, k)`` feature map ``A`` is therefore the constant ``W[:, c] / (h·w)`` at every
location, so both maps have a closed form (that of CAM, Zhou et al. 2016):

- Grad-CAM: ``relu(Σ_k A_k · W[k, c])``, up to a positive factor;
- Grad-CAM++: with constant gradients every alpha is ``1 / (h·w)``, and the map is
  ``relu(Σ_k A_k · relu(W[k, c]))``, up to the factor ``exp(logit)``: it keeps every
  feature with a positive weight, whatever the class's probability.

The feature map comes from the fast runtime (:meth:`Classifier.feature_map`), so these
maps need neither TensorFlow nor a gradient tape. For any other layer, or a model whose
head is not linear, the gradients come from the Keras model
(:mod:`hematovision.explain.gradcam_keras`), which is slow to load.
"""

from __future__ import annotations

import numpy as np

from hematovision.model.classifier import Classifier

__all__ = ["gradcam_from", "gradcam_plus_plus_from", "activations_and_gradients", "set_up",
           "gradient_free",
           "gradcam_map", "gradcam_plus_plus_map"]

_EPSILON = 1e-7  # keras.backend.epsilon(), which tf-keras-vis' normalize adds


def gradient_free(classifier: Classifier, layer: str | None) -> bool:
    """Whether the map for ``layer`` (``None``: the card's) has the closed form."""
    return classifier.head is not None and layer in (None, classifier.card.config.gradcam_layer)


def activations_and_gradients(model_input: np.ndarray, classifier: Classifier,
                              class_index: int, layer: str | None = None
                              ) -> tuple[np.ndarray, np.ndarray, float]:
    """The layer's activations ``(h, w, k)``, the gradients of the class logit with respect
    to them (same shape), and the logit itself.

    For the card's layer with a linear head the gradients are ``W[:, c] / (h·w)`` at every
    location, from the runtime's feature map; otherwise TensorFlow computes them."""
    if not gradient_free(classifier, layer):
        from hematovision.explain.gradcam_keras import keras_activations_and_gradients

        return keras_activations_and_gradients(model_input, classifier, class_index,
                                               layer or classifier.card.config.gradcam_layer)
    activations, logits = classifier.feature_map(model_input)
    weights, _ = classifier.head
    height, width, _ = activations.shape
    gradients = np.broadcast_to(weights[:, class_index] / (height * width), activations.shape)
    return activations.astype(np.float64), gradients, float(logits[class_index])


def _normalize(cam: np.ndarray) -> np.ndarray:
    return (cam - cam.min()) / (cam.max() - cam.min() + _EPSILON)


def _linear_weights(inputs: int, outputs: int) -> np.ndarray:
    """``(outputs, inputs)``: linear interpolation with the end points aligned, the grid
    ``scipy.ndimage.zoom(..., order=1)`` samples (output ``i`` reads input
    ``i·(inputs − 1)/(outputs − 1)``)."""
    if inputs == 1 or outputs == 1:
        return np.ones((outputs, inputs)) / inputs if outputs == 1 else np.ones((outputs, 1))
    position = np.arange(outputs) * (inputs - 1) / (outputs - 1)
    low = np.minimum(np.floor(position).astype(int), inputs - 2)
    fraction = position - low
    weights = np.zeros((outputs, inputs))
    weights[np.arange(outputs), low] = 1.0 - fraction
    weights[np.arange(outputs), low + 1] += fraction
    return weights


def _expand(cam: np.ndarray, size: int) -> np.ndarray:
    """The ``(h, w)`` map bilinearly enlarged to ``(size, size)`` as tf-keras-vis enlarges it
    (``scipy.ndimage.zoom``, order 1; here in NumPy, which spares the command line SciPy's
    import), then scaled to [0, 1]."""
    cam = np.asarray(cam, np.float32).astype(np.float64)
    cam = _linear_weights(cam.shape[0], size) @ cam @ _linear_weights(cam.shape[1], size).T
    return _normalize(cam.astype(np.float32)).astype(np.float32)


def gradcam_from(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM's ``(h, w)`` map before resizing: activations weighted by the mean gradient
    of each channel, summed, then negative values cut."""
    weights = gradients.mean(axis=(0, 1))
    return np.maximum((activations * weights).sum(axis=-1), 0.0)


def gradcam_plus_plus_from(activations: np.ndarray, gradients: np.ndarray,
                           score: float) -> np.ndarray:
    """Grad-CAM++'s ``(h, w)`` map before resizing (tf-keras-vis' formula, on ``exp(score)``)."""
    # exp(score) only scales the map before it is normalised; kept, as in the reference,
    # because the normaliser's epsilon then weighs the same. Clipped: float64 overflows
    # above 709.
    first = np.exp(np.clip(score, -700.0, 700.0)) * gradients
    second = first * gradients
    third = second * gradients
    global_sum = activations.sum(axis=(0, 1), keepdims=True)
    denominator = second * 2.0 + third * global_sum
    denominator = denominator + (second == 0.0)
    alphas = second / denominator
    normaliser = alphas.sum(axis=(0, 1), keepdims=True)
    alphas = alphas / (normaliser + (normaliser == 0.0))
    weights = (np.maximum(first, 0.0) * alphas).sum(axis=(0, 1), keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0.0)


def gradcam_map(model_input, classifier, class_index, progress=None, layer=None):
    activations, gradients, _ = activations_and_gradients(model_input, classifier,
                                                          class_index, layer)
    return _expand(gradcam_from(activations, gradients), model_input.shape[0]), None


def gradcam_plus_plus_map(model_input, classifier, class_index, progress=None, layer=None):
    activations, gradients, score = activations_and_gradients(model_input, classifier,
                                                              class_index, layer)
    cam = gradcam_plus_plus_from(activations, gradients, score)
    return _expand(cam, model_input.shape[0]), None


def set_up(classifier: Classifier, layer: str | None = None) -> None:
    """Load the Keras graph and trace its gradients, only where the closed form is not
    available for ``layer``."""
    if not gradient_free(classifier, layer):
        from hematovision.explain.gradcam_keras import gradient_function

        gradient_function(classifier, layer or classifier.card.config.gradcam_layer)
