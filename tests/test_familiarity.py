"""Unfamiliar images: the statistics, the shipped model's flags, the foreign set."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hematovision.io.focus import sharpness
from hematovision.io.images import read_image
from hematovision.measure.foreign import KINDS, foreign_images
from hematovision.model.card import load_card
from hematovision.model.classifier import Classifier, ModelFileError
from hematovision.model.familiarity import fit_familiarity, load_familiarity
from hematovision.model.prediction import CONFIDENT, UNFAMILIAR
from tests.conftest import PBC, SHIPPED_MODEL


def test_statistics_flag_far_points_and_keep_the_chosen_share_of_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (3, 16))
    labels = rng.integers(0, 3, 3000)
    train = centres[labels] + rng.normal(0, 1, (3000, 16))
    val = centres[rng.integers(0, 3, 1000)] + rng.normal(0, 1, (1000, 16))
    familiarity = fit_familiarity(train, labels, val, quantile=0.95)
    assert np.mean(familiarity.is_unfamiliar(val)) == pytest.approx(0.05, abs=0.01)
    far = rng.normal(0, 1, (100, 16)) + 40
    assert familiarity.is_unfamiliar(far).all()


def test_drawn_features_have_the_training_classes_centres_and_spread():
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 5, (3, 6))
    mixing = rng.normal(0, 1, (6, 6))
    labels = rng.integers(0, 3, 6000)
    train = centres[labels] + rng.normal(0, 1, (6000, 6)) @ mixing
    familiarity = fit_familiarity(train, labels, train[:100])
    features, drawn = familiarity.draw(4000, classes=2, seed=3)
    assert features.shape == (8000, 6) and np.array_equal(np.unique(drawn), [0, 1])
    for c in (0, 1):
        assert np.allclose(features[drawn == c].mean(axis=0), centres[c], atol=0.15)
    spread = np.cov((features - familiarity.means[drawn]).T)
    assert np.allclose(spread, mixing.T @ mixing, atol=0.15 * np.abs(mixing.T @ mixing).max())
    np.testing.assert_array_equal(features, familiarity.draw(4000, classes=2, seed=3)[0])


def test_statistics_round_trip_without_pickles(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, (200, 4))
    familiarity = fit_familiarity(train, rng.integers(0, 2, 200), train[:50],
                                  train_sharpness=np.full(200, 10.0))
    path = familiarity.save(tmp_path / "familiarity.npz")
    loaded = load_familiarity(path)
    assert loaded.threshold == familiarity.threshold
    assert loaded.min_sharpness == pytest.approx(5.0)
    assert np.allclose(loaded.distance(train[:5]), familiarity.distance(train[:5]))


def test_sharpness_drops_when_a_cell_is_blurred():
    from PIL import Image, ImageFilter

    image = read_image(sorted((PBC / "monocyte").glob("*.jpg"))[0])
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(8)))
    sharp, soft = sharpness(np.stack([image, blurred]).astype(np.float32))
    assert soft < sharp / 10


def _shrunk(image: np.ndarray, factor: float) -> np.ndarray:
    from PIL import Image

    height, width = image.shape[:2]
    size = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(image).resize(size, Image.BOX))


def test_a_sharp_cell_photographed_with_fewer_pixels_is_not_out_of_focus(classifier):
    from PIL import Image, ImageFilter

    from hematovision.io.dataset import test_split_files

    files = test_split_files(SHIPPED_MODEL, PBC)[::120]  # 16 held-out cells
    small = [_shrunk(read_image(path), 0.25) for path, _ in files]  # frames of 45–90 px
    predictions = classifier.predict(small)
    assert not [p.unfamiliar_reason for p in predictions if "focus" in p.unfamiliar_reason]
    # Measured on the enlarged model input, as it was, a quarter of them read as out of focus.
    enlarged = sharpness(np.stack([classifier.prepare(image) for image in small]))
    assert np.sum(enlarged < classifier.familiarity.min_sharpness) >= 3
    # 4 pixels here are 16 in the whole picture; some lose their nucleus to it, too.
    blurred = classifier.predict([np.asarray(Image.fromarray(image).filter(
        ImageFilter.GaussianBlur(4))) for image in small])
    assert all(p.status == UNFAMILIAR for p in blurred)
    assert sum("out of focus" in p.unfamiliar_reason for p in blurred) >= 12


def test_the_padding_around_a_blurred_cell_does_not_make_it_look_sharp(classifier):
    from PIL import Image, ImageFilter

    image = read_image(sorted((PBC / "monocyte").glob("*.jpg"))[0])
    box = classifier.frame(image)
    # Cut the picture at the nucleus' centre, so that its frame reaches past two edges.
    top, left = (round((a + b) / 2) for a, b in zip(box.nucleus[:2], box.nucleus[2:]))
    corner = np.asarray(Image.fromarray(image[top - 20:, left - 20:]).filter(
        ImageFilter.GaussianBlur(12)))
    framed = classifier.frame(corner)
    assert framed.found and min(framed.top, framed.left) < 0
    prediction = classifier.predict([corner])[0]
    assert "out of focus" in prediction.unfamiliar_reason
    # The whole model input, padding and all, would read as sharp.
    with_padding = sharpness(classifier.prepare(corner)[None])[0]
    assert with_padding > 2 * prediction.sharpness


def test_shipped_model_has_its_statistics_and_features(classifier):
    assert classifier.familiarity is not None
    assert classifier.card.config.familiarity_sha256
    assert classifier.familiarity.threshold > 0


@pytest.mark.slow
def test_held_out_pbc_cells_are_rarely_unfamiliar(classifier):
    from hematovision.io.dataset import test_split_files

    files = test_split_files(SHIPPED_MODEL, PBC)[::8]  # 239 held-out cells, all classes
    predictions = classifier.predict([read_image(path) for path, _ in files])
    flagged = sum(p.status == UNFAMILIAR for p in predictions)
    assert flagged <= 0.05 * len(files), [p.unfamiliar_reason for p in predictions
                                          if p.unfamiliar_reason]
    assert all(p.distance is not None and p.distance > 0 for p in predictions)


@pytest.mark.parametrize("kind", ["blank", "noise", "text", "photo"])
def test_clearly_foreign_pictures_are_unfamiliar_with_a_reason(classifier, kind):
    items = [item for item in foreign_images([], cells=0) if item.kind == kind]
    predictions = classifier.predict([item.image for item in items])
    flagged = [p for p in predictions if p.status == UNFAMILIAR]
    assert len(flagged) >= 0.9 * len(items)
    assert all(p.unfamiliar_reason for p in flagged)
    assert all(p.status != CONFIDENT or p.unfamiliar_reason == "" for p in predictions)


def test_the_foreign_set_has_every_kind(pbc_examples):
    kinds = {item.kind for item in foreign_images([p for p, _ in pbc_examples], cells=8)}
    assert kinds == set(KINDS)


def test_damaged_statistics_file_is_refused_by_name(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL, copy, ignore=shutil.ignore_patterns("checkpoint.keras"))
    path = copy / "familiarity.npz"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelFileError, match="familiarity.npz"):
        Classifier(copy)


@pytest.mark.slow
def test_cli_foreign_measures_and_records_in_the_card(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL, copy, ignore=shutil.ignore_patterns("checkpoint.keras"))
    run = subprocess.run([sys.executable, "-m", "hematovision", "foreign", "--model", str(copy),
                          "--data", str(PBC)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "flagged Unfamiliar" in run.stdout
    card = load_card(copy)
    assert card.results.foreign["n"] > 100
    assert set(card.results.foreign["kinds"]) == set(KINDS)
    detail = json.loads((copy / "foreign.json").read_text())
    assert len(detail["images"]) == card.results.foreign["n"]
