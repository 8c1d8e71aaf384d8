"""The one seam to a trained model: load it once, classify a batch, know its classes.

The dashboard, the command line, the explainers and the tests all go through
:class:`Classifier`, so they see the same model, the same preprocessing and the same
calibrated probabilities.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hematovision.errors import HematoVisionError
from hematovision.io.cell_finder import CellBox
from hematovision.io.files import sha256_of_file
from hematovision.io.focus import sharpness
from hematovision.io.images import frame_image, missing_cell, to_model_input
from hematovision.model.card import ModelCard, load_card
from hematovision.model.familiarity import load_familiarity
from hematovision.model.prediction import Prediction
from hematovision.model.runtime import LiteRTRunner, load_head

__all__ = ["ModelFileError", "Classifier", "check_model_file"]


class ModelFileError(HematoVisionError, RuntimeError):
    """A model file is missing, damaged, or not the one its card describes."""


class Classifier:
    """A trained HematoVision model and its card.

    Args:
        model_dir: a folder holding ``card.json`` and the model file it names.
        with_familiarity: ``False`` leaves the familiarity statistics out, for refitting
            them: a missing or damaged statistics file must not stop its own repair.

    Raises:
        ModelFileError: the card or model file is missing, or the file's sha256 differs
            from the card's (a damaged or substituted model is never used).
    """

    def __init__(self, model_dir: str | Path, *, with_familiarity: bool = True):
        self.model_dir = Path(model_dir)
        try:
            self.card: ModelCard = load_card(self.model_dir)
        except (FileNotFoundError, ValueError) as error:
            raise ModelFileError(str(error)) from error
        path = self.model_dir / self.card.config.model_file
        self.model_sha256 = check_model_file(path, self.card.config.model_sha256)
        self._model = None
        self._keras_forward = None
        self._lock = threading.Lock()
        self._runtime = None
        self.familiarity = None
        if self.card.config.familiarity_file and with_familiarity:
            familiarity_path = self.model_dir / self.card.config.familiarity_file
            check_model_file(familiarity_path, self.card.config.familiarity_sha256)
            self.familiarity = _read(load_familiarity, familiarity_path)
        if self.card.config.runtime_file:
            runtime_path = self.model_dir / self.card.config.runtime_file
            check_model_file(runtime_path, self.card.config.runtime_sha256)
            self._runtime = _read(LiteRTRunner, runtime_path)
        self._head = None
        if self.card.config.head_weights_file and self._runtime is not None \
                and self._runtime.has_feature_map:
            head_path = self.model_dir / self.card.config.head_weights_file
            check_model_file(head_path, self.card.config.head_weights_sha256)
            self._head = _read(load_head, head_path)
        if self._runtime is None:
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
        self.familiarity, self._head = None, None
        self._keras_forward = self._compile_forward(model)
        return self

    def with_threads(self, threads: int) -> Classifier:
        """A second view of this model whose network runs on ``threads`` threads of its own
        interpreter (the same answers; each ~90 MiB at batches of up to 8). A batch gives
        each worker one, so that no worker waits for another inside a network call. A
        model run by Keras has no such interpreter and comes back as it is."""
        if self._runtime is None:
            return self
        view = copy.copy(self)
        view._runtime = self._runtime.with_threads(threads)
        return view

    def _load_keras(self):
        import keras

        path = self.model_dir / self.card.config.model_file
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many types for a corrupt archive
            raise ModelFileError(f"model file {path} cannot be loaded: {error}") from error
        self._keras_forward = self._compile_forward(model)
        return model

    def _compile_forward(self, model):
        import keras
        import tensorflow as tf

        from hematovision.model.network import FEATURES_LAYER, LOGITS_LAYER

        view = keras.Model(model.inputs, [model.get_layer(LOGITS_LAYER).output, model.output,
                                          model.get_layer(FEATURES_LAYER).output])
        size = self.card.config.input_size
        return tf.function(
            lambda batch: view(batch, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
        )

    @property
    def runtime(self) -> str:
        """Which engine runs the forward pass: ``"litert"`` or ``"keras"``."""
        return "litert" if self._runtime is not None else "keras"

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self._runtime is None:
            _ = self.model
            logits, probabilities, features = self._keras_forward(batch)
            return logits.numpy(), probabilities.numpy(), features.numpy()
        # The runtime returns the logits followed by the pooled features (see
        # training.add_fast_runtime); older runtime files carry the logits only.
        output = self._runtime(batch)
        classes = len(self.classes)
        logits, features = output[:, :classes], output[:, classes:]
        probabilities = _softmax(logits / self.card.config.temperature).astype(np.float32)
        return logits, probabilities, (features if features.shape[1] else None)

    @property
    def head(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The linear head after the Grad-CAM layer, weights ``(k, classes)`` and bias
        ``(classes,)``, when the runtime also returns that layer's feature map; ``None``
        otherwise (Grad-CAM then needs the Keras model and its gradients)."""
        return self._head

    def feature_map(self, model_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Grad-CAM layer's activations ``(h, w, k)`` and the uncalibrated logits
        ``(classes,)`` for one ``(size, size, 3)`` model input, from the fast runtime.

        Raises:
            ValueError: the runtime file returns no feature map (see :attr:`head`).
        """
        if self._head is None:
            raise ValueError(f"{self.model_dir}'s runtime returns no feature map with a "
                             "linear head; export it again with `python -m hematovision "
                             f"export --model {self.model_dir}`")
        batch = self._check_batch(np.asarray(model_input)[None])
        flat, activations = self._runtime.with_feature_map(batch)
        return activations[0], flat[0, : len(self.classes)]

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.config.classes

    @property
    def input_size(self) -> int:
        return self.card.config.input_size

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        size = self.input_size
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected a batch of shape (n, {size}, {size}, 3) with RGB 0–255, "
                f"got {batch.shape}"
            )
        return batch

    def analyse(self, batch: np.ndarray, batch_size: int = 32
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Uncalibrated logits and calibrated probabilities, each ``(n, classes)``, and the
        pooled features ``(n, features)`` (``None`` if the runtime file has none)."""
        batch = self._check_batch(batch)
        parts = [self._forward(batch[start : start + batch_size])
                 for start in range(0, len(batch), batch_size)]
        if not parts:
            empty = np.zeros((0, len(self.classes)), np.float32)
            return empty, empty, None
        features = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                features)

    def forward(self, batch: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated logits and calibrated probabilities, each ``(n, classes)``."""
        logits, probabilities, _ = self.analyse(batch, batch_size)
        return logits, probabilities

    def predict_proba(self, batch: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Calibrated class probabilities for ``(n, size, size, 3)`` RGB 0–255 model inputs."""
        return self.forward(batch, batch_size)[1]

    def distances(self, features: np.ndarray | None) -> np.ndarray | None:
        """Familiarity distances of pooled features, or ``None`` without statistics."""
        if self.familiarity is None or features is None:
            return None
        return self.familiarity.distance(features)

    def frame(self, image: np.ndarray) -> CellBox:
        """The square of ``image`` this model looks at (its card's framing)."""
        return frame_image(image, self.card.config.framing)

    def prepare(self, image: np.ndarray, box: CellBox | None = None) -> np.ndarray:
        """An RGB uint8 image of any size → this model's input (see ``to_model_input``)."""
        return to_model_input(image, self.input_size, box=box or self.frame(image))

    def predict(self, images: Sequence[np.ndarray], review_threshold: float | None = None
                ) -> list[Prediction]:
        """Classify RGB uint8 images of any size (as returned by ``read_image``)."""
        if len(images) == 0:
            return []
        boxes = [self.frame(image) for image in images]
        batch = np.stack([self.prepare(image, box) for image, box in zip(images, boxes)])
        return self.predict_inputs(batch, boxes, review_threshold)

    def predict_inputs(self, batch: np.ndarray, boxes: Sequence[CellBox] | None = None,
                       review_threshold: float | None = None) -> list[Prediction]:
        """Classify prepared model inputs; ``boxes`` (from :meth:`frame`) say whether a cell
        was found in each, and how large the picture showed it (see ``sharpness``)."""
        _, probabilities, features = self.analyse(batch)
        no_cell = None if boxes is None else [missing_cell(box, self.card.config.framing)
                                              for box in boxes]
        return self.predictions_from(probabilities, review_threshold,
                                     self.distances(features), no_cell, sharpness(batch, boxes))

    def predictions_from(self, probabilities: np.ndarray, review_threshold: float | None = None,
                         distances: np.ndarray | None = None,
                         no_cell: Sequence[str] | None = None,
                         focus: np.ndarray | None = None) -> list[Prediction]:
        """Predictions from computed outputs; ``no_cell`` gives, per image, why no cell was
        framed (empty when one was), as :func:`hematovision.io.images.missing_cell` says."""
        threshold = (self.card.config.review_threshold if review_threshold is None
                     else review_threshold)
        limit = self.familiarity.threshold if self.familiarity is not None else None
        min_focus = self.familiarity.min_sharpness if self.familiarity is not None else 0.0
        result = []
        for index, row in enumerate(probabilities):
            top = int(np.argmax(row))
            distance = None if distances is None else float(distances[index])
            result.append(Prediction(self.classes[top], float(row[top]),
                                     tuple(float(p) for p in row), self.classes, threshold,
                                     distance, limit,
                                     "" if no_cell is None else no_cell[index],
                                     None if focus is None else float(focus[index]),
                                     min_focus))
        return result


def _softmax(scores: np.ndarray) -> np.ndarray:
    """``scipy.special.softmax(scores, axis=1)`` in NumPy: SciPy's special functions take
    about half a second to import, more than a one-cell command spends on the cell."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def check_model_file(path: Path, expected_sha256: str) -> str:
    """The file's sha256, after making sure it is there and is the one its card names."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    if not expected_sha256:
        # Loading an unchecked file is how a damaged one slips through; the card must say.
        raise ModelFileError(f"model file {path} cannot be checked: its card records no sha256")
    actual = sha256_of_file(path)
    if actual != expected_sha256:
        raise ModelFileError(
            f"model file {path} is damaged or was replaced: sha256 {actual}, "
            f"its card says {expected_sha256}"
        )
    return actual


def _read(load, path: Path):
    """``load(path)``, with any failure reported as that file being damaged."""
    try:
        return load(path)
    except Exception as error:  # a damaged file fails in whatever way its reader does
        raise ModelFileError(f"model file {path} is damaged: {error}") from error
