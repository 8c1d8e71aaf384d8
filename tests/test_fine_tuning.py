"""Which layers phase two trains: the blocks from a prefix up, BatchNorm only when asked."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hematovision.model.network import build_classifier, set_fine_tuning


@pytest.fixture(scope="module")
def network():
    return build_classifier("lite0", 3, input_size=64, pretrained=False)


def _batchnorm(model, trainable: bool) -> set[str]:
    return {layer.name.split("_")[0] for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable == trainable}


@pytest.mark.parametrize("prefix,train_batchnorm,learning_blocks", [
    (None, False, set()),
    (None, True, set()),  # nothing unfrozen: BatchNorm stays frozen too
    ("block14_", False, set()),
    ("block14_", True, {"block14", "block15", "top"}),
])
def test_batchnorm_learns_only_in_unfrozen_blocks_and_only_when_asked(
        network, prefix, train_batchnorm, learning_blocks):
    set_fine_tuning(network, prefix, train_batchnorm)
    assert _batchnorm(network, trainable=True) == learning_blocks
    assert "stem" in _batchnorm(network, trainable=False)
    convolutions = {layer.name.split("_")[0] for layer in network.layers
                    if isinstance(layer, keras.layers.Conv2D) and layer.trainable}
    assert convolutions == ({"block14", "block15", "top"} if prefix else set())


def test_learning_batchnorm_moves_its_statistics_in_training(network):
    set_fine_tuning(network, "block15_", train_batchnorm=True)
    learning = next(layer for layer in network.layers if layer.name.startswith("block15_")
                    and isinstance(layer, keras.layers.BatchNormalization))
    frozen = next(layer for layer in network.layers if layer.name.startswith("block14_")
                  and isinstance(layer, keras.layers.BatchNormalization))
    before = [np.array(w) for w in (learning.moving_mean, frozen.moving_mean)]
    network.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    network.fit(images, keras.utils.to_categorical(np.arange(8) % 3, 3), epochs=1, verbose=0)
    assert not np.array_equal(before[0], learning.moving_mean)
    np.testing.assert_array_equal(before[1], frozen.moving_mean)
