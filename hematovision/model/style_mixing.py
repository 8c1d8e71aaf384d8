"""Feature-level style mixing for training across laboratories (MixStyle).

Zhou, Yang, Qiao and Xiang, "Domain Generalization with MixStyle", ICLR 2021. The mean
and standard deviation of an early feature map over its height and width carry a picture's
*style* (stain, white balance, camera); the normalised map carries its *content*. While
training, MixStyle gives each picture in a batch the style of a mixture of itself and
another picture of the batch, so later layers learn cells under styles that neither
laboratory produced. At inference the layer passes its input through unchanged, and the
shipped model is rebuilt without it (:func:`hematovision.train.training.train`), so no saved
model depends on this module.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["MixStyle"]


class MixStyle(keras.layers.Layer):
    """Mix per-picture feature statistics inside a training batch.

    Args:
        probability: chance that a batch is mixed at all (the paper's ``p``, 0.5).
        alpha: both parameters of the Beta distribution the mixing weight is drawn from
            (0.1 in the paper: most weights are near 0 or 1, a few near ½).
        epsilon: added to the variance before the square root.
        seed: for the random draws (``None``: Keras' global seed).

    Input and output: ``(batch, height, width, channels)``. The statistics are treated as
    constants in the backward pass, as in the paper's reference code.
    """

    def __init__(self, probability: float = 0.5, alpha: float = 0.1, epsilon: float = 1e-6,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must lie in [0, 1], got {probability}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.probability = float(probability)
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.seed = seed
        self._seeds = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.probability == 0.0:
            return x
        batch = ops.shape(x)[0]
        mean = ops.stop_gradient(ops.mean(x, axis=(1, 2), keepdims=True))
        deviation = ops.stop_gradient(
            ops.sqrt(ops.var(x, axis=(1, 2), keepdims=True) + self.epsilon))
        content = (x - mean) / deviation
        weight = keras.random.beta((batch, 1, 1, 1), self.alpha, self.alpha,
                                   seed=self._seeds, dtype=x.dtype)
        partner = keras.random.shuffle(ops.arange(batch), seed=self._seeds)
        mixed_mean = weight * mean + (1.0 - weight) * ops.take(mean, partner, axis=0)
        mixed_deviation = (weight * deviation
                           + (1.0 - weight) * ops.take(deviation, partner, axis=0))
        mixed = content * mixed_deviation + mixed_mean
        mix = keras.random.uniform((), seed=self._seeds) < self.probability
        return ops.where(mix, mixed, x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "probability": self.probability,
                "alpha": self.alpha, "epsilon": self.epsilon, "seed": self.seed}
