"""Adapt a trained model to one laboratory's cells from a handful of labelled examples.

Two depths of tuning, both pulled towards the trained weights (L2-SP, Li et al. 2018):

- ``last-layer`` (the default): only the class weights on the pooled features are
  refitted. Seconds; it moves the decision boundaries to where another microscope puts
  the cells, and the familiarity statistics gain the new laboratory's class centres, so
  its cells are no longer called Unfamiliar.
- ``last-block``: the network's last block is fine-tuned as well, on augmented copies of
  the cells (:mod:`hematovision.adapt.last_block`). A few minutes; it also changes what the
  pooled features see, which is where another lab's errors start, and for the same reason
  the distance check of familiarity no longer applies and is switched off.

The classes stay the model's own and the temperature stays the one fitted on validation
cells. A laboratory rarely shows every class, and a fit on its cells alone teaches the
model that the missing ones do not exist. The last layer therefore also sees features
drawn from the training classes' stored distributions (:meth:`Familiarity.draw`), so every
class keeps its place and the user's cells must still beat all of them. The last block
has no such memory of what its input looked like for the training cells; there the classes
the user shows no cells of are left out of the softmax instead.

A part of the user's cells is always held out: the before/after numbers come from cells
the adaptation never saw.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from hematovision.errors import InputError
from hematovision.io.dataset import ADAPTATION_FILE, rank, scan_folder
from hematovision.io.decoding import decode_images
from hematovision.io.files import sha256_of_file, write_json_atomic
from hematovision.measure.metrics import balanced_accuracy
from hematovision.model.calibration import expected_calibration_error
from hematovision.model.card import load_card, save_card
from hematovision.model.classifier import Classifier
from hematovision.model.familiarity import FAMILIARITY_FILE, Familiarity

__all__ = ["AdaptationResult", "BlockTuning", "TUNINGS", "adapt", "adaptation_study",
           "choose_cells", "fit_head", "score", "read_cells"]

# hematovision.model.network.LOGITS_LAYER, spelled out: importing network would load Keras when
# the Adapt page merely opens.
_LOGITS_LAYER = "logits"
_NO_DISTANCE_CHECK = (
    "Adapted by fine-tuning the last block: its features no longer match the statistics "
    "fitted on the training cells, so images are not checked for being far from every "
    "class (the no-cell and focus checks still run). Refitting only the last layer keeps "
    "that check.")


# Features drawn per training class while adapting. Adapting to zheng2018_d2 (10 cells per
# class, 5 splits), the PBC test cells kept balanced accuracy 0.964 with 32 per class,
# 0.967 with 64 and 0.971 with 256; the draw costs milliseconds.
REMEMBERED_PER_CLASS = 256


@dataclass(frozen=True)
class BlockTuning:
    """How the last block is tuned.

    The defaults were chosen on zheng2018_d2 (docs/other-laboratories.md)."""

    copies: int = 16  # augmented copies of each cell (flips, turns, stain, focus …)
    epochs: int = 20
    learning_rate: float = 3e-4
    pull: float = 1e-3  # weight of the L2 pull towards the trained weights
    batch_size: int = 32
    seed: int = 0


@dataclass(frozen=True)
class AdaptationResult:
    """What adaptation did, measured on the user's held-out cells."""

    out_dir: Path
    used: dict[str, int]
    held_out: dict[str, int]
    before: dict
    after: dict


