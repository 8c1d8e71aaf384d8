"""How each registered backbone is built and gets its ImageNet weights: the functions the
registry in :mod:`hematovision.model.backbones` names. Keras and the ports are imported
only when one is called."""

from __future__ import annotations

from hematovision.model.backbones import BACKBONES

__all__ = ["lite_features", "lite_weights", "mobilenet_v2_features", "mobilenet_v2_weights",
           "efficientnet_b0_features"]


def lite_features(x, pretrained: bool, mix_style: bool = False, style_noise: bool = False,
                  name: str = "lite0"):
    """EfficientNet-Lite ``name``: its own rescaling of 0–255, then its blocks (the weights
    come from :func:`lite_weights`)."""
    import keras

    from hematovision.model.efficientnet_lite import lite_features as blocks

    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0,
                               name=f"{name}_preprocess")(x)
    return blocks(x, name, mix_style, style_noise)


def lite_weights(model, name: str = "lite0"):
    """The official ImageNet weights of EfficientNet-Lite ``name``, ported."""
    from hematovision.model.efficientnet_lite import load_lite_imagenet_weights

    return load_lite_imagenet_weights(model, name)


def mobilenet_v2_features(x, pretrained: bool):
    """MobileNetV2 rebuilt with PyTorch's padding (the weights come from
    :func:`mobilenet_v2_weights`)."""
    from hematovision.model.mobilenet_v2 import mobilenet_v2_features as features

    return features(x)


def mobilenet_v2_weights(model):
    """torchvision's ImageNet weights of MobileNetV2, ported."""
    from hematovision.model.mobilenet_v2 import load_mobilenet_v2_imagenet_weights

    return load_mobilenet_v2_imagenet_weights(model)


def efficientnet_b0_features(x, pretrained: bool):
    """Keras' EfficientNetB0; its ImageNet weights are downloaded on first use."""
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
