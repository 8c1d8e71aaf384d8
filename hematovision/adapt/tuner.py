"""The two depths of tuning behind one surface: the last layer, or the last block too.

:class:`Tuner` tunes a copy of one model on some of the user's cells and scores the
others; :func:`hematovision.adapt.adaptation.adapt` and
:func:`~hematovision.adapt.adaptation.adaptation_study` do not care which depth runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np

from hematovision.adapt.head import REMEMBERED_PER_CLASS, fit_head
from hematovision.adapt.tunings import BlockTuning
from hematovision.model.classifier import Classifier

__all__ = ["Tuner"]

# hematovision.model.network.LOGITS_LAYER, spelled out: importing network would load Keras when
# the Adapt page merely opens.
_LOGITS_LAYER = "logits"


class Tuner:
    """Tunes a copy of one model on some of the user's cells and scores the others.

    The classifier's own Keras model is never changed: it may be the one every page of a
    running dashboard predicts with.

    Both depths share this surface so that :func:`adapt` and :func:`adaptation_study` do
    not care which one runs; :meth:`fit` always starts again from the trained model.
    """

    def __init__(self, classifier: Classifier, images: np.ndarray, features: np.ndarray,
                 tuning: str, settings: BlockTuning):
        self.settings = settings
        self.images, self.features = images, features
        self.familiarity, self.classes = classifier.familiarity, len(classifier.classes)
        self.block = None
        if tuning == "last-block":
            from hematovision.adapt.last_block import LastBlock
            from hematovision.model.backbones import get_backbone

            # LastBlock tunes a copy of its own; the classifier's model stays as it was.
            self.block = LastBlock(classifier.model,
                                   get_backbone(classifier.card.config.backbone).last_block,
                                   _LOGITS_LAYER)
            self.inputs = self.block.trunk_outputs(images)
        self.source = classifier.model  # read, never written
        self.weights, self.bias = (np.asarray(v, dtype=np.float64) for v in
                                   self.source.get_layer(_LOGITS_LAYER).get_weights())
        self.fitted = (self.weights, self.bias)

    def fit(self, used: list[int], labels: np.ndarray, pull: float = 1.0, seed: int = 0,
            progress: Callable[[float], None] | None = None) -> None:
        if self.block is None:
            remembered = (self.familiarity.draw(REMEMBERED_PER_CLASS, self.classes, seed)
                          if self.familiarity is not None else None)
            self.fitted = fit_head(self.features[used].astype(np.float64), labels[used],
                                   self.weights, self.bias, pull, remembered)
            return
        copies = self.block.trunk_outputs(self.images[used], self.settings.copies, seed)
        self.block.tune(copies, labels[used], replace(self.settings, seed=seed), progress)

    def settings_used(self) -> dict:
        """What the card records about how this depth was fitted."""
        if self.block is not None:
            return {"block": asdict(self.settings)}
        return {"remembered_per_class":
                REMEMBERED_PER_CLASS if self.familiarity is not None else 0}

    def logits(self, cells: list[int]) -> np.ndarray:
        if self.block is None:
            weights, bias = self.fitted
            return self.features[cells] @ weights + bias
        return self.block.logits(self.inputs[cells])

    def tuned_model(self):
        """A copy of the model with the fitted weights, ready to save."""
        if self.block is not None:
            return self.block.model
        from hematovision.adapt.last_block import copy_model

        model = copy_model(self.source)
        model.get_layer(_LOGITS_LAYER).set_weights([w.astype(np.float32) for w in self.fitted])
        return model
