"""The cell finder on real images: PBC, the external lab's masked cells, and non-cells."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from hematovision.io.cell_finder import crop_square, find_cell, whole_image_box
from hematovision.io.images import (
    IMAGE_SUFFIXES,
    frame_image,
    read_image,
    to_image_grid,
    to_model_input,
)
from hematovision.measure.foreign import foreign_images
from tests.conftest import KAGGLE, PBC, ZHENG
from tests.reference_framing import box_iou, finder_66c5e47, reference_find_cell


def _masked_cells():
    with open(ZHENG / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(ZHENG / row["image"], ZHENG / row["mask"]) for row in rows]


@pytest.mark.slow
def test_box_holds_the_masked_cell_in_at_least_95_percent_of_the_external_images():
    contained = 0
    cells = _masked_cells()
    assert len(cells) == 100
    for image_path, mask_path in cells:
        box = find_cell(read_image(image_path))
        rows, cols = np.nonzero(np.asarray(Image.open(mask_path)) > 0)
        contained += (box.found and rows.min() >= box.top - 1 and cols.min() >= box.left - 1
                      and rows.max() <= box.top + box.side + 1
                      and cols.max() <= box.left + box.side + 1)
    assert contained >= 95


@pytest.mark.slow
def test_finds_a_cell_in_nearly_every_pbc_image_and_centres_it():
    paths = sorted(PBC.glob("*/*.jpg"))[::60]
    found = 0
    for path in paths:
        image = read_image(path)
        box = find_cell(image)
        found += box.found
        if box.found and path.parent.name != "platelet":  # platelets lie anywhere
            centre = np.array([box.top + box.side / 2, box.left + box.side / 2])
            # PBC cells are centred by the analyser: the frame's centre is near the image's.
            assert np.all(np.abs(centre - np.array(image.shape[:2]) / 2) < 0.3 * 360), path
            assert 0.5 * min(image.shape[:2]) <= box.side
    assert found >= 0.98 * len(paths)


@pytest.mark.slow
def test_finds_the_cell_in_photos_with_black_corners_from_rotation():
    # The Kaggle set's photos were rotated with black fill. Black has a huge haematoxylin
    # value in HED space; counted as background it hid every nucleus (6 of 160 found).
    paths = sorted(KAGGLE.rglob("*.jpeg"))
    assert len(paths) == 160
    found = sum(find_cell(read_image(path)).found for path in paths)
    assert found >= 0.9 * len(paths)
    # The same on a PBC cell turned by 30°, its corners filled black: the box is on the cell.
    image = read_image(sorted((PBC / "neutrophil").glob("*.jpg"))[0])
    upright = find_cell(image)
    turned = np.asarray(Image.fromarray(image).rotate(30, fillcolor=(0, 0, 0)))
    box = find_cell(turned)
    assert box.found and upright.found
    centre = np.array([box.top + box.side / 2, box.left + box.side / 2])
    middle = (np.array(turned.shape[:2]) - 1) / 2
    offset = np.array([upright.top + upright.side / 2, upright.left + upright.side / 2]) \
        - (np.array(image.shape[:2]) - 1) / 2
    # Rotating the upright cell's offset from the middle by 30° gives where it should be.
    angle = np.deg2rad(30)
    expected = middle + np.array([np.cos(angle) * offset[0] - np.sin(angle) * offset[1],
                                  np.sin(angle) * offset[0] + np.cos(angle) * offset[1]])
    assert np.linalg.norm(centre - expected) < 0.1 * box.side
    # Beyond the picture's edge the crop is padded with the slide's colour, not the fill's.
    outside = crop_square(turned, box.__class__(-50, -50, 100, True, ""))
    slide = np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]), axis=0)
    assert outside[0, 0].min() > 100  # black fill before
    assert np.abs(outside[0, 0].astype(int) - slide).max() < 50


@pytest.mark.slow
def test_finds_the_cell_inside_an_eyepiece_vignette():
    # A phone held to a teaching microscope's eyepiece darkens the field towards a black
    # circle. The dark ring is large and central, so it used to win over the nucleus and,
    # not being purple, end the search: 3 of these 40 cells were framed.
    framed = 0
    paths = sorted((PBC / "lymphocyte").glob("*.jpg"))[:40]
    for path in paths:
        cell = read_image(path).astype(float)
        height, width = cell.shape[:2]
        field = np.empty((2 * height, 2 * width, 3))
        field[:] = np.median(cell.reshape(-1, 3), axis=0)
        field[height // 2: height // 2 + height, width // 2: width // 2 + width] = cell
        rows, cols = np.mgrid[: 2 * height, : 2 * width]
        radius = np.hypot(rows - height, cols - width) / (0.9 * height)
        photo = (field * np.clip(1.3 - radius**4, 0, 1)[..., None]).astype(np.uint8)
        box = find_cell(photo)
        centre = np.array([box.top + box.side / 2, box.left + box.side / 2])
        framed += box.found and np.all(np.abs(centre - [height, width]) < 0.15 * height)
    assert framed >= 38


def test_says_no_cell_for_blank_noise_text_and_grey_pictures():
    for item in foreign_images([], cells=0):
        assert find_cell(item.image) == finder_66c5e47(item.image), item.name
        if item.kind in ("blank", "noise", "text"):
            box = find_cell(item.image)
            assert not box.found, item.name
            assert box.reason.startswith("no cell found"), item.name
            assert (box.top, box.left, box.side) == (
                whole_image_box(item.image.shape).top, whole_image_box(item.image.shape).left,
                whole_image_box(item.image.shape).side)


def test_crop_pads_with_the_slide_background_beyond_the_edges():
    image = np.zeros((100, 80, 3), np.uint8)
    image[:] = (230, 200, 190)
    image[40:60, 30:50] = (90, 30, 140)
    box = find_cell(image)
    assert box.found
    crop = crop_square(image, box)
    assert crop.shape[0] == crop.shape[1] == round(box.side)
    # The frame is 2.5 nucleus widths but at least half the shorter side.
    assert box.side == pytest.approx(max(20 * 2.5, 40), abs=4)
    outside = crop_square(image, box.__class__(-30, -30, 160, True, ""))
    assert tuple(outside[0, 0]) == (230, 200, 190)


def test_maps_return_to_the_framed_square_of_the_original_picture():
    image = read_image(sorted((PBC / "neutrophil").glob("*.jpg"))[0])
    box = frame_image(image, "cell")
    values = np.ones((224, 224), np.float32)
    grid = to_image_grid(values, image.shape[:2], box)
    assert grid.shape == image.shape[:2]
    inside = grid[int(box.top) + 2 : int(box.top + box.side) - 2,
                  int(box.left) + 2 : int(box.left + box.side) - 2]
    assert inside.size and inside.min() == pytest.approx(1.0)
    if box.top > 2:
        assert grid[0].max() == 0.0  # the model never saw the rows above its frame


def test_whole_framing_is_the_padded_picture_as_before():
    image = np.random.default_rng(0).integers(0, 256, (90, 60, 3), dtype=np.uint8)
    framed = to_model_input(image, 90, framing="whole")
    assert np.array_equal(framed[:, 15:75], image.astype(np.float32))
    with pytest.raises(ValueError, match="unknown framing"):
        frame_image(image, "zoom")


@pytest.mark.parametrize("dataset, step", [(PBC, 40), (ZHENG / "images", 1), (KAGGLE, 1)])
def test_the_fast_finder_frames_what_the_earlier_ones_framed(dataset, step):
    # The float32 stain table and OpenCV's morphology must not move the frames the shipped
    # model was trained and measured on (the earlier finder: tests/reference_framing.py);
    # the table look-up in OpenCV and the morphology on the stained window must not move
    # them at all (66c5e47's finder: same box, same nucleus, same reason).
    paths = sorted(path for path in dataset.rglob("*")
                   if path.suffix.lower() in IMAGE_SUFFIXES)[::step]
    assert len(paths) >= 100
    for path in paths:
        image = read_image(path)
        fast, reference = find_cell(image), reference_find_cell(image)
        assert fast.found == reference.found, path
        assert box_iou(fast, reference) >= 0.95, path
        assert fast == finder_66c5e47(image), path
