"""Two-phase transfer learning, as in the original HematoVision reports.

Phase one trains only the head on the frozen backbone's pooled features, computed once
(the backbone is the expensive part, and frozen features do not change between epochs).
Phase two unfreezes the top blocks and fine-tunes them, with augmentation, at a low
learning rate. A temperature fitted on the validation split calibrates the result.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy.special import log_softmax, softmax

from hematovision.io.dataset import (
    SPLIT_FILE,
    SplitFractions,
    rank,
    recorded_sources,
    scan_folder,
    source_name,
    split_dataset,
    split_files,
    split_fingerprint,
)
from hematovision.io.decoding import decode_images, run_in_batches
from hematovision.io.files import sha256_of_file
from hematovision.io.images import sharpness
from hematovision.measure.metrics import balanced_accuracy
from hematovision.model.backbones import get_backbone
from hematovision.model.calibration import (
    REVIEW_CATCH,
    ReviewRule,
    fit_review_threshold,
    fit_temperature,
)
from hematovision.model.card import MODEL_FILE, ModelCard, load_card, save_card
from hematovision.model.classifier import check_model_file
from hematovision.model.familiarity import FAMILIARITY_FILE, fit_familiarity
from hematovision.model.network import (
    FEATURES_LAYER,
    LOGITS_LAYER,
    build_classifier,
    feature_model,
    set_fine_tuning,
    with_temperature,
)
from hematovision.model.runtime import HEAD_WEIGHTS_FILE, RUNTIME_FILE, export_litert
from hematovision.train.pipeline import Augmentation, balanced_training_dataset, training_dataset

__all__ = ["TrainingConfig", "train", "add_fast_runtime", "add_familiarity", "HISTORY_FILE"]

log = logging.getLogger(__name__)
HISTORY_FILE = "history.csv"
_HISTORY_FIELDS = ["phase", "epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy",
                   "val_balanced_accuracy", "learning_rate"]


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one training run; the defaults reproduce the shipped model."""

    backbone: str = "lite0"
    input_size: int = 224
    pretrained: bool = True
    dropout: float = 0.3
    hidden_units: int = 0
    head_epochs: int = 40
    head_learning_rate: float = 1e-3
    fine_tune_epochs: int = 6
    fine_tune_learning_rate: float = 3e-4
    fine_tune_from: str | None = None  # None: the backbone's default
    train_batchnorm: bool = False  # BatchNorm of the unfrozen blocks learns in phase two
    mix_style: bool = False  # MixStyle after early stages while training (Lite backbones)
    batch_size: int = 32
    patience: int = 2
    seed: int = 1234
    fractions: SplitFractions = field(default_factory=SplitFractions)
    limit_per_class: int | None = None
    classes: tuple[str, ...] | None = None
    review_threshold: float | None = None  # None: fitted on validation (review_catch)
    review_catch: float = REVIEW_CATCH
    init_from: str | None = None  # continue fine-tuning a trained model folder
    framing: str = "cell"  # see hematovision.io.images.frame_image
    augmentation: Augmentation = field(default_factory=Augmentation)


class _EpochLog(keras.callbacks.Callback):
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
        logs["val_balanced_accuracy"] = _source_balanced_accuracy(self.val_labels, predicted,
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


def _class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=classes).astype(float)
    counts[counts == 0] = 1.0
    return {i: float(len(labels) / (classes * counts[i])) for i in range(classes)}


def _limit(items, limit: int | None):
    if not limit:
        return items
    kept, per_class = [], Counter()
    for item in sorted(items, key=lambda it: rank(it.sha256)):
        if per_class[item.label] < limit:
            kept.append(item)
            per_class[item.label] += 1
    return sorted(kept, key=lambda it: str(it.path))


def _write_split(out_dir: Path, sources, config, fingerprint: str) -> None:
    files = []
    for source in sources:
        files += [{"path": item.path.relative_to(source.dataset.root).as_posix(),
                   "sha256": item.sha256, "label": item.label,
                   "split": source.assignment[item.sha256], "source": source.name}
                  for item in source.dataset.items]
    classes = sorted({name for source in sources for name in source.dataset.classes})
    document = {"root": str(sources[0].dataset.root), "fingerprint": fingerprint,
                "sources": [{"name": source.name, "root": str(source.dataset.root),
                             "fingerprint": source.fingerprint} for source in sources],
                "fractions": asdict(config.fractions), "classes": classes, "files": files}
    (out_dir / SPLIT_FILE).write_text(json.dumps(document, indent=0) + "\n")


