"""Augmentation: shapes, value ranges, determinism, and each family doing what it says."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from hematovision.io.images import load_model_input  # noqa: E402
from hematovision.train.pipeline import (  # noqa: E402
    CAMERA_AUGMENTATION,
    Augmentation,
    augment,
    balanced_training_dataset,
    colour_statistics,
    colour_templates,
    training_dataset,
)
from tests.conftest import PBC  # noqa: E402

OFF = Augmentation(min_zoom=1.0, max_zoom=1.0, max_shift=0.0, brightness=0.0, contrast=0.0,
                   saturation=0.0, hue=0.0, stain=0.0, gamma=0.0, focus=0.0,
                   min_jpeg_quality=100)


@pytest.fixture(scope="module")
def cell() -> np.ndarray:
    path = sorted((PBC / "eosinophil").glob("*.jpg"))[0]
    return load_model_input(path, framing="cell")


def _run(image, seed, settings=Augmentation()):
    return augment(tf.constant(image), tf.constant(seed, tf.int64), settings).numpy()


def test_shape_range_and_determinism(cell):
    first = _run(cell, [1, 2])
    assert first.shape == cell.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 255.0
    assert np.array_equal(first, _run(cell, [1, 2]))
    assert not np.array_equal(first, _run(cell, [3, 4]))


def test_all_families_off_only_flips_and_turns(cell):
    out = _run(cell, [5, 6], OFF)
    turns = [np.rot90(flip, k) for flip in (cell, cell[:, ::-1]) for k in range(4)]
    assert min(np.abs(out - t).max() for t in turns) < 1.0


@pytest.mark.parametrize("family, settings", [
    ("stain", {"stain": 0.2}),
    ("gamma", {"gamma": 0.4}),
    ("focus", {"focus": 1.0}),
    ("jpeg", {"min_jpeg_quality": 10}),
    ("scale", {"min_zoom": 0.6, "max_zoom": 0.6}),
    ("resolution", {"min_resolution": 0.2}),
    ("white balance", {"white_balance": 0.3}),
    ("vignetting", {"vignetting": 0.6}),
])
def test_each_family_changes_the_image_alone(cell, family, settings):
    from dataclasses import replace

    changed = [np.abs(_run(cell, [seed, 0], replace(OFF, **settings)) -
                      _run(cell, [seed, 0], OFF)).mean() for seed in range(4)]
    assert max(changed) > 1.0, family


def test_zooming_out_fills_with_background_not_black(cell):
    out = _run(cell, [0, 0], Augmentation(**{**OFF.__dict__, "min_zoom": 0.5,
                                             "max_zoom": 0.5}))
    assert out[:5, :5].mean() > 100  # the corner is slide background, not black


def test_training_dataset_batches_one_hot_labels(cell):
    images = np.stack([cell.astype(np.uint8)] * 5)
    data = training_dataset(images, np.array([0, 1, 2, 1, 0]), 3, batch_size=4, seed=1)
    batch_images, batch_labels = next(iter(data))
    assert batch_images.shape == (4, 224, 224, 3)
    assert batch_labels.shape == (4, 3)
    assert np.allclose(batch_labels.numpy().sum(axis=1), 1.0)


def test_camera_changes_are_off_by_default_and_on_in_the_camera_preset():
    assert Augmentation().min_resolution == 1.0
    assert Augmentation().white_balance == 0.0 and Augmentation().vignetting == 0.0
    assert CAMERA_AUGMENTATION.min_resolution < 1.0 and CAMERA_AUGMENTATION.vignetting > 0


def test_vignetting_darkens_corners_more_than_the_centre(cell):
    from dataclasses import replace

    plain = _run(cell, [7, 0], OFF)
    dark = _run(cell, [7, 0], replace(OFF, vignetting=0.8))
    corner_loss = (plain[:20, :20] - dark[:20, :20]).mean()
    centre_loss = (plain[102:122, 102:122] - dark[102:122, 102:122]).mean()
    assert corner_loss > 5 * max(centre_loss, 0.1)


def test_balanced_dataset_draws_the_small_source_as_often_as_the_large(cell):
    images = np.stack([cell.astype(np.uint8)] * 40)
    labels = np.array([0] * 20 + [1] * 16 + [1] * 4)  # class 1: 16 from source 0, 4 from 1
    sources = np.array([0] * 36 + [1] * 4)
    data = balanced_training_dataset(images, labels, sources, 2, batch_size=8, steps=10,
                                     seed=3, settings=OFF)
    batches = list(data)
    assert len(batches) == 10
    drawn = np.concatenate([b[1].numpy().argmax(1) for b in batches])
    assert 0.3 < np.mean(drawn == 1) < 0.7


def test_colour_transfer_gives_a_picture_another_sources_colours(cell):
    from dataclasses import replace

    # A pale blue-grey picture, like a smartphone's, as the only other source's template.
    other = np.clip(cell * np.array([0.75, 0.85, 1.0]) + np.array([0, 10, 30]), 0, 255)
    pictures = np.stack([cell, cell, cell, other]).astype(np.uint8)
    settings = replace(OFF, colour_transfer=1.0)
    templates = colour_templates(pictures, np.array([0, 0, 0, 1]), settings)
    # The one picture of source 1 is drawn as often as the three of source 0.
    weights = np.exp(templates[1].numpy())
    assert np.isclose(weights[3], weights[:3].sum())
    stats = colour_statistics(pictures)
    moved = [augment(tf.constant(cell), tf.constant([seed, 9], tf.int64), settings, templates)
             .numpy() for seed in range(40)]
    changed = [colour_statistics(m[None])[0] for m in moved]
    # Each output has one picture's colour statistics, up to the flips and clipping.
    near_other = [np.abs(c - stats[3]).max() < 0.02 for c in changed]
    near_own = [np.abs(c - stats[0]).max() < 0.02 for c in changed]
    assert all(a or b for a, b in zip(near_other, near_own))
    assert 10 <= sum(near_other) <= 30  # about half, as the weights say
    assert colour_templates(pictures, None, OFF) is None  # off by default
    assert np.array_equal(_run(cell, [5, 6], OFF),
                          augment(tf.constant(cell), tf.constant([5, 6], tf.int64), OFF,
                                  templates).numpy())


def test_tight_crop_keeps_a_box_round_the_cell_and_fills_the_rest_with_its_edge(cell):
    from dataclasses import replace

    side = cell.shape[0]
    middle = slice(side // 2 - 20, side // 2 + 20)
    turned = [np.rot90(flip, k) for flip in (cell, cell[:, ::-1]) for k in range(4)]
    changed = 0
    for seed in range(40):
        out = _run(cell, [seed, 3], replace(OFF, tight_crop=0.5))
        source = min(turned, key=lambda t: np.abs(out - t)[middle, middle].max())
        filled = np.all(out == out[0, 0], axis=2)
        if not filled.any() or np.array_equal(out, source):
            assert np.array_equal(out, source)
            continue
        changed += 1
        rows, cols = np.nonzero(~filled)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        # The box reaches 0.18-0.38 of the side from the centre on each side, on its own.
        for reach in (side / 2 - top, bottom - side / 2, side / 2 - left, right - side / 2):
            assert 0.18 * side - 1 <= reach <= 0.38 * side + 1
        box = source[top:bottom, left:right]
        assert np.array_equal(out[top:bottom, left:right], box)
        assert filled[:top].all() and filled[bottom:].all()
        assert filled[:, :left].all() and filled[:, right:].all()
        edge = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
        assert np.allclose(out[0, 0], np.sort(edge, axis=0)[len(edge) // 2])
    assert 10 <= changed <= 30  # about half, as the chance says
    assert Augmentation().tight_crop == 0.0  # off by default


def test_grey_takes_the_colour_from_about_the_chance_of_pictures(cell):
    from dataclasses import replace

    turns = [np.rot90(flip, k) for flip in (cell, cell[:, ::-1]) for k in range(4)]
    greys = 0
    for seed in range(60):
        out = _run(cell, [seed, 9], replace(OFF, grey=0.25))
        spread = np.abs(out - out.mean(axis=2, keepdims=True)).max()
        if spread < 1.0:
            greys += 1
            assert out.std() > 10  # the cell is still there, only its colour is gone
        else:
            assert min(np.abs(out - t).max() for t in turns) < 1.0
    assert 7 <= greys <= 25  # about a quarter, as the chance says
    assert Augmentation().grey == 0.0  # off by default


def test_strong_colour_moves_hue_further_than_the_default_and_keeps_the_rest(cell):
    from hematovision.train.pipeline import strong_colour

    strong = strong_colour(CAMERA_AUGMENTATION)
    assert strong.min_resolution == CAMERA_AUGMENTATION.min_resolution  # cameras kept
    assert strong.grey > 0 and strong.stain > Augmentation().stain

    original = tf.image.rgb_to_hsv(cell / 255.0).numpy()[..., 0].mean()

    def mean_hue_shift(settings):
        shifts = []
        for seed in range(12):
            out = _run(cell, [seed, 11], _colour_only(settings))
            shifts.append(abs(tf.image.rgb_to_hsv(out / 255.0).numpy()[..., 0].mean()
                              - original))
        return np.mean(shifts)

    assert mean_hue_shift(strong) > 1.5 * mean_hue_shift(CAMERA_AUGMENTATION)


def _colour_only(settings):
    """The colour families of ``settings`` alone, so the picture's content stays put."""
    from dataclasses import replace

    return replace(settings, min_zoom=1.0, max_zoom=1.0, max_shift=0.0, focus=0.0,
                   min_jpeg_quality=100, min_resolution=1.0, vignetting=0.0, grey=0.0)
