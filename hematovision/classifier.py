"""The one seam to a trained model: load it once, classify a batch, know its classes.

The dashboard, the command line, the explainers and the tests all go through
:class:`Classifier`, so they see the same model, the same preprocessing and the same
calibrated probabilities.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import softmax

from hematovision.images import to_model_input
from hematovision.model_card import ModelCard, load_card
from hematovision.runtime import LiteRTRunner
from hematovision.torch_state_dict import sha256_of_file

__all__ = ["ModelFileError", "Prediction", "Classifier", "CONFIDENT", "REVIEW"]

CONFIDENT = "Confident"
REVIEW = "Review"


class ModelFileError(RuntimeError):
    """A model file is missing, damaged, or not the one its card describes."""


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one cell.

    Attributes:
        label: the most probable class.
        confidence: its calibrated probability.
        probabilities: every class's calibrated probability, in the model's class order.
        classes: the model's classes.
        review_threshold: below this confidence the cell should be checked by a person.
    """

    label: str
    confidence: float
    probabilities: tuple[float, ...]
    classes: tuple[str, ...]
    review_threshold: float

    @property
    def status(self) -> str:
        return REVIEW if self.confidence < self.review_threshold else CONFIDENT

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.classes, self.probabilities))


class Classifier:
    """A trained HematoVision model and its card.

    Args:
        model_dir: a folder holding ``card.json`` and the model file it names.

    Raises:
        ModelFileError: the card or model file is missing, or the file's sha256 differs
            from the card's (a damaged or substituted model is never used).
    """

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        try:
            self.card: ModelCard = load_card(self.model_dir)
        except (FileNotFoundError, ValueError) as error:
            raise ModelFileError(str(error)) from error
        path = self.model_dir / self.card.model_file
        self.model_sha256 = _check_file(path, self.card.model_sha256)
        self._model = None
        self._keras_forward = None
        self._lock = threading.Lock()
        self._runtime = None
        if self.card.runtime_file:
            runtime_path = self.model_dir / self.card.runtime_file
            _check_file(runtime_path, self.card.runtime_sha256)
            self._runtime = LiteRTRunner(runtime_path)
        else:
            _ = self.model

    @property
    def model(self):
        """The Keras model (loaded on first use: classification alone runs on LiteRT and
        never needs TensorFlow, which keeps start-up fast)."""
        with self._lock:
            if self._model is None:
                self._model = self._load_keras()
            return self._model

    @classmethod
    def from_keras(cls, model, card: ModelCard, model_dir: str | Path = ".") -> Classifier:
        """A seam over an in-memory Keras model described by ``card``, run by Keras.

        For derived models that never touch disk, such as the randomised copy of the
        explanation sanity checks; trained models are loaded with ``Classifier(folder)``.
        """
        self = cls.__new__(cls)
        self.model_dir, self.card, self.model_sha256 = Path(model_dir), card, "in-memory"
        self._lock, self._runtime, self._model = threading.Lock(), None, model
        self._keras_forward = self._compile_forward(model)
        return self

    def _load_keras(self):
        import keras

        path = self.model_dir / self.card.model_file
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a corrupt archive
            raise ModelFileError(f"model file {path} cannot be loaded: {error}") from error
        self._keras_forward = self._compile_forward(model)
        return model

    def _compile_forward(self, model):
        import keras
        import tensorflow as tf

        from hematovision.network import LOGITS_LAYER

        view = keras.Model(model.inputs, [model.get_layer(LOGITS_LAYER).output, model.output])
        size = self.card.input_size
        return tf.function(
            lambda batch: view(batch, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
        )

    @property
    def runtime(self) -> str:
        """Which engine runs the forward pass: ``"litert"`` or ``"keras"``."""
        return "litert" if self._runtime is not None else "keras"

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._runtime is None:
            _ = self.model
            logits, probabilities = self._keras_forward(batch)
            return logits.numpy(), probabilities.numpy()
        logits = self._runtime(batch)
        return logits, softmax(logits / self.card.temperature, axis=1).astype(np.float32)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        size = self.input_size
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected a batch of shape (n, {size}, {size}, 3) with RGB 0–255, "
                f"got {batch.shape}"
            )
        return batch

    def forward(self, batch: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated logits and calibrated probabilities, each ``(n, classes)``."""
        batch = self._check_batch(batch)
        logits, probabilities = [], []
        for start in range(0, len(batch), batch_size):
            chunk_logits, chunk_probabilities = self._forward(batch[start : start + batch_size])
            logits.append(chunk_logits)
            probabilities.append(chunk_probabilities)
        if not logits:
            empty = np.zeros((0, len(self.classes)), np.float32)
            return empty, empty
        return np.concatenate(logits), np.concatenate(probabilities)

    def predict_proba(self, batch: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Calibrated class probabilities for ``(n, size, size, 3)`` RGB 0–255 model inputs."""
        return self.forward(batch, batch_size)[1]

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """An RGB uint8 image of any size → this model's input (see ``to_model_input``)."""
        return to_model_input(image, self.input_size)

    def predict(self, images: Sequence[np.ndarray], review_threshold: float | None = None
                ) -> list[Prediction]:
        """Classify RGB uint8 images of any size (as returned by ``read_image``)."""
        if len(images) == 0:
            return []
        batch = np.stack([self.prepare(image) for image in images])
        return self.predictions_from(self.predict_proba(batch), review_threshold)

    def predictions_from(self, probabilities: np.ndarray, review_threshold: float | None = None
                         ) -> list[Prediction]:
        threshold = self.card.review_threshold if review_threshold is None else review_threshold
        result = []
        for row in probabilities:
            top = int(np.argmax(row))
            result.append(Prediction(self.classes[top], float(row[top]),
                                     tuple(float(p) for p in row), self.classes, threshold))
        return result


def _check_file(path: Path, expected_sha256: str) -> str:
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    actual = sha256_of_file(path)
    if expected_sha256 and actual != expected_sha256:
        raise ModelFileError(
            f"model file {path} is damaged or was replaced: sha256 {actual}, "
            f"its card says {expected_sha256}"
        )
    return actual