@dataclass
class _Source:
    """One training folder: its cells and its own split."""

    name: str
    dataset: object
    assignment: dict
    fingerprint: str


def _scan_sources(data_dirs, config: TrainingConfig) -> list[_Source]:
    """Scan and split each folder on its own, so each source keeps its proportions in
    train, validation and test, and adding a source never moves another's cells."""
    sources, seen = [], set()
    for data_dir in data_dirs:
        name = source_name(data_dir)
        if name in {source.name for source in sources}:
            raise ValueError(f"two training folders are named {name}; the split records "
                             "a source by its folder's name: rename one")
        dataset = scan_folder(data_dir, config.classes)
        duplicates = [item for item in dataset.items if item.sha256 in seen]
        if duplicates:
            log.warning("%s: left out %d images already in an earlier source", name,
                        len(duplicates))
        dataset.items = _limit([item for item in dataset.items if item.sha256 not in seen],
                               config.limit_per_class)
        if not dataset.items:
            raise ValueError(f"{data_dir}: every image is already in an earlier source")
        seen.update(item.sha256 for item in dataset.items)
        assignment = split_dataset(dataset, config.fractions)
        sources.append(_Source(name, dataset, assignment,
                               split_fingerprint(dataset, assignment)))
    return sources


def _combined_fingerprint(sources: list[_Source]) -> str:
    if len(sources) == 1:  # as before sources: a one-folder model's fingerprint is its own
        return sources[0].fingerprint
    text = "\n".join(f"{source.name} {source.fingerprint}" for source in sources)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _decode_sources(sources: list[_Source], index: dict[str, int], config: TrainingConfig,
                    progress: bool):
    """Each source's training and validation cells as model inputs, their class and
    source indices, and each source's counts by split and class."""
    arrays, labels, origin = {}, {}, {}
    per_source = {source.name: {} for source in sources}
    for split in ("train", "val"):
        parts, part_labels, part_origin = [], [], []
        for number, source in enumerate(sources):
            items = [it for it in source.dataset.items if source.assignment[it.sha256] == split]
            images, kept, _, _ = decode_images([it.path for it in items], config.input_size,
                                               progress=progress, framing=config.framing)
            parts.append(images.reshape(-1, config.input_size, config.input_size, 3))
            part_labels.append(np.array([index[items[i].label] for i in kept], dtype=np.int64))
            part_origin.append(np.full(len(kept), number, dtype=np.int64))
            per_source[source.name][split] = {
                c: int(np.sum(part_labels[-1] == i)) for c, i in index.items()}
        arrays[split] = np.concatenate(parts)
        labels[split] = np.concatenate(part_labels)
        origin[split] = np.concatenate(part_origin)
    for source in sources:
        per_source[source.name]["test"] = {c: sum(
            1 for it in source.dataset.items
            if source.assignment[it.sha256] == "test" and it.label == c) for c in index}
    return arrays, labels, origin, per_source


