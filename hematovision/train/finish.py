"""What a trained model folder gets after training, or later on its own: the familiarity
statistics and a refitted Review threshold, each fitted on the model's own splits.
(The fast runtime is :func:`hematovision.model.export.add_fast_runtime`.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hematovision.io.cell_finder import CellBox
from hematovision.io.dataset import recorded_sources, source_name, split_files
from hematovision.io.decoding import decode_images, run_in_batches
from hematovision.io.files import sha256_of_file
from hematovision.io.focus import sharpness
from hematovision.model.calibration import REVIEW_CATCH, ReviewRule, fit_review_threshold
from hematovision.model.card import ModelCard, load_card, save_card
from hematovision.model.familiarity import FAMILIARITY_FILE, fit_familiarity

__all__ = ["fit_review", "add_familiarity", "save_familiarity"]

log = logging.getLogger(__name__)


def fit_review(model_dir: str | Path, data_dir: str | Path, catch: float = REVIEW_CATCH,
               progress: bool = True) -> ReviewRule:
    """Refit a trained model's Review threshold on its own validation split (read from
    ``split.json`` under ``data_dir``) and record it in its card; the model is unchanged."""
    from hematovision.model.classifier import Classifier

    model_dir = Path(model_dir)
    classifier = Classifier(model_dir)
    images, labels, _ = _split_images(model_dir, data_dir, "val", classifier.card, progress)
    probabilities = classifier.predict_proba(images.astype(np.float32))
    rule = fit_review_threshold(probabilities, labels, catch)
    save_card(model_dir, classifier.card.with_config(review_threshold=rule.threshold,
                                                     review_rule=rule.describe()))
    return rule


def add_familiarity(model_dir: str | Path, data_dir: str | Path, progress: bool = True
                    ) -> ModelCard:
    """Fit the familiarity statistics of a trained model on its own training and validation
    splits (read from ``split.json`` under ``data_dir``) and record them in its card."""
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    if card.results.training.get("adaptation"):
        # Refitted on the training laboratory alone, the statistics would lose the adapted
        # laboratory's centres, and its cells would be Unfamiliar again without a word.
        raise ValueError(f"{model_dir} was adapted to another laboratory, whose cells its "
                         "familiarity statistics include; refit them on the model it was "
                         "adapted from, then adapt again")
    arrays, labels, frames = {}, {}, {}
    for which in ("train", "val"):
        arrays[which], labels[which], frames[which] = _split_images(model_dir, data_dir, which,
                                                                    card, progress)
    return save_familiarity(model_dir, arrays, labels["train"], frames["train"], progress)


def _split_images(model_dir: Path, data_dir, which: str, card: ModelCard,
                  progress: bool) -> tuple[np.ndarray, np.ndarray, list[CellBox]]:
    """A trained model's own ``which`` split under ``data_dir`` (one folder, or one per
    source of a model trained on several), as model inputs, labels and the frames they
    were cut with."""
    folders = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    images, labels, frames = [], [], []
    for folder in folders:
        files = split_files(model_dir, folder, which)
        if not files:
            raise ValueError(f"{folder}: none of {model_dir}'s {which} files are there")
        decoded, kept, _, boxes = decode_images([path for path, _ in files],
                                                card.config.input_size, progress=progress,
                                                framing=card.config.framing)
        images.append(decoded)
        frames += boxes
        labels.append(np.array([card.config.classes.index(files[i][1]) for i in kept]))
    missing = set(recorded_sources(model_dir)) - {source_name(f) for f in folders}
    if missing:
        log.warning("%s's %s split of %s is left out: its folder was not given", model_dir,
                    which, ", ".join(sorted(missing)))
    return np.concatenate(images), np.concatenate(labels), frames


def save_familiarity(model_dir: Path, arrays, train_labels, train_frames: list[CellBox],
                     progress) -> ModelCard:
    """Fit and save the familiarity statistics from the training and validation inputs (the
    training cells' focus measured with the frames they were cut with); record them in the
    card."""
    from hematovision.model.classifier import Classifier

    classifier = Classifier(model_dir, with_familiarity=False)
    features = {}
    for which in ("train", "val"):
        features[which] = run_in_batches(lambda batch: classifier.analyse(batch)[2],
                                         arrays[which], progress=progress,
                                         description=f"features ({which})")
    familiarity = fit_familiarity(features["train"], train_labels, features["val"],
                                  train_sharpness=sharpness(arrays["train"], train_frames))
    path = familiarity.save(model_dir / FAMILIARITY_FILE)
    card = load_card(model_dir).with_config(familiarity_file=path.name,
                                            familiarity_sha256=sha256_of_file(path))
    save_card(model_dir, card)
    flagged = float(np.mean(familiarity.distance(features["val"]) > familiarity.threshold))
    print(f"familiarity: distance above {familiarity.threshold:.3f} is Unfamiliar "
          f"({100 * flagged:.1f} % of validation cells), and so is "
          f"sharpness below {familiarity.min_sharpness:.2f}")
    return card
