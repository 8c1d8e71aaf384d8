"""The two phases of training: the head on cached features, then the top blocks.

Both log every epoch to ``history.csv`` with the validation metric the checkpoint
watches: balanced accuracy, averaged over sources.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy.special import log_softmax

from hematovision.io.decoding import run_in_batches
from hematovision.measure.metrics import balanced_accuracy
from hematovision.model.card import load_card
from hematovision.model.network import FEATURES_LAYER, LOGITS_LAYER, feature_model, set_fine_tuning
from hematovision.train.pipeline import balanced_training_dataset, training_dataset

__all__ = ["HISTORY_FILE", "EpochLog", "class_weights", "source_balanced_accuracy", "train_head",
           "fine_tune", "start_from", "copy_into"]

HISTORY_FILE = "history.csv"


_HISTORY_FIELDS = ["phase", "epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy",
                   "val_balanced_accuracy", "learning_rate"]


class EpochLog(keras.callbacks.Callback):
    """Validation metrics the checkpoint can watch, a CSV row per epoch, and time left."""

    def __init__(self, phase: int, epochs: int, history_path: Path, val_logits, val_labels,
                 classes: int, val_sources: np.ndarray | None = None):
        super().__init__()
        self.val_sources = (np.zeros(len(val_labels), dtype=np.int64) if val_sources is None
                            else val_sources)
        self.phase, self.epochs, self.history_path = phase, epochs, history_path
        self.val_logits, self.val_labels, self.classes = val_logits, val_labels, classes
        self.started = 0.0
        self.durations: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logits = self.val_logits()
        predicted = logits.argmax(axis=1)
        logs["val_loss"] = float(-np.mean(
            log_softmax(logits, axis=1)[np.arange(len(self.val_labels)), self.val_labels]))
        logs["val_accuracy"] = float(np.mean(predicted == self.val_labels))
        logs["val_balanced_accuracy"] = source_balanced_accuracy(self.val_labels, predicted,
                                                                  self.val_sources)
        seconds = time.time() - self.started
        self.durations.append(seconds)
        rate = self.model.optimizer.learning_rate
        row = {"phase": self.phase, "epoch": epoch + 1, "seconds": round(seconds, 2),
               "learning_rate": float(np.asarray(rate)) if not callable(rate) else float(
                   rate(self.model.optimizer.iterations))}
        row.update({key: round(float(logs[key]), 6) for key in _HISTORY_FIELDS if key in logs})
        new = not self.history_path.exists()
        with open(self.history_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=_HISTORY_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        left = (self.epochs - epoch - 1) * float(np.mean(self.durations))
        print(f"phase {self.phase} epoch {epoch + 1}/{self.epochs}: "
              f"val balanced accuracy {logs['val_balanced_accuracy']:.4f}, "
              f"val loss {logs['val_loss']:.4f}; {seconds:.0f} s; "
              f"at most {left / 60:.1f} min left in this phase", flush=True)


def class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """Loss weights under which every class counts as much as the others."""
    counts = np.bincount(labels, minlength=classes).astype(float)
    counts[counts == 0] = 1.0
    return {i: float(len(labels) / (classes * counts[i])) for i in range(classes)}


def source_balanced_accuracy(labels: np.ndarray, predicted: np.ndarray,
                              sources: np.ndarray) -> float:
    """Balanced accuracy averaged over sources, so a small source's validation cells count
    as much as a large one's (for one source, plain balanced accuracy)."""
    return float(np.mean([balanced_accuracy(labels[sources == s], predicted[sources == s])
                          for s in np.unique(sources)]))


def start_from(model: keras.Model, model_dirs: list[str], classes: list[str]) -> None:
    """Continue from trained models of the same network and classes (skips phase one); from
    several, the mean of their weights (a uniform model soup, Wortsman et al. 2022), which
    stays one network at inference.

    Averaging only makes sense for models fine-tuned from one start, which stay in one basin
    of the loss; BatchNorm statistics are averaged too, which is exact when they are frozen
    at the same values (the default)."""
    trained = []
    for model_dir in model_dirs:
        config = load_card(model_dir).config
        if list(config.classes) != classes:
            raise ValueError(f"{model_dir} has classes {list(config.classes)}, the data has "
                             f"{classes}")
        trained.append(keras.saving.load_model(Path(model_dir) / config.model_file,
                                               compile=False, safe_mode=True))
    for layer in model.layers:
        if layer.weights:
            members = [member.get_layer(layer.name).get_weights() for member in trained]
            layer.set_weights([_mean(values) for values in zip(*members)])