def train(data_dir, out_dir: str | Path, config: TrainingConfig = TrainingConfig(),
          name: str | None = None, progress: bool = True) -> ModelCard:
    """Train a classifier on one or several folders of class folders (each a *source*)
    and save it with its card.

    Each source is split on its own (train, validation, test) and may hold only some of
    the classes; with several sources, training batches are drawn balanced over classes
    and then sources (:mod:`hematovision.train.sampling`).

    Writes into ``out_dir``: ``model.keras`` (calibrated), ``card.json`` and
    ``MODEL_CARD.md``, ``split.json`` (which file of which source went where),
    ``history.csv`` (every epoch of both phases) and ``checkpoint.keras`` (best phase-two
    model, uncalibrated). Returns the card; test metrics are added by
    :func:`hematovision.measure.evaluation.evaluate`.
    """
    started = time.time()
    out_dir = Path(out_dir)
    data_dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    if not data_dirs:
        raise ValueError("no training folder given")
    keras.utils.set_random_seed(config.seed)
    backbone = get_backbone(config.backbone)

    sources = _scan_sources(data_dirs, config)
    fingerprint = _combined_fingerprint(sources)
    classes = sorted({name for source in sources for name in source.dataset.classes})
    if config.classes:
        classes = [name.lower() for name in config.classes]
    index = {name: i for i, name in enumerate(classes)}

    arrays, labels, origin, per_source = _decode_sources(sources, index, config, progress)
    counts = {split: {c: sum(per_source[s][split][c] for s in per_source) for c in classes}
              for split in ("train", "val", "test")}
    where = ", ".join(map(str, data_dirs))
    if len(arrays["train"]) == 0 or len(arrays["val"]) == 0:
        raise ValueError(f"{where}: too few images to make both a training and a validation set")
    # A class without training cells would be a class the model can never answer, and its
    # missing statistics would break the familiarity check and adaptation later.
    empty = [name for name in classes if counts["train"][name] == 0]
    if empty:
        found = sorted({item.label for source in sources for item in source.dataset.items})
        raise ValueError(f"{where}: no training images for {', '.join(empty)} (its "
                         f"class folders: {', '.join(found)})")
    print(f"classes: {', '.join(classes)}")
    for source in sources:
        if len(sources) > 1:
            print(f"source {source.name} ({source.dataset.root}):")
        for split in ("train", "val", "test"):
            counted = per_source[source.name][split]
            print(f"{split:>5}: {sum(counted.values()):6d}  {counted}")

    model = build_classifier(config.backbone, len(classes), config.input_size,
                             config.dropout, config.hidden_units,
                             config.pretrained and not config.init_from, config.mix_style)
    set_fine_tuning(model, config.fine_tune_from)  # a wrong layer name fails now, not later
    weights = _class_weights(labels["train"], len(classes))
    sampling = (origin["train"] if len(sources) > 1 else None)
    # Made only now, so that a run stopped by bad data or settings leaves no empty folder.
    out_dir.mkdir(parents=True, exist_ok=True)
    history_path = out_dir / HISTORY_FILE
    history_path.unlink(missing_ok=True)
    head_seconds = 0.0
    if config.init_from:
        _start_from(model, config.init_from, classes)
    else:
        phase_started = time.time()
        _train_head(model, arrays, labels, weights, config, history_path, progress)
        head_seconds = time.time() - phase_started
    logits_model = keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output)
    logits_fn = tf.function(logits_model, reduce_retracing=True)
    phase_started = time.time()
    if config.fine_tune_epochs > 0:
        _fine_tune(model, arrays, labels, weights, config, history_path, out_dir,
                   config.fine_tune_from or backbone.fine_tune_from,
                   lambda: run_in_batches(lambda b: logits_fn(b, training=False), arrays["val"]),
                   sampling, origin["val"])
    fine_seconds = time.time() - phase_started if config.fine_tune_epochs > 0 else 0.0

    if config.mix_style:
        # MixStyle only acts while training; the shipped graph is the plain one, so loading
        # a model never needs this package's custom layer.
        model = _copy_into(build_classifier(config.backbone, len(classes), config.input_size,
                                            config.dropout, config.hidden_units, False), model)
        logits_fn = tf.function(keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output),
                                reduce_retracing=True)
    val_logits = run_in_batches(lambda b: logits_fn(b, training=False), arrays["val"])
    temperature = fit_temperature(val_logits, labels["val"])
    review_threshold, review_rule = _review_threshold(val_logits / temperature, labels["val"],
                                                      config)
    calibrated = with_temperature(model, temperature)
    model_path = out_dir / MODEL_FILE
    calibrated.save(model_path)
    _write_split(out_dir, sources, config, fingerprint)

    card = ModelCard(
        name=name or out_dir.name,
        classes=tuple(classes),
        backbone=config.backbone,
        input_size=config.input_size,
        preprocessing=backbone.preprocessing,
        weight_source=backbone.weight_source if config.pretrained else "none (random init)",
        gradcam_layer=backbone.gradcam_layer,
        framing=config.framing,
        temperature=temperature,
        review_threshold=review_threshold,
        review_rule=review_rule,
        model_sha256=sha256_of_file(model_path),
        head={"layers": "global average pooling → dropout → "
                        + (f"dense {config.hidden_units} ReLU → dropout → " if config.hidden_units
                           else "") + "dense logits → temperature → softmax",
              "dropout": config.dropout, "hidden_units": config.hidden_units},
        training={
            "config": {k: v for k, v in asdict(config).items() if k != "fractions"},
            "head_phase_seconds": round(head_seconds, 1),
            "fine_tune_phase_seconds": round(fine_seconds, 1),
            "total_seconds": round(time.time() - started, 1),
            "hardware": f"{platform.processor() or platform.machine()}, "
                        f"{_cpu_count()} CPU cores, no GPU",
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "val_balanced_accuracy": _source_balanced_accuracy(
                labels["val"], val_logits.argmax(1), origin["val"]),
            "sampling": ("balanced over classes, then over the sources that hold each class"
                         if len(sources) > 1 else "every training cell once an epoch, "
                         "class-weighted loss"),
        },
        data={"source": ", ".join(str(s.dataset.root) for s in sources), "counts": counts,
              "split_fingerprint": fingerprint,
              "fractions": asdict(config.fractions),
              "duplicates_removed": sum(s.dataset.duplicates_removed for s in sources),
              "conflicting_groups_dropped": sum(len(s.dataset.conflicting) for s in sources),
              "skipped_files": sum(len(s.dataset.skipped) for s in sources),
              "sources": [{"name": s.name, "root": str(s.dataset.root),
                           "split_fingerprint": s.fingerprint, "counts": per_source[s.name]}
                          for s in sources]},
    )
    save_card(out_dir, card)
    add_fast_runtime(out_dir)
    return _save_familiarity(out_dir, arrays, labels["train"], progress)


