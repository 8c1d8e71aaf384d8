"""The model in models/ is real, intact and accurate on cells it never saw."""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from hematovision.io.decoding import decode_images
from hematovision.io.images import load_model_input, read_image
from hematovision.model.card import load_card
from hematovision.model.classifier import Classifier, ModelFileError
from hematovision.model.prediction import REVIEW

from .conftest import SHIPPED_MODEL, strict_json


def test_shipped_model_labels_40_real_pbc_cells(classifier, pbc_examples):
    paths = [path for path, _ in pbc_examples]
    predictions = classifier.predict([read_image(p) for p in paths])
    correct = sum(p.label == label for p, (_, label) in zip(predictions, pbc_examples))
    assert len(paths) == 40
    assert correct / len(paths) >= 0.95


def test_card_describes_the_model(classifier):
    card = classifier.card
    assert card.config.classes == ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte",
                            "monocyte", "neutrophil", "platelet")
    assert card.config.input_size == 224 and card.config.backbone == "lite0"
    assert card.results.metrics["balanced_accuracy"] > 0.9
    assert (SHIPPED_MODEL / "model.keras").stat().st_size <= 25 * 1024 * 1024


def test_seam_matches_plain_keras_predict(classifier, pbc_examples):
    batch = np.stack([load_model_input(path) for path, _ in pbc_examples[:8]])
    plain = keras.saving.load_model(SHIPPED_MODEL / "model.keras").predict(batch, verbose=0)
    assert np.abs(classifier.predict_proba(batch) - plain).max() <= 1e-4


def test_training_and_app_feed_identical_arrays(classifier, pbc_examples):
    paths = [path for path, _ in pbc_examples[:6]]
    training_arrays, kept, _, boxes = decode_images(paths, classifier.input_size, workers=2,
                                                    framing=classifier.card.config.framing)
    assert classifier.card.config.framing == "cell" and all(box.found for box in boxes)
    app_arrays = np.stack([classifier.prepare(read_image(p)) for p in paths])
    assert kept == list(range(6))
    assert np.array_equal(training_arrays.astype(np.float32), app_arrays)


def test_temperature_in_the_graph_matches_the_card(classifier, pbc_examples):
    batch = np.stack([load_model_input(path) for path, _ in pbc_examples[:4]])
    logits, probabilities = classifier.forward(batch)
    scaled = np.exp(logits / classifier.card.config.temperature)
    assert np.allclose(scaled / scaled.sum(1, keepdims=True), probabilities, atol=1e-5)


def test_review_status_follows_the_threshold(classifier, pbc_examples):
    image = read_image(pbc_examples[0][0])
    assert classifier.predict([image], review_threshold=1.01)[0].status == REVIEW


@pytest.mark.parametrize("damage,message", [
    ("truncate", "damaged or was replaced"),
    ("delete", "model file not found"),
    ("no card", "model card not found"),
])
def test_missing_or_damaged_model_is_a_clear_error(tmp_path, damage, message):
    copy = shutil.copytree(SHIPPED_MODEL, tmp_path / "model",
                           ignore=shutil.ignore_patterns("*.json", "checkpoint.keras"))
    shutil.copy(SHIPPED_MODEL / "card.json", copy / "card.json")
    model_file = copy / "model.keras"
    if damage == "truncate":
        model_file.write_bytes(model_file.read_bytes()[:1000])
    elif damage == "delete":
        model_file.unlink()
    else:
        (copy / "card.json").unlink()
    with pytest.raises(ModelFileError) as caught:
        Classifier(copy)
    assert message in str(caught.value)
    assert str(copy) in str(caught.value)


def test_card_sha256_matches_the_file():
    from hematovision.io.files import sha256_of_file

    card = load_card(SHIPPED_MODEL)
    assert sha256_of_file(SHIPPED_MODEL / "model.keras") == card.config.model_sha256



def test_the_shipped_models_records_are_standard_json():
    for path in sorted(SHIPPED_MODEL.glob("*.json")):
        strict_json(path)
