"""EfficientNet-Lite0's names, kept for existing imports; the family lives in
:mod:`hematovision.model.efficientnet_lite`."""

from hematovision.model.efficientnet_lite import (
    LITE0_BLOCKS,
    LITE0_SHA256,
    BlockSpec,
    build_lite0_imagenet,
    lite0_features,
    lite0_weights_path,
    load_lite0_imagenet_weights,
)

__all__ = [
    "LITE0_SHA256",
    "BlockSpec",
    "LITE0_BLOCKS",
    "lite0_features",
    "build_lite0_imagenet",
    "lite0_weights_path",
    "load_lite0_imagenet_weights",
]
