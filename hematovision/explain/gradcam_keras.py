"""Grad-CAM's gradients from the Keras model, for any layer: the slow path.

The default layer of a model with a linear head needs no gradients
(:mod:`hematovision.explain.gradcam`). Any other layer, or a head with a hidden layer,
needs TensorFlow: loading it costs seconds and about a gigabyte. tf-keras-vis rebuilds a
model and runs it eagerly on every call (about 0.6 s here); this module compiles the
forward and backward pass once per model and layer, which gives the same gradients.
"""

from __future__ import annotations

import threading
import weakref

import keras
import numpy as np
import tensorflow as tf

from hematovision.model.classifier import Classifier
from hematovision.model.network import LOGITS_LAYER

__all__ = ["gradient_function", "keras_activations_and_gradients"]

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def gradient_function(classifier: Classifier, layer: str):
    """One compiled function per model and layer: (image batch, class) → (activations,
    gradients, logit).

    Built on a second view of the shared model (its layers, a new graph), so the cached
    model that every user shares is never modified.

    Raises:
        ValueError: the model has no layer of that name.
    """
    with _lock:
        functions = _compiled.setdefault(classifier, {})
        if layer not in functions:
            model = classifier.model
            try:
                target = model.get_layer(layer)
            except ValueError:
                raise ValueError(f"the model has no layer {layer!r}; its Grad-CAM layer is "
                                 f"{classifier.card.config.gradcam_layer!r}") from None
            view = keras.Model(model.inputs, [target.output,
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
            functions[layer] = function
        return functions[layer]


def keras_activations_and_gradients(model_input: np.ndarray, classifier: Classifier,
                                    class_index: int, layer: str
                                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """``layer``'s activations ``(h, w, k)``, the gradients of the class logit with respect
    to them, and the logit itself."""
    function = gradient_function(classifier, layer)
    activations, gradients, score = function(tf.constant(model_input[None], tf.float32),
                                             tf.constant(class_index, tf.int32))
    return activations.numpy()[0], gradients.numpy()[0], float(score.numpy()[0])