def _source_balanced_accuracy(labels: np.ndarray, predicted: np.ndarray,
                              sources: np.ndarray) -> float:
    """Balanced accuracy averaged over sources, so a small source's validation cells count
    as much as a large one's (for one source, plain balanced accuracy)."""
    return float(np.mean([balanced_accuracy(labels[sources == s], predicted[sources == s])
                          for s in np.unique(sources)]))


def _review_threshold(scaled_logits: np.ndarray, labels: np.ndarray, config: TrainingConfig
                      ) -> tuple[float, str]:
    if config.review_threshold is not None:
        return config.review_threshold, "set by hand"
    rule = fit_review_threshold(softmax(scaled_logits, axis=1), labels, config.review_catch)
    return rule.threshold, rule.describe()


def fit_review(model_dir: str | Path, data_dir: str | Path, catch: float = REVIEW_CATCH,
               progress: bool = True) -> ReviewRule:
    """Refit a trained model's Review threshold on its own validation split (read from
    ``split.json`` under ``data_dir``) and record it in its card; the model is unchanged."""
    from hematovision.model.classifier import Classifier

    model_dir = Path(model_dir)
    classifier = Classifier(model_dir)
    images, labels = _split_images(model_dir, data_dir, "val", classifier.card, progress)
    probabilities = classifier.predict_proba(images.astype(np.float32))
    rule = fit_review_threshold(probabilities, labels, catch)
    save_card(model_dir, replace(classifier.card, review_threshold=rule.threshold,
                                 review_rule=rule.describe()))
    return rule


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
    check_model_file(model_dir / card.model_file, card.model_sha256)
    model = keras.saving.load_model(model_dir / card.model_file, compile=False, safe_mode=True)
    # Logits then pooled features in one flat output: a second flat output's order is not
    # stable through conversion, a concatenation is. The feature map, if any, is the one
    # output of rank 4.
    both = keras.layers.Concatenate(name="logits_and_features")(
        [model.get_layer(LOGITS_LAYER).output, model.get_layer(FEATURES_LAYER).output])
    head = linear_head(model, card.gradcam_layer)
    outputs = [both] if head is None else [both, model.get_layer(card.gradcam_layer).output]
    path = export_litert(keras.Model(model.inputs, outputs), model_dir / RUNTIME_FILE)
    card = replace(card, runtime_file=path.name, runtime_sha256=sha256_of_file(path),
                   head_weights_file="", head_weights_sha256="")
    if head is not None:
        head_path = model_dir / HEAD_WEIGHTS_FILE
        np.savez(head_path, weights=head[0], bias=head[1])
        card = replace(card, head_weights_file=head_path.name,
                       head_weights_sha256=sha256_of_file(head_path))
    else:
        log.info("%s: the head after %s is not linear; Grad-CAM will use TensorFlow",
                 model_dir, card.gradcam_layer)
    save_card(model_dir, card)
    return card


