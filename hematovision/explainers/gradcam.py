"""Grad-CAM and Grad-CAM++: where the last convolutional features that raise the class's
score lie.

Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"; Chattopadhyay et al. 2018, "Grad-CAM++: Improved Visual
Explanations for Deep Convolutional Networks".

The formulas are those of tf-keras-vis (``Gradcam``, ``GradcamPlusPlus``), which the
tests use as the reference. tf-keras-vis rebuilds a model and runs it eagerly on every
call (about 0.6 s here); this module compiles the forward and backward pass once per
model, which gives the same maps in a fraction of the time.
"""

from __future__ import annotations

import threading
import weakref

import keras
import numpy as np
import tensorflow as tf
from scipy.ndimage import zoom
from tf_keras_vis.utils import normalize

from hematovision.classifier import Classifier
from hematovision.explainers import Explainer, register
from hematovision.network import LOGITS_LAYER

__all__ = ["activations_and_gradients", "gradcam_map", "gradcam_plus_plus_map"]

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _gradient_function(classifier: Classifier):
    """One compiled function per model: (image batch, class) → (activations, gradients, logit).

    Built on a second view of the shared model (its layers, a new graph), so the cached
    model that every user shares is never modified.
    """
    with _lock:
        if classifier not in _compiled:
            model = classifier.model
            view = keras.Model(model.inputs, [model.get_layer(classifier.card.gradcam_layer).output,
                                              model.get_layer(LOGITS_LAYER).output])
            size = classifier.input_size

            @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32),
                                          tf.TensorSpec([], tf.int32)])
            def function(images, class_index):
                with tf.GradientTape() as tape:
                    activations, logits = view(images, training=False)
                    score = logits[:, class_index]
                gradients = tape.gradient(score, activations)
                return activations, gradients, score

            # Traced now, so that the first map does not pay for it (explain's set-up).
            function(tf.zeros([1, size, size, 3]), tf.constant(0, tf.int32))
            _compiled[classifier] = function
        return _compiled[classifier]


def activations_and_gradients(model_input: np.ndarray, classifier: Classifier, class_index: int):
    """The Grad-CAM layer's activations ``(h, w, k)``, the gradients of the class logit
    with respect to them, and the logit itself."""
    function = _gradient_function(classifier)
    activations, gradients, score = function(tf.constant(model_input[None], tf.float32),
                                             tf.constant(class_index, tf.int32))
    return activations.numpy()[0], gradients.numpy()[0], float(score.numpy()[0])


def _expand(cam: np.ndarray, size: int) -> np.ndarray:
    cam = zoom(cam, (size / cam.shape[0], size / cam.shape[1]), order=1)
    return normalize(cam[None])[0].astype(np.float32)


def gradcam_map(model_input, classifier, class_index, progress=None):
    activations, gradients, _ = activations_and_gradients(model_input, classifier, class_index)
    weights = gradients.mean(axis=(0, 1))
    cam = np.maximum((activations * weights).sum(axis=-1), 0.0)
    return _expand(cam, model_input.shape[0]), None


def gradcam_plus_plus_map(model_input, classifier, class_index, progress=None):
    activations, gradients, score = activations_and_gradients(model_input, classifier, class_index)
    first = np.exp(score) * gradients
    second = first * gradients
    third = second * gradients
    global_sum = activations.sum(axis=(0, 1), keepdims=True)
    denominator = second * 2.0 + third * global_sum
    denominator = denominator + (second == 0.0)
    alphas = second / denominator
    normaliser = alphas.sum(axis=(0, 1), keepdims=True)
    alphas = alphas / (normaliser + (normaliser == 0.0))
    weights = (np.maximum(first, 0.0) * alphas).sum(axis=(0, 1), keepdims=True)
    cam = np.maximum((weights * activations).sum(axis=-1), 0.0)
    return _expand(cam, model_input.shape[0]), None


register(Explainer(
    name="gradcam",
    title="Grad-CAM",
    caption=("Colours at the key's \"strong evidence\" end: the region whose features "
             "raise this class's score. Coarse: read it as a region, not fine detail."),
    how=("Where in the last layer of features the evidence for this class sits: the "
         "features are weighted by how much they raise the class score. Coarse (a 7×7 "
         "grid, smoothed), so it shows the region, not fine detail."),
    defaults={},
    compute=gradcam_map,
    set_up=_gradient_function,
    reference="Selvaraju et al. 2017",
))
register(Explainer(
    name="gradcampp",
    title="Grad-CAM++",
    caption=("Like Grad-CAM, but several separate parts of the cell (e.g. nuclear lobes) "
             "can all light up."),
    how=("Like Grad-CAM, but weighting each location by its own positive gradient, so "
         "several separate parts of the cell (e.g. nuclear lobes) can all light up."),
    defaults={},
    compute=gradcam_plus_plus_map,
    set_up=_gradient_function,
    reference="Chattopadhyay et al. 2018",
))
