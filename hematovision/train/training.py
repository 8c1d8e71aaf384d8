"""Two-phase transfer learning, as in the original HematoVision reports.

Phase one trains only the head on the frozen backbone's pooled features, computed once
(the backbone is the expensive part, and frozen features do not change between epochs).
Phase two unfreezes the top blocks and fine-tunes them, with augmentation, at a low
learning rate. A temperature fitted on the validation split calibrates the result.
The phases themselves are in :mod:`hematovision.train.phases`, the training folders in
:mod:`hematovision.train.sources`, what a model folder gets afterwards in
:mod:`hematovision.train.finish`.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy.special import softmax

from hematovision.io.dataset import SplitFractions, learned_from
from hematovision.io.decoding import run_in_batches
from hematovision.io.files import sha256_of_file
from hematovision.model.backbones import get_backbone
from hematovision.model.calibration import REVIEW_CATCH, fit_review_threshold, fit_temperature
from hematovision.model.card import (
    MODEL_FILE,
    ModelCard,
    ModelConfig,
    ModelResults,
    load_card,
    save_card,
)
from hematovision.model.export import add_fast_runtime
from hematovision.model.network import (
    LOGITS_LAYER,
    build_classifier,
    set_fine_tuning,
    with_temperature,
)
from hematovision.train.finish import save_familiarity
from hematovision.train.phases import (
    HISTORY_FILE,
    class_weights,
    copy_into,
    fine_tune,
    source_balanced_accuracy,
    start_from,
    train_head,
)
from hematovision.train.pipeline import Augmentation
from hematovision.train.sources import (
    combined_fingerprint,
    decode_sources,
    scan_sources,
    write_split,
)

__all__ = ["TrainingConfig", "train", "HISTORY_FILE"]


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
    style_noise: bool = False  # DSU style noise at the same places (Lite backbones)
    batch_size: int = 32
    patience: int = 2
    seed: int = 1234
    fractions: SplitFractions = field(default_factory=SplitFractions)
    limit_per_class: int | None = None
    classes: tuple[str, ...] | None = None
    review_threshold: float | None = None  # None: fitted on validation (review_catch)
    review_catch: float = REVIEW_CATCH
    init_from: str | None = None  # continue fine-tuning a trained model folder
    average_with: tuple[str, ...] = ()  # start from the mean of init_from's and these weights
    framing: str = "cell"  # see hematovision.io.images.frame_image
    augmentation: Augmentation = field(default_factory=Augmentation)


def continued_network(model_dir: str | Path) -> dict:
    """The settings that shape a trained model's network (``backbone``, ``input_size``,
    ``hidden_units``): a run that continues it (``init_from``) builds the same network."""
    config = load_card(model_dir).config
    return {"backbone": config.backbone, "input_size": config.input_size,
            "hidden_units": int(config.head.get("hidden_units", 0))}


def _continued(config: TrainingConfig) -> list[str]:
    """The trained models a run starts from (none: it starts from ImageNet)."""
    if config.average_with and not config.init_from:
        raise ValueError("models to average with need a model to start from "
                         "(init_from; on the command line --init-from)")
    return [config.init_from, *config.average_with] if config.init_from else []


def _check_continuation(config: TrainingConfig, continued: list[str]) -> None:
    # Checked before the images are decoded (minutes), where the weights' shapes would
    # otherwise fail to load with a message naming a layer, not the setting.
    for model_dir in continued:
        wanted = continued_network(model_dir)
        differ = [f"{key} {getattr(config, key)} (it has {value})"
                  for key, value in wanted.items() if getattr(config, key) != value]
        if differ:
            raise ValueError(f"{model_dir} cannot be continued with "
                             f"{', '.join(differ)}: a continued run builds the same network")


def _check_unseen_tests(model_dirs: list[str], sources) -> None:
    """Refuse to continue a model that learned from any of this run's test cells (one that
    split a source otherwise): the new model's test results would flatter it."""
    tests = {item.sha256: item.path for source in sources for item in source.dataset.items
             if source.assignment[item.sha256] == "test"}
    for model_dir in model_dirs:
        seen = learned_from(model_dir)
        leaked = [path for digest, path in tests.items() if digest in seen]
        if leaked:
            raise ValueError(f"{model_dir} learned from {len(leaked)} of this run's test "
                             f"cells (e.g. {leaked[0]}), so the test results would flatter "
                             "it: continue a model trained on the same split")


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
    continued = _continued(config)
    _check_continuation(config, continued)
    keras.utils.set_random_seed(config.seed)
    backbone = get_backbone(config.backbone)

    sources = scan_sources(data_dirs, config)
    _check_unseen_tests(continued, sources)
    fingerprint = combined_fingerprint(sources)
    classes = sorted({name for source in sources for name in source.dataset.classes})
    if config.classes:
        classes = [name.lower() for name in config.classes]
    index = {name: i for i, name in enumerate(classes)}

    arrays, labels, origin, frames, per_source = decode_sources(sources, index, config,
                                                                progress)
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

    network = partial(build_classifier, config.backbone, len(classes), config.input_size,
                      config.dropout, config.hidden_units)
    model = network(config.pretrained and not continued, config.mix_style, config.style_noise)
    set_fine_tuning(model, config.fine_tune_from)  # a wrong layer name fails now, not later
    weights = class_weights(labels["train"], len(classes))
    sampling = (origin["train"] if len(sources) > 1 else None)
    # Made only now, so that a run stopped by bad data or settings leaves no empty folder.
    out_dir.mkdir(parents=True, exist_ok=True)
    history_path = out_dir / HISTORY_FILE
    history_path.unlink(missing_ok=True)
    head_seconds = 0.0
    if continued:
        start_from(model, continued, classes)
    else:
        phase_started = time.time()
        train_head(model, arrays, labels, weights, config, history_path, progress)
        head_seconds = time.time() - phase_started
    logits = _logits_of(model)
    phase_started = time.time()
    if config.fine_tune_epochs > 0:
        fine_tune(model, arrays, labels, weights, config, history_path, out_dir,
                   config.fine_tune_from or backbone.fine_tune_from,
                   lambda: run_in_batches(logits, arrays["val"]), sampling, origin["val"])
    fine_seconds = time.time() - phase_started if config.fine_tune_epochs > 0 else 0.0

    if config.mix_style or config.style_noise:
        # The style layers only act while training; the shipped graph is the plain one, so
        # loading a model never needs this package's custom layers.
        model = copy_into(network(False), model)
        logits = _logits_of(model)
    val_logits = run_in_batches(logits, arrays["val"])
    temperature = fit_temperature(val_logits, labels["val"])
    review_threshold, review_rule = _review_threshold(val_logits / temperature, labels["val"],
                                                      config)
    calibrated = with_temperature(model, temperature)
    model_path = out_dir / MODEL_FILE
    calibrated.save(model_path)
    write_split(out_dir, sources, config, fingerprint)

    model_config = ModelConfig(
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
              "dropout": config.dropout, "hidden_units": config.hidden_units})
    results = ModelResults(
        training={
            "config": {k: v for k, v in asdict(config).items() if k != "fractions"},
            "head_phase_seconds": round(head_seconds, 1),
            "fine_tune_phase_seconds": round(fine_seconds, 1),
            "total_seconds": round(time.time() - started, 1),
            "hardware": f"{platform.processor() or platform.machine()}, "
                        f"{_cpu_count()} CPU cores, no GPU",
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "val_balanced_accuracy": source_balanced_accuracy(
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
    save_card(out_dir, ModelCard(name=name or out_dir.name, config=model_config, results=results))
    add_fast_runtime(out_dir)
    return save_familiarity(out_dir, arrays, labels["train"], frames["train"], progress)


def _review_threshold(scaled_logits: np.ndarray, labels: np.ndarray, config: TrainingConfig
                      ) -> tuple[float, str]:
    if config.review_threshold is not None:
        return config.review_threshold, "set by hand"
    rule = fit_review_threshold(softmax(scaled_logits, axis=1), labels, config.review_catch)
    return rule.threshold, rule.describe()


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def _logits_of(model: keras.Model):
    """``batch → logits`` of ``model`` in inference mode, compiled once."""
    compiled = tf.function(keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output),
                           reduce_retracing=True)
    return lambda batch: compiled(batch, training=False)