def add_familiarity(model_dir: str | Path, data_dir: str | Path, progress: bool = True
                    ) -> ModelCard:
    """Fit the familiarity statistics of a trained model on its own training and validation
    splits (read from ``split.json`` under ``data_dir``) and record them in its card."""
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    if card.training.get("adaptation"):
        # Refitted on the training laboratory alone, the statistics would lose the adapted
        # laboratory's centres, and its cells would be Unfamiliar again without a word.
        raise ValueError(f"{model_dir} was adapted to another laboratory, whose cells its "
                         "familiarity statistics include; refit them on the model it was "
                         "adapted from, then adapt again")
    arrays, labels = {}, {}
    for which in ("train", "val"):
        arrays[which], labels[which] = _split_images(model_dir, data_dir, which, card, progress)
    return _save_familiarity(model_dir, arrays, labels["train"], progress)


def _split_images(model_dir: Path, data_dir, which: str, card: ModelCard,
                  progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """A trained model's own ``which`` split under ``data_dir`` (one folder, or one per
    source of a model trained on several), as model inputs and labels."""
    folders = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    images, labels = [], []
    for folder in folders:
        files = split_files(model_dir, folder, which)
        if not files:
            raise ValueError(f"{folder}: none of {model_dir}'s {which} files are there")
        decoded, kept, _, _ = decode_images([path for path, _ in files], card.input_size,
                                            progress=progress, framing=card.framing)
        images.append(decoded)
        labels.append(np.array([card.classes.index(files[i][1]) for i in kept]))
    missing = set(recorded_sources(model_dir)) - {source_name(f) for f in folders}
    if missing:
        log.warning("%s's %s split of %s is left out: its folder was not given", model_dir,
                    which, ", ".join(sorted(missing)))
    return np.concatenate(images), np.concatenate(labels)


def _save_familiarity(model_dir: Path, arrays, train_labels, progress) -> ModelCard:
    from hematovision.model.classifier import Classifier

    classifier = Classifier(model_dir, with_familiarity=False)
    features = {}
    for which in ("train", "val"):
        features[which] = run_in_batches(lambda batch: classifier.analyse(batch)[2],
                                         arrays[which], progress=progress,
                                         description=f"features ({which})")
    familiarity = fit_familiarity(features["train"], train_labels, features["val"],
                                  train_sharpness=sharpness(arrays["train"]))
    path = familiarity.save(model_dir / FAMILIARITY_FILE)
    card = replace(load_card(model_dir), familiarity_file=path.name,
                   familiarity_sha256=sha256_of_file(path))
    save_card(model_dir, card)
    flagged = float(np.mean(familiarity.distance(features["val"]) > familiarity.threshold))
    print(f"familiarity: distance above {familiarity.threshold:.3f} is Unfamiliar "
          f"({100 * flagged:.1f} % of validation cells), and so is "
          f"sharpness below {familiarity.min_sharpness:.2f}")
    return card


def _start_from(model: keras.Model, model_dir: str, classes: list[str]) -> None:
    """Continue from a trained model of the same backbone and classes (skips phase one)."""
    card = load_card(model_dir)
    if list(card.classes) != classes:
        raise ValueError(f"{model_dir} has classes {list(card.classes)}, the data has {classes}")
    trained = keras.saving.load_model(Path(model_dir) / card.model_file, compile=False,
                                      safe_mode=True)
    _copy_into(model, trained)


def _copy_into(model: keras.Model, trained: keras.Model) -> keras.Model:
    """Give ``model`` the weights of ``trained``'s layers of the same names; returns it."""
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    return model


def _train_head(model, arrays, labels, weights, config, history_path, progress) -> None:
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
            _EpochLog(1, config.head_epochs, history_path,
                      lambda: np.asarray(head_logits(val_features, training=False)),
                      labels["val"], classes),
            keras.callbacks.EarlyStopping("val_loss", patience=5, restore_best_weights=True),
        ],
    )


def _fine_tune(model, arrays, labels, weights, config, history_path, out_dir, first_layer,
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
            _EpochLog(2, config.fine_tune_epochs, history_path, val_logits, labels["val"],
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


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1
