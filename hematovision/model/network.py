"""Build the cell classifier: backbone, pooled features, a small head, calibrated softmax."""

from __future__ import annotations

import keras
import numpy as np

from hematovision.model.backbones import get_backbone

__all__ = ["build_classifier", "with_temperature", "feature_model", "set_fine_tuning",
           "linear_head"]

# Layer names other modules rely on.
FEATURES_LAYER = "avg_pool"
LOGITS_LAYER = "logits"
TEMPERATURE_LAYER = "temperature"
PROBABILITIES_LAYER = "probabilities"


def build_classifier(
    backbone: str,
    num_classes: int,
    input_size: int = 224,
    dropout: float = 0.3,
    hidden_units: int = 0,
    pretrained: bool = True,
    mix_style: bool = False,
    style_noise: bool = False,
) -> keras.Model:
    """A classifier taking ``(batch, input_size, input_size, 3)`` RGB 0–255.

    Head: global average pooling → dropout → [dense ReLU] → dense logits → temperature
    (1 until calibrated) → softmax. With ``pretrained`` the backbone gets its ImageNet
    weights; the keras.applications backbones download them, which needs internet.
    ``mix_style`` and ``style_noise`` add MixStyle and style-noise (DSU) layers for
    training (EfficientNet-Lite backbones only).
    """
    spec = get_backbone(backbone)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    if mix_style or style_noise:
        if not spec.name.startswith("lite"):
            raise ValueError(f"MixStyle and style noise are built into the EfficientNet-Lite "
                             f"backbones only, not {backbone!r}")
        x = spec.features(inputs, pretrained, mix_style=mix_style, style_noise=style_noise)
    else:
        x = spec.features(inputs, pretrained)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if hidden_units:
        x = keras.layers.Dense(hidden_units, activation="relu", name="head_hidden")(x)
        x = keras.layers.Dropout(dropout, name="head_hidden_dropout")(x)
    x = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    x = keras.layers.Rescaling(1.0, name=TEMPERATURE_LAYER)(x)
    outputs = keras.layers.Softmax(name=PROBABILITIES_LAYER)(x)
    model = keras.Model(inputs, outputs, name=f"hematovision_{backbone}")
    if pretrained:
        spec.load_pretrained(model)
    return model


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """A new model sharing ``model``'s layers whose softmax divides the logits by ``temperature``.

    Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks")
    changes confidences, never the predicted class.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = model.get_layer(LOGITS_LAYER).output
    x = keras.layers.Rescaling(1.0 / float(temperature), name=TEMPERATURE_LAYER)(logits)
    outputs = keras.layers.Softmax(name=PROBABILITIES_LAYER)(x)
    return keras.Model(model.inputs, outputs, name=model.name)


def linear_head(model: keras.Model, layer_name: str):
    """The head's weights ``(k, classes)`` and bias ``(classes,)`` when the logits are a
    linear function of the average of ``layer_name``'s ``(h, w, k)`` feature map —
    global average pooling, dropout (inactive at inference), a dense layer without
    activation — and ``None`` otherwise (e.g. a hidden ReLU layer in the head).

    Then the gradient of a logit with respect to the map is a constant, which is what lets
    Grad-CAM run without gradients (:mod:`hematovision.explain.gradcam`).
    """
    dense = model.get_layer(LOGITS_LAYER)
    if not isinstance(dense, keras.layers.Dense) or dense.activation not in (
            keras.activations.linear, None):
        return None
    operation = dense.input._keras_history[0]
    while isinstance(operation, keras.layers.Dropout):
        operation = operation.input._keras_history[0]
    if not (isinstance(operation, keras.layers.GlobalAveragePooling2D)
            and operation.data_format == "channels_last" and not operation.keepdims):
        return None
    if operation.input is not model.get_layer(layer_name).output:
        return None
    weights = np.asarray(dense.kernel.numpy(), np.float32)
    bias = (np.asarray(dense.bias.numpy(), np.float32) if dense.use_bias
            else np.zeros(weights.shape[1], np.float32))
    return weights, bias


def feature_model(model: keras.Model) -> keras.Model:
    """A view of ``model`` that stops at the pooled features (shares its weights)."""
    return keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)


def set_fine_tuning(model: keras.Model, first_layer_prefix: str | None,
                    train_batchnorm: bool = False) -> int:
    """Freeze the backbone below ``first_layer_prefix``; ``None`` freezes all of it.

    By default BatchNormalization stays frozen throughout, as in the Keras fine-tuning
    guide: its ImageNet statistics are what the pretrained layers expect. With
    ``train_batchnorm`` the unfrozen blocks' BatchNorm layers learn too, and normalise by
    each batch's statistics while training. Returns the number of trainable weight tensors.
    """
    if first_layer_prefix and not any(layer.name.startswith(first_layer_prefix)
                                      for layer in model.layers):
        # A typo or another backbone's layer names would silently train the head alone.
        blocks = sorted({layer.name.split("_")[0] for layer in model.layers
                         if layer.name.startswith("block")}, key=lambda name: (len(name), name))
        raise ValueError(f"no layer of this network starts with {first_layer_prefix!r}; "
                         f"its blocks: {', '.join(blocks) or 'none named block…'}")
    head_started = False
    unfrozen = first_layer_prefix is None
    for layer in model.layers:
        if layer.name == FEATURES_LAYER:
            head_started = True
        if first_layer_prefix and layer.name.startswith(first_layer_prefix):
            unfrozen = True
        tuned = bool(first_layer_prefix) and unfrozen
        if head_started:
            layer.trainable = True
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = train_batchnorm and tuned
        else:
            layer.trainable = tuned
    return len(model.trainable_weights)
