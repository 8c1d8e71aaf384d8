"""Feature-level style augmentation for training across laboratories: MixStyle and
style noise (DSU).

Zhou, Yang, Qiao and Xiang, "Domain Generalization with MixStyle", ICLR 2021. The mean
and standard deviation of an early feature map over its height and width carry a picture's
*style* (stain, white balance, camera); the normalised map carries its *content*. While
training, MixStyle gives each picture in a batch the style of a mixture of itself and
another picture of the batch, so later layers learn cells under styles that neither
laboratory produced. Mixing only interpolates between the styles of the batch; Li et al.,
"Uncertainty Modeling for Out-of-Distribution Generalization" (DSU), ICLR 2022, instead
draw each picture's new statistics from a Gaussian around its own, as wide as the
statistics vary over the batch, which also reaches styles outside the sources' range.
At inference both layers pass their input through unchanged, and the shipped model is
rebuilt without them (:func:`hematovision.train.training.train`), so no saved model
depends on this module.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["MixStyle", "StyleNoise"]


class _StyleLayer(keras.layers.Layer):
    """A training-only layer that gives each picture of a batch a new style: new per-channel
    mean and standard deviation over height and width, the normalised map (the content)
    kept. The statistics are constants in the backward pass, as in MixStyle's reference
    code. Subclasses say how the new statistics are drawn."""

    def __init__(self, probability: float, epsilon: float, seed: int | None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must lie in [0, 1], got {probability}")
        self.probability = float(probability)
        self.epsilon = float(epsilon)
        self.seed = seed
        self._seeds = keras.random.SeedGenerator(seed)

    def _restyle(self, mean, deviation):
        raise NotImplementedError

    def call(self, x, training=None):
        if not training or self.probability == 0.0:
            return x
        mean = ops.stop_gradient(ops.mean(x, axis=(1, 2), keepdims=True))
        deviation = ops.stop_gradient(
            ops.sqrt(ops.var(x, axis=(1, 2), keepdims=True) + self.epsilon))
        content = (x - mean) / deviation
        new_mean, new_deviation = self._restyle(mean, deviation)
        restyled = content * new_deviation + new_mean
        chosen = keras.random.uniform((), seed=self._seeds) < self.probability
        return ops.where(chosen, restyled, x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "probability": self.probability,
                "epsilon": self.epsilon, "seed": self.seed}


class MixStyle(_StyleLayer):
    """Mix per-picture feature statistics inside a training batch.

    Args:
        probability: chance that a batch is mixed at all (the paper's ``p``, 0.5).
        alpha: both parameters of the Beta distribution the mixing weight is drawn from
            (0.1 in the paper: most weights are near 0 or 1, a few near ½).
        epsilon: added to the variance before the square root.
        seed: for the random draws (``None``: Keras' global seed).

    Input and output: ``(batch, height, width, channels)``.
    """

    def __init__(self, probability: float = 0.5, alpha: float = 0.1, epsilon: float = 1e-6,
                 seed: int | None = None, **kwargs):
        super().__init__(probability, epsilon, seed, **kwargs)
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.alpha = float(alpha)

    def _restyle(self, mean, deviation):
        batch = ops.shape(mean)[0]
        weight = keras.random.beta((batch, 1, 1, 1), self.alpha, self.alpha,
                                   seed=self._seeds, dtype=mean.dtype)
        partner = keras.random.shuffle(ops.arange(batch), seed=self._seeds)
        return (weight * mean + (1.0 - weight) * ops.take(mean, partner, axis=0),
                weight * deviation + (1.0 - weight) * ops.take(deviation, partner, axis=0))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class StyleNoise(_StyleLayer):
    """Give each picture a style drawn around its own (DSU, Li et al. 2022).

    Args:
        probability: chance that a batch is perturbed at all (0.5 in the paper).
        epsilon: added to the variances before the square roots.
        seed: for the random draws (``None``: Keras' global seed).

    Each picture's mean and standard deviation are moved by a standard normal draw times
    how much that statistic varies across the batch (the deviation's absolute value is
    kept). Input and output: ``(batch, height, width, channels)``.
    """

    def __init__(self, probability: float = 0.5, epsilon: float = 1e-6,
                 seed: int | None = None, **kwargs):
        super().__init__(probability, epsilon, seed, **kwargs)

    def _restyle(self, mean, deviation):
        mean_spread = ops.sqrt(ops.var(mean, axis=0, keepdims=True) + self.epsilon)
        deviation_spread = ops.sqrt(ops.var(deviation, axis=0, keepdims=True) + self.epsilon)
        shape = ops.shape(mean)
        new_mean = mean + keras.random.normal(shape, seed=self._seeds,
                                              dtype=mean.dtype) * mean_spread
        # Kept positive: a negative deviation would turn the map upside down, not restyle it.
        new_deviation = ops.abs(deviation + keras.random.normal(
            shape, seed=self._seeds, dtype=mean.dtype) * deviation_spread)
        return new_mean, new_deviation