def choose_cells(labels: list[str], per_class: int, seed: int = 0
                 ) -> tuple[list[int], list[int]]:
    """Pick up to ``per_class`` cells of each class for adapting, never more than half of
    a class, so that every class keeps cells to score the result on."""
    rng = np.random.default_rng(seed)
    used, held = [], []
    for name in sorted(set(labels)):
        members = [i for i, label in enumerate(labels) if label == name]
        rng.shuffle(members)
        take = min(per_class, len(members) // 2)
        used += members[:take]
        held += members[take:]
    return sorted(used), sorted(held)


def fit_head(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, bias: np.ndarray,
             pull: float = 1.0, remembered: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Refit the logits layer on ``features`` with an L2 pull to the original ``weights``.

    ``remembered`` are features and labels standing in for the training cells (see
    :meth:`Familiarity.draw`); each remembered class weighs as much as one of the user's
    classes. Without them a laboratory that shows no immature granulocytes teaches the
    model that there are none: the absent classes are pushed down until the model never
    names them again. Classes with neither kind of example are left out of the softmax.
    User's classes weigh equally whatever their counts; ``pull`` sets how far the layer may
    move (larger: closer to the original model).
    """
    classes = weights.shape[1]
    sample_weight = _class_weights(labels, classes)
    if remembered is not None:
        features = np.concatenate([features, remembered[0]])
        labels = np.concatenate([labels, remembered[1]])
        sample_weight = np.concatenate([sample_weight,
                                        _class_weights(remembered[1], classes)])
    absent = np.where(np.bincount(labels, minlength=classes) > 0, 0.0, -np.inf)
    sample_weight = sample_weight / sample_weight.sum()
    onehot = np.eye(classes)[labels]
    start = np.concatenate([weights.ravel(), bias])
    scale = pull / weights.size

    def loss(theta):
        w = theta[: weights.size].reshape(weights.shape)
        b = theta[weights.size :]
        logp = log_softmax(features @ w + b + absent, axis=1)
        value = -np.sum(sample_weight * logp[np.arange(len(labels)), labels])
        delta = theta - start
        value += scale * np.sum(delta**2)
        error = (np.exp(logp) - onehot) * sample_weight[:, None]
        grad = np.concatenate([(features.T @ error).ravel(), error.sum(axis=0)])
        return value, grad + 2 * scale * delta

    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    theta = result.x
    return theta[: weights.size].reshape(weights.shape), theta[weights.size :]


def _class_weights(labels: np.ndarray, classes: int) -> np.ndarray:
    """Per-cell weights under which every class present counts as one."""
    counts = np.bincount(labels, minlength=classes)
    return 1.0 / counts[labels]


def score(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """Accuracy, balanced accuracy and ECE of logits on labelled cells."""
    probabilities = softmax(logits / temperature, axis=1)
    predicted = probabilities.argmax(axis=1)
    return {"n": int(len(labels)), "accuracy": float(np.mean(predicted == labels)),
            "balanced_accuracy": balanced_accuracy(labels, predicted),
            "ece": expected_calibration_error(probabilities, labels)}


TUNINGS = ("last-layer", "last-block")


def _check_tuning(tuning: str) -> None:
    if tuning not in TUNINGS:
        raise InputError(f"unknown tuning {tuning!r}; use one of: {', '.join(TUNINGS)}")


class _Tuner:
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
                                   get_backbone(classifier.card.backbone).last_block,
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


def adapt(model_dir: str | Path, data_dir: str | Path, out_dir: str | Path,
          per_class: int = 10, seed: int = 0, pull: float = 1.0, name: str | None = None,
          tuning: str = "last-layer", settings: BlockTuning = BlockTuning(),
          progress: Callable[[float, str], None] | None = None) -> AdaptationResult:
    """Adapt the model in ``model_dir`` to the labelled cells under ``data_dir``.

    ``tuning`` is ``"last-layer"`` (refit the class weights only, seconds) or
    ``"last-block"`` (fine-tune the last block and head, a few minutes; the adapted model
    then has no distance check, see ``_NO_DISTANCE_CHECK``). Writes a complete model
    folder to ``out_dir`` (Keras and LiteRT files, card, the original split, familiarity
    statistics with the new centres, and ``adaptation.json`` listing which cells adapted
    and which scored the result).
    """
    report = progress or (lambda fraction, message: None)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.resolve() == model_dir.resolve():
        raise InputError("write the adapted model to a new folder, not over the original")
    _check_tuning(tuning)
    classifier = Classifier(model_dir)
    classes = list(classifier.classes)
    report(0.05, "reading the cells")
    items, labels, logits, features, images = read_cells(classifier, data_dir)
    used, held = choose_cells([item.label for item in items], per_class, seed)
    if not used or not held:
        raise InputError(f"{data_dir}: too few labelled cells (need at least 2 per class)")

    report(0.2, f"tuning the {tuning.replace('-', ' ')}")
    tuner = _Tuner(classifier, images, features, tuning, settings)
    tuner.fit(used, labels, pull, seed,
              lambda done: report(0.2 + 0.5 * done, f"tuning the {tuning.replace('-', ' ')}"))
    temperature = classifier.card.temperature
    before = score(logits[held], labels[held], temperature)
    after = score(tuner.logits(held), labels[held], temperature)

    report(0.72, "saving the adapted model")
    out_dir.mkdir(parents=True, exist_ok=True)
    tuner.tuned_model().save(out_dir / classifier.card.model_file)
    for extra in ("split.json",):
        if (model_dir / extra).is_file():
            shutil.copy(model_dir / extra, out_dir / extra)
    if tuning == "last-block" and classifier.familiarity is not None:
        # The tuned block moves every cell's features away from the statistics fitted on
        # the training cells (measured: all PBC test cells came out Unfamiliar), and they
        # cannot be refitted without those cells: the distance check is switched off, the
        # focus check stays.
        familiarity = replace(classifier.familiarity, threshold=float("inf"))
        limitations = [*classifier.card.limitations, _NO_DISTANCE_CHECK]
    else:
        familiarity = _with_new_centres(classifier.familiarity, features[used], labels[used])
        limitations = list(classifier.card.limitations)
    familiarity_path = familiarity.save(out_dir / FAMILIARITY_FILE) if familiarity else None
    used_counts = {c: int(np.sum(labels[used] == i)) for i, c in enumerate(classes)}
    held_counts = {c: int(np.sum(labels[held] == i)) for i, c in enumerate(classes)}
    card = replace(
        classifier.card, name=name or out_dir.name,
        model_sha256=sha256_of_file(out_dir / classifier.card.model_file),
        runtime_file="", runtime_sha256="",
        familiarity_file=familiarity_path.name if familiarity_path else "",
        familiarity_sha256=sha256_of_file(familiarity_path) if familiarity_path else "",
        metrics={}, external=[], foreign={}, adaptation={}, limitations=limitations,
        # The threshold stays; what it was fitted on was the original model's validation.
        review_rule=(f"kept from {model_dir.name}, where it was "
                     f"{classifier.card.review_rule or 'set without a rule'}"),
        training={**classifier.card.training, "adapted_from": str(model_dir),
                  "adaptation": {"data": str(data_dir), "per_class": per_class,
                                 "seed": seed, "tuning": tuning, "pull": pull,
                                 **tuner.settings_used(),
                                 "used": used_counts, "held_out": held_counts,
                                 "before": before, "after": after}},
    )
    save_card(out_dir, card)
    write_json_atomic(out_dir / ADAPTATION_FILE, {
        "used": [str(items[i].path) for i in used],
        "used_sha256": [items[i].sha256 for i in used],
        "held_out": [str(items[i].path) for i in held],
        "tuning": tuning, "before": before, "after": after})
    report(0.85, "converting to the fast runtime")
    from hematovision.train.training import add_fast_runtime

    add_fast_runtime(out_dir)
    report(1.0, "done")
    return AdaptationResult(out_dir, used_counts, held_counts, before, after)


def read_cells(classifier: Classifier, data_dir: str | Path):
    """The user's labelled cells (in a fixed, content-hashed order), their labels as class
    indices, the model's logits and pooled features for them, and the framed images."""
    classes = list(classifier.classes)
    items = sorted(scan_folder(data_dir, tuple(classes)).items,
                   key=lambda item: rank(item.sha256))
    images, kept, _, _ = decode_images([item.path for item in items], classifier.input_size,
                                       framing=classifier.card.framing)
    items = [items[i] for i in kept]
    labels = np.array([classes.index(item.label) for item in items])
    images = images.astype(np.float32)
    logits, _, features = classifier.analyse(images)
    if features is None:
        raise InputError(f"{classifier.model_dir}'s runtime file has no features; run "
                         f"'hematovision export --model {classifier.model_dir}' first")
    return items, labels, logits, features, images


def _with_new_centres(familiarity: Familiarity | None, features: np.ndarray,
                      labels: np.ndarray) -> Familiarity | None:
    """Add the new laboratory's class centres; the covariance and threshold stay."""
    if familiarity is None:
        return None
    centres = [features[labels == c].mean(axis=0) for c in np.unique(labels)]
    return replace(familiarity, means=np.concatenate([familiarity.means, np.stack(centres)]))


def adaptation_study(classifier: Classifier, data_dir: str | Path,
                     shots: tuple[int, ...] = (5, 10, 20), splits: int = 5, pull: float = 1.0,
                     tuning: str = "last-layer", settings: BlockTuning = BlockTuning(),
                     progress: Callable[[float, str], None] | None = None) -> dict:
    """What a few labelled cells per class buy: for each number of cells, adapt on that
    many (at most half of a class) and score on the rest, over several random splits.

    Nothing is saved, and the classifier's model is not changed (a copy is tuned).
    """
    report = progress or (lambda fraction, message: None)
    _check_tuning(tuning)
    classes = list(classifier.classes)
    items, labels, logits, features, images = read_cells(classifier, data_dir)
    names = [item.label for item in items]
    temperature = classifier.card.temperature
    tuner = _Tuner(classifier, images, features, tuning, settings)
    rows = []
    for number, shot in enumerate(shots):
        runs = []
        for seed in range(splits):
            report((number * splits + seed) / (len(shots) * splits),
                   f"{shot} cells per class, split {seed + 1} of {splits}")
            used, held = choose_cells(names, shot, seed)
            tuner.fit(used, labels, pull, seed)
            runs.append({"seed": seed, "used": len(used), "held_out": len(held),
                         "before": score(logits[held], labels[held], temperature),
                         "after": score(tuner.logits(held), labels[held], temperature)})
        summary = {"per_class": shot, "splits": splits, "runs": runs}
        for when in ("before", "after"):
            for key in ("accuracy", "balanced_accuracy", "ece"):
                values = [run[when][key] for run in runs]
                summary[f"{when}_{key}"] = float(np.mean(values))
                summary[f"{when}_{key}_sd"] = float(np.std(values))
        rows.append(summary)
    return {"data": str(data_dir), "n": int(len(labels)), "tuning": tuning,
            "counts": {c: int(np.sum(labels == i)) for i, c in enumerate(classes)},
            "rows": rows}


def adapt_from_zip(model_dir: str | Path, archive: bytes, out_dir: str | Path,
                   per_class: int = 10, seed: int = 0, tuning: str = "last-layer",
                   progress: Callable[[float, str], None] | None = None
                   ) -> tuple[AdaptationResult, list[str]]:
    """:func:`adapt` on a zip of class folders (``neutrophil/001.png`` …), as uploaded.

    The images are unpacked into a private temporary folder that is removed afterwards.
    Returns the result and the archive's entries that were not used, with the reason.
    """
    import tempfile
    from pathlib import PurePosixPath

    from hematovision.io.archive import read_zip
    from hematovision.io.images import ImageError, read_image

    classes = {name.lower(): name for name in load_card(model_dir).classes}
    skipped = []
    with tempfile.TemporaryDirectory(prefix="hematovision-adapt-") as folder:
        for number, member in enumerate(read_zip(archive)):
            if member.error:
                skipped.append(member.error)
                continue
            parts = PurePosixPath(member.name).parts
            label = next((classes[p.lower()] for p in parts[:-1] if p.lower() in classes), None)
            if label is None:
                skipped.append(f"{member.name}: not inside a folder named after one of the "
                               f"model's classes ({', '.join(classes.values())})")
                continue
            # Checked here, while the member's own name is known: past this point the
            # file has a number for a name in a folder that is gone when the user reads it.
            try:
                read_image(member.data, name=member.name)
            except ImageError as error:
                skipped.append(str(error))
                continue
            target = Path(folder) / label / f"{number:05d}{PurePosixPath(member.name).suffix}"
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(member.data)
        if not any(Path(folder).iterdir()):
            raise InputError("the zip holds no readable images in folders named after the "
                             f"model's classes ({', '.join(classes.values())})")
        try:
            result = adapt(model_dir, folder, out_dir, per_class=per_class, seed=seed,
                           tuning=tuning, progress=progress)
        except (ValueError, FileNotFoundError) as error:
            raise InputError(str(error).replace(folder, "the uploaded zip")) from error
    return result, skipped
