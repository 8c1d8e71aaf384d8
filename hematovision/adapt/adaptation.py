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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hematovision.adapt.head import choose_cells, score
from hematovision.adapt.tuner import Tuner
from hematovision.adapt.tunings import BlockTuning, check_tuning
from hematovision.errors import InputError
from hematovision.io.dataset import ADAPTATION_FILE, rank, scan_folder
from hematovision.io.decoding import decode_images
from hematovision.io.files import sha256_of_file, write_json_atomic
from hematovision.model.card import load_card, save_card
from hematovision.model.classifier import Classifier
from hematovision.model.familiarity import FAMILIARITY_FILE, Familiarity

__all__ = ["AdaptationResult", "adapt", "adaptation_study", "adapt_from_zip", "read_cells"]

_NO_DISTANCE_CHECK = (
    "Adapted by fine-tuning the last block: its features no longer match the statistics "
    "fitted on the training cells, so images are not checked for being far from every "
    "class (the no-cell and focus checks still run). Refitting only the last layer keeps "
    "that check.")


@dataclass(frozen=True)
class AdaptationResult:
    """What adaptation did, measured on the user's held-out cells."""

    out_dir: Path
    used: dict[str, int]
    held_out: dict[str, int]
    before: dict
    after: dict


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
    check_tuning(tuning)
    classifier = Classifier(model_dir)
    classes = list(classifier.classes)
    report(0.05, "reading the cells")
    items, labels, logits, features, images = read_cells(classifier, data_dir)
    used, held = choose_cells([item.label for item in items], per_class, seed)
    if not used or not held:
        raise InputError(f"{data_dir}: too few labelled cells (need at least 2 per class)")

    report(0.2, f"tuning the {tuning.replace('-', ' ')}")
    tuner = Tuner(classifier, images, features, tuning, settings)
    tuner.fit(used, labels, pull, seed,
              lambda done: report(0.2 + 0.5 * done, f"tuning the {tuning.replace('-', ' ')}"))
    temperature = classifier.card.config.temperature
    before = score(logits[held], labels[held], temperature)
    after = score(tuner.logits(held), labels[held], temperature)

    report(0.72, "saving the adapted model")
    out_dir.mkdir(parents=True, exist_ok=True)
    tuner.tuned_model().save(out_dir / classifier.card.config.model_file)
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
    config = classifier.card.config
    card = replace(classifier.card, name=name or out_dir.name, limitations=limitations)
    card = card.with_config(
        model_sha256=sha256_of_file(out_dir / config.model_file),
        runtime_file="", runtime_sha256="",
        familiarity_file=familiarity_path.name if familiarity_path else "",
        familiarity_sha256=sha256_of_file(familiarity_path) if familiarity_path else "",
        # The threshold stays; what it was fitted on was the original model's validation.
        review_rule=(f"kept from {model_dir.name}, where it was "
                     f"{config.review_rule or 'set without a rule'}"),
    ).with_results(
        # Every result was measured on the original weights, not on these.
        metrics={}, source_tests={}, source_benchmark={}, external=[], foreign={},
        adaptation={},
        training={**classifier.card.results.training, "adapted_from": str(model_dir),
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
    from hematovision.model.export import add_fast_runtime

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
                                       framing=classifier.card.config.framing)
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
    check_tuning(tuning)
    classes = list(classifier.classes)
    items, labels, logits, features, images = read_cells(classifier, data_dir)
    names = [item.label for item in items]
    temperature = classifier.card.config.temperature
    tuner = Tuner(classifier, images, features, tuning, settings)
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

    classes = {name.lower(): name for name in load_card(model_dir).config.classes}
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
