"""Fine-tune a trained network's last block and head on a handful of cells.

Refitting only the last layer cannot change what the pooled features see, and on another
laboratory's cells those features are where the errors start. Ten cells per class are too
few to retrain a network, but enough to move its last block a little: the network is cut
before that block, the trunk below it runs once on augmented copies of the cells, and only
the block above (with the head) is trained, with an L2 pull towards its trained weights
(L2-SP, Li et al. 2018) so it cannot wander far from what it learned on thousands of cells.
BatchNormalization stays frozen: a few dozen cells give no usable batch statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from hematovision.train.pipeline import augment

if TYPE_CHECKING:
    from hematovision.adapt.tunings import BlockTuning

__all__ = ["LastBlock", "copy_model"]


def copy_model(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with its own weights (same layers, names and values): tuning
    it leaves the original, which a running dashboard may be predicting with, unchanged."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


class LastBlock:
    """A copy of a trained model, cut before its last block; tuning changes the copy
    (:attr:`model`), never the model it was given.

    Args:
        model: the trained Keras classifier (logits layer named ``logits_layer``).
        first_layer: the name of the last block's first layer; nothing may bypass it.
        logits_layer: the layer whose output is the class logits.
    """

    def __init__(self, model: keras.Model, first_layer: str, logits_layer: str = "logits"):
        self.model = model = copy_model(model)
        cut = model.get_layer(first_layer).input
        self.trunk = keras.Model(model.inputs, cut)
        self.top = keras.Model(cut, model.get_layer(logits_layer).output)
        for layer in self.top.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        self._trained = [np.array(w) for w in self.top.trainable_weights]

    def reset(self) -> None:
        """Put back the weights the copy had when it was cut."""
        for weight, value in zip(self.top.trainable_weights, self._trained):
            weight.assign(value)

    def trunk_outputs(self, images: np.ndarray, copies: int = 0, seed: int = 0,
                      batch_size: int = 32) -> np.ndarray:
        """What the last block receives for ``images`` (0–255 RGB), or for ``copies``
        augmented copies of each, shaped ``(n, copies, …)``."""
        if not copies:
            return np.asarray(self.trunk.predict(images, batch_size=batch_size, verbose=0))
        order = np.repeat(np.arange(len(images)), copies)
        seeds = np.stack([np.full(len(order), seed), np.arange(len(order))], axis=1)
        data = tf.data.Dataset.from_tensor_slices((order, seeds)).map(
            lambda i, s: augment(tf.gather(tf.constant(images, tf.float32), i), s),
            num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
        outputs = np.concatenate([np.asarray(self.trunk(batch, training=False))
                                  for batch in data])
        return outputs.reshape(len(images), copies, *outputs.shape[1:])

    def logits(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """The class logits for trunk outputs."""
        return np.concatenate([np.asarray(self.top(inputs[i:i + batch_size], training=False))
                               for i in range(0, len(inputs), batch_size)])

    def tune(self, inputs: np.ndarray, labels: np.ndarray, settings: BlockTuning,
             progress: Callable[[float], None] | None = None) -> None:
        """Train the block and head on trunk outputs ``inputs`` ``(n, copies, …)`` of cells
        labelled ``labels`` (class indices), starting from the trained weights.

        Classes count equally whatever their numbers of cells, and the softmax runs over
        the classes present only, so that classes the user did not show keep their place.
        (Remembered training features, as :func:`hematovision.adapt.head.fit_head` uses,
        cannot help here: they describe the block's output, and the block moves. Measured
        on zheng2018_d2 with them at the head: PBC immature granulocytes were no longer
        recognised at all.)
        """
        self.reset()
        flat = inputs.reshape(-1, *inputs.shape[2:])
        targets = np.repeat(labels, inputs.shape[1]).astype(np.int32)
        classes = self.top.output.shape[-1]
        counts = np.bincount(targets, minlength=classes)
        absent = tf.constant(np.where(counts > 0, 0.0, -1e9), tf.float32)
        sample_weight = (1.0 / counts[targets]).astype(np.float32)
        sample_weight /= sample_weight.mean()
        weights = self.top.trainable_weights
        anchors = [tf.constant(value) for value in self._trained]
        optimizer = keras.optimizers.Adam(settings.learning_rate)

        @tf.function
        def step(x, y, w):
            with tf.GradientTape() as tape:
                logits = self.top(x, training=True) + absent
                loss = tf.reduce_mean(
                    w * tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
                loss += settings.pull * tf.add_n(
                    [tf.reduce_sum(tf.square(v - a)) for v, a in zip(weights, anchors)])
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))

        rng = np.random.default_rng(settings.seed)
        for epoch in range(settings.epochs):
            order = rng.permutation(len(flat))
            for start in range(0, len(order), settings.batch_size):
                batch = order[start:start + settings.batch_size]
                step(flat[batch], targets[batch], sample_weight[batch])
            if progress:
                progress((epoch + 1) / settings.epochs)