def _mean(values: tuple[np.ndarray, ...]) -> np.ndarray:
    # A counter (a random generator's state) is no weight to average: the first model's.
    if not np.issubdtype(values[0].dtype, np.floating):
        return values[0]
    return np.mean(np.stack(values), axis=0, dtype=np.float64).astype(values[0].dtype)


def copy_into(model: keras.Model, trained: keras.Model) -> keras.Model:
    """Give ``model`` the weights of ``trained``'s layers of the same names; returns it."""
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    return model


def train_head(model, arrays, labels, weights, config, history_path, progress) -> None:
    """Phase one: the head on cached features of the frozen backbone."""
    classes = model.get_layer(LOGITS_LAYER).units
    set_fine_tuning(model, None)
    features = tf.function(feature_model(model), reduce_retracing=True)
    train_features = run_in_batches(lambda b: features(b, training=False), arrays["train"],
                                    progress=progress, description="features (train)")
    val_features = run_in_batches(lambda b: features(b, training=False), arrays["val"],
                                  progress=progress, description="features (val)")
    head_input = keras.Input((train_features.shape[1],))
    names = [layer.name for layer in model.layers]
    x = head_input
    for layer in model.layers[names.index(FEATURES_LAYER) + 1:]:
        x = layer(x)
    head = keras.Model(head_input, x)
    head_logits = keras.Model(head_input, model.get_layer(LOGITS_LAYER)(
        _head_until_logits(model, head_input)))
    head.compile(keras.optimizers.Adam(config.head_learning_rate), "categorical_crossentropy",
                 metrics=["accuracy"])
    head.fit(
        train_features, keras.utils.to_categorical(labels["train"], classes),
        batch_size=config.batch_size, epochs=config.head_epochs, class_weight=weights,
        verbose=0, shuffle=True,
        callbacks=[
            EpochLog(1, config.head_epochs, history_path,
                      lambda: np.asarray(head_logits(val_features, training=False)),
                      labels["val"], classes),
            keras.callbacks.EarlyStopping("val_loss", patience=5, restore_best_weights=True),
        ],
    )


def fine_tune(model, arrays, labels, weights, config, history_path, out_dir, first_layer,
               val_logits, train_sources=None, val_sources=None) -> None:
    """Phase two: the top blocks with augmentation; BatchNorm frozen unless configured.

    With ``train_sources`` (several sources), batches are drawn balanced over classes and
    sources instead of weighting the loss."""
    classes = model.get_layer(LOGITS_LAYER).units
    set_fine_tuning(model, first_layer, config.train_batchnorm)
    per_epoch = int(np.ceil(len(arrays["train"]) / config.batch_size))
    steps = per_epoch * config.fine_tune_epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.fine_tune_learning_rate, steps)
    model.compile(keras.optimizers.Adam(schedule), "categorical_crossentropy",
                  metrics=["accuracy"])
    if train_sources is None:
        data = training_dataset(arrays["train"], labels["train"], classes, config.batch_size,
                                config.seed, config.augmentation)
        fit_options = {"class_weight": weights}
    else:
        data = balanced_training_dataset(arrays["train"], labels["train"], train_sources,
                                         classes, config.batch_size, steps, config.seed,
                                         config.augmentation)
        fit_options = {"steps_per_epoch": per_epoch}
    model.fit(
        data, epochs=config.fine_tune_epochs, **fit_options,
        verbose=1 if sys.stdout.isatty() else 2,
        callbacks=[
            EpochLog(2, config.fine_tune_epochs, history_path, val_logits, labels["val"],
                      classes, val_sources),
            keras.callbacks.ModelCheckpoint(out_dir / "checkpoint.keras",
                                            monitor="val_balanced_accuracy", mode="max",
                                            save_best_only=True),
            keras.callbacks.EarlyStopping("val_balanced_accuracy", mode="max",
                                          patience=config.patience),
        ],
    )
    # The best epoch, not the last one, is the model we keep.
    model.load_weights(out_dir / "checkpoint.keras")


def _head_until_logits(model: keras.Model, head_input):
    """Apply the head layers between the pooled features and the logits to ``head_input``."""
    names = [layer.name for layer in model.layers]
    x = head_input
    for layer in model.layers[names.index(FEATURES_LAYER) + 1 : names.index(LOGITS_LAYER)]:
        x = layer(x)
    return x
