"""The fast runtime beside a saved Keras model: LiteRT logits and features, and the linear
head Grad-CAM needs without TensorFlow."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from hematovision.io.files import sha256_of_file
from hematovision.model.card import ModelCard, load_card, save_card
from hematovision.model.classifier import check_model_file
from hematovision.model.network import FEATURES_LAYER, LOGITS_LAYER
from hematovision.model.runtime import HEAD_WEIGHTS_FILE, RUNTIME_FILE, export_litert

__all__ = ["add_fast_runtime"]

log = logging.getLogger(__name__)


def add_fast_runtime(model_dir: str | Path) -> ModelCard:
    """Convert a saved model's logits to LiteRT beside it and record the file in its card.

    Where the head after the card's Grad-CAM layer is linear (see
    :func:`hematovision.model.network.linear_head`), the file also returns that layer's feature
    map, and the head's weights are saved beside it (``head.npz``): Grad-CAM then needs
    neither TensorFlow nor gradients.
    """
    from hematovision.model.network import linear_head

    model_dir = Path(model_dir)
    card = load_card(model_dir)
    config = card.config
    check_model_file(model_dir / config.model_file, config.model_sha256)
    model = keras.saving.load_model(model_dir / config.model_file, compile=False, safe_mode=True)
    # Logits then pooled features in one flat output: a second flat output's order is not
    # stable through conversion, a concatenation is. The feature map, if any, is the one
    # output of rank 4.
    both = keras.layers.Concatenate(name="logits_and_features")(
        [model.get_layer(LOGITS_LAYER).output, model.get_layer(FEATURES_LAYER).output])
    head = linear_head(model, config.gradcam_layer)
    outputs = [both] if head is None else [both, model.get_layer(config.gradcam_layer).output]
    path = export_litert(keras.Model(model.inputs, outputs), model_dir / RUNTIME_FILE)
    card = card.with_config(runtime_file=path.name, runtime_sha256=sha256_of_file(path),
                            head_weights_file="", head_weights_sha256="")
    if head is not None:
        head_path = model_dir / HEAD_WEIGHTS_FILE
        np.savez(head_path, weights=head[0], bias=head[1])
        card = card.with_config(head_weights_file=head_path.name,
                                head_weights_sha256=sha256_of_file(head_path))
    else:
        log.info("%s: the head after %s is not linear; Grad-CAM will use TensorFlow",
                 model_dir, config.gradcam_layer)
    save_card(model_dir, card)
    return card
