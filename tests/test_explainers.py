"""Every registered explainer honours the contract; the maps mean what they say."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from hematovision.explain import available_methods, explain, get_explainer
from hematovision.io.images import read_image, to_image_grid

from .conftest import PBC, SHIPPED_MODEL, ZHENG

FAST = {"lime": {"samples": 60}, "shap": {"evaluations": 60}}


@pytest.fixture(scope="module")
def cell(pbc_examples):
    return read_image(pbc_examples[0][0])  # PBC images are 360×363: not square


@pytest.mark.parametrize("method", [
    pytest.param(m.name, marks=[pytest.mark.slow] if m.name in FAST else [])
    for m in available_methods()])
def test_contract(method, classifier, cell):
    other = (classifier.predict([cell])[0].classes.index("monocyte"))
    result = explain(method, cell, classifier, other, **FAST.get(method, {}))
    assert result.heatmap.shape == cell.shape[:2]
    assert result.heatmap.dtype == np.float32
    assert np.isfinite(result.heatmap).all()
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0
    assert result.class_name == "monocyte" and result.method == method
    if result.signed is not None:
        assert result.signed.shape == cell.shape[:2]
        assert result.signed.min() >= -1.0 and result.signed.max() <= 1.0
    # The map on the model's square is the one the picture's map was resampled from.
    size = classifier.input_size
    assert result.square_heatmap.shape == (size, size)
    box = classifier.frame(cell)
    assert np.allclose(to_image_grid(result.square_heatmap, cell.shape[:2], box),
                       result.heatmap, atol=1e-6)
    assert (result.signed is None) == (result.square_signed is None)
    if result.signed is not None:
        assert np.allclose(to_image_grid(result.square_signed, cell.shape[:2], box),
                           result.signed, atol=1e-6)
    explainer = get_explainer(method)
    assert explainer.title and explainer.caption and explainer.how and explainer.reference


def test_default_class_is_the_prediction(classifier, cell):
    result = explain("gradcam", cell, classifier)
    assert result.class_name == classifier.predict([cell])[0].label


def test_a_given_frame_is_the_one_explained(classifier, cell):
    # The dashboard passes the box it classified; the map must be the same as when the
    # explainer frames the cell itself, and a different box must move the map.
    found = classifier.frame(cell)
    assert np.array_equal(explain("gradcam", cell, classifier, 0, box=found).heatmap,
                          explain("gradcam", cell, classifier, 0).heatmap)
    moved = replace(found, left=0, top=0)
    assert not np.array_equal(explain("gradcam", cell, classifier, 0, box=moved).heatmap,
                              explain("gradcam", cell, classifier, 0).heatmap)


@pytest.mark.parametrize("method,settings,message", [
    ("nope", {}, "unknown explanation method"),
    ("lime", {"colour": 3}, "no settings"),
    ("gradcam", {"opacity": 0.5}, "no settings"),
])
def test_bad_requests_are_clear_errors(classifier, cell, method, settings, message):
    with pytest.raises(ValueError, match=message):
        explain(method, cell, classifier, **settings)


def test_out_of_range_class_is_refused(classifier, cell):
    with pytest.raises(ValueError, match="outside"):
        explain("gradcam", cell, classifier, 42)


@pytest.fixture(scope="module")
def tf_keras_vis_maps(classifier, pbc_examples):
    """tf-keras-vis' Gradcam and GradcamPlusPlus on the Keras model's logits: three cells of
    different classes, and for each its predicted class and two classes it rules out."""
    import keras
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore

    from hematovision.model.network import LOGITS_LAYER

    model = classifier.model
    view = keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output)
    references = {"gradcam": Gradcam(view, clone=True),
                  "gradcampp": GradcamPlusPlus(view, clone=True)}
    cases = []
    for path, _ in pbc_examples[::15][:3]:
        x = classifier.prepare(read_image(path))
        top = int(np.argmax(classifier.predict_proba(x[None])[0]))
        for index in {top, (top + 3) % 8, (top + 6) % 8}:
            for method, reference in references.items():
                expected = reference(CategoricalScore([index]), x[None],
                                     penultimate_layer=classifier.card.config.gradcam_layer,
                                     seek_penultimate_conv_layer=False)[0]
                cases.append((method, x, index, expected))
    return cases


def test_gradient_free_gradcam_equals_tf_keras_vis(classifier, tf_keras_vis_maps):
    # The runtime's feature map and the head's weights, in closed form, against the
    # library's gradient tape on the Keras model: 3 cells × 3 classes × 2 methods.
    assert classifier.head is not None, "the shipped runtime returns no feature map"
    assert len(tf_keras_vis_maps) == 18
    for method, x, index, expected in tf_keras_vis_maps:
        ours = get_explainer(method).compute(x, classifier, index)[0]
        assert np.abs(ours - expected).max() < 1e-4, (method, index)


def test_the_slow_path_for_another_layer_equals_tf_keras_vis(classifier, cell):
    # Any other layer takes TensorFlow's gradients: the advanced, slow option.
    import keras
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    from hematovision.model.network import LOGITS_LAYER

    layer = "block15_project_bn"  # the last block's output, 7×7×320
    x = classifier.prepare(cell)
    view = keras.Model(classifier.model.inputs,
                       classifier.model.get_layer(LOGITS_LAYER).output)
    expected = Gradcam(view, clone=True)(CategoricalScore([2]), x[None],
                                          penultimate_layer=layer,
                                          seek_penultimate_conv_layer=False)[0]
    ours = get_explainer("gradcam").compute(x, classifier, 2, layer=layer)[0]
    assert np.abs(ours - expected).max() < 1e-3
    with pytest.raises(ValueError, match="no layer"):
        explain("gradcam", cell, classifier, 2, layer="no_such_layer")


@pytest.mark.parametrize("hidden_units,layer,linear", [
    (0, "top_activation", True),
    (16, "top_activation", False),  # a ReLU layer between pooling and logits
    (0, "top_conv", False),  # BatchNorm and swish lie between it and the pooling
])
def test_only_a_linear_head_gets_gradient_free_gradcam(hidden_units, layer, linear):
    from hematovision.model.network import build_classifier, linear_head

    model = build_classifier("lite0", 3, input_size=64, hidden_units=hidden_units,
                             pretrained=False)
    head = linear_head(model, layer)
    assert (head is not None) == linear
    if linear:
        assert head[0].shape == (1280, 3) and head[1].shape == (3,)


@pytest.mark.slow
def test_lime_weights_equal_the_library(classifier, cell):
    from lime.lime_image import LimeImageExplainer

    from hematovision.explain.lime_map import lime_weights
    from hematovision.explain.superpixels import segment_cell

    x = classifier.prepare(cell)
    segmentation = segment_cell(x)
    index = classifier.classes.index(classifier.predict([cell])[0].label)
    ours = lime_weights(x, classifier, index, segmentation, samples=120, seed=7,
                        link="identity", antithetic=False)
    library = LimeImageExplainer(random_state=7).explain_instance(
        x.astype(np.float64), classifier.predict_proba, labels=(index,), top_labels=None,
        num_samples=120, batch_size=32, segmentation_fn=lambda image: segmentation,
        random_seed=7)
    theirs = np.zeros_like(ours)
    for feature, weight in library.local_exp[index]:
        theirs[feature] = weight
    assert np.allclose(ours, theirs, atol=1e-4)


@pytest.mark.slow
def test_lime_ranks_the_patches_alike_whatever_the_seed(classifier):
    # The middle held-out platelet, as in the benchmark: so sure of itself that LIME fitted
    # to probabilities ranks its patches at random at 250 samples (seeds 0 and 1: 0.58;
    # against a 2,000-sample fit 0.33 and 0.02). The log-odds fit with mask pairs must not.
    from scipy.stats import spearmanr

    from hematovision.io.dataset import test_split_files

    platelets = [path for path, label in test_split_files(SHIPPED_MODEL, PBC)
                 if label == "platelet"]
    x = classifier.prepare(read_image(platelets[len(platelets) // 2]))
    index = classifier.classes.index("platelet")
    lime = get_explainer("lime")
    first, second = (lime.compute(x, classifier, index, **{**lime.defaults, "seed": seed})[1]
                     for seed in (0, 1))
    assert spearmanr(first.ravel(), second.ravel()).statistic >= 0.9


@pytest.mark.slow
def test_shap_values_add_up_to_what_the_cell_adds_to_the_log_odds(classifier, cell):
    # Shapley values are efficient: together they account for the whole difference
    # between the cell and the copy with every patch hidden (blurred), whatever the budget.
    from hematovision.explain.coalitions import hidden_copy, log_odds
    from hematovision.explain.shap_map import shap_values

    x = classifier.prepare(cell)
    index = classifier.classes.index(classifier.predict([cell])[0].label)
    values, hidden_log_odds, segmentation = shap_values(x, classifier, index, 120, 32)
    assert values.shape == (segmentation.max() + 1,)
    logits = classifier.forward(np.stack([x, hidden_copy(x)]))[0]
    whole, hidden = log_odds(logits, classifier.card.config.temperature)[:, index]
    assert hidden_log_odds == pytest.approx(hidden, abs=1e-3)
    assert values.sum() == pytest.approx(whole - hidden, abs=1e-3)


@pytest.mark.parametrize("count,samples,exhaustive,rows", [
    (4, 250, True, 16),  # every coalition fits: both fits are exact
    (24, 250, False, 250),  # whole, empty, 2·24 single-patch masks, 200 draws
    (40, 60, False, 60),  # no room for the single-patch masks: draws only
])
def test_one_set_of_coalitions_serves_lime_and_shap(count, samples, exhaustive, rows):
    from hematovision.explain.coalitions import coalition_masks

    masks, lime, shap, is_exhaustive = coalition_masks(count, samples, seed=3)
    assert masks.shape == (rows, count) and is_exhaustive == exhaustive
    assert masks[0].all() and (masks.sum(axis=1) == 0).any()  # the whole cell and empty
    assert lime[0] == 1.0 and (lime >= 0).all() and (shap >= 0).all()
    size = masks.sum(axis=1)
    assert shap[(size == 0) | (size == count)].sum() == 0  # held by the constraint instead
    if not exhaustive:
        # LIME gives the single-patch masks no weight (they are not its draws), and the
        # Shapley weights carry the whole kernel's mass over sizes 1 … count − 1.
        assert lime[(size == 1) & (masks.shape[0] > 2 * count + 2)].sum() == 0
        mass = sum((count - 1) / (s * (count - s)) for s in range(1, count))
        assert shap.sum() == pytest.approx(mass, rel=1e-9)


@pytest.mark.parametrize("count,samples", [(11, 250), (12, 200), (24, 250)])
def test_kernel_shap_weighs_each_size_by_its_share_of_the_shapley_kernel(count, samples):
    # Post-stratified: every coalition of a size stands for all of that size, so the rows
    # of one size share its Shapley mass equally, whichever half of the design drew them;
    # every row comes with its complement, and Kernel SHAP's own draws are all different.
    from hematovision.explain.coalitions import coalition_masks

    masks, lime, shap, _ = coalition_masks(count, samples, seed=5)
    size = masks.sum(axis=1)
    for s in range(1, count):
        weights = shap[size == s]
        assert len(weights) > 0 and np.allclose(weights, weights[0])
        assert weights.sum() == pytest.approx((count - 1) / (s * (count - s)), rel=1e-9)
    rows = {row.tobytes() for row in masks}
    assert all((1 - row).tobytes() in rows for row in masks)
    own = masks[(lime == 0) & (size > 1) & (size < count - 1)]
    assert len({row.tobytes() for row in own}) == len(own)
    # LIME reads its own draws (each patch shown with probability ½) and the whole cell.
    assert lime[0] == 1.0 and set(np.unique(lime)) == {0.0, 1.0}
    assert abs(size[lime > 0][1:].mean() - count / 2) < 1.0


def test_exact_shapley_values_on_an_additive_score():
    # On an additive score with one interaction, the exhaustive design gives the exact
    # Shapley values (the interaction split in two), and a sampled design adds up.
    from hematovision.explain.coalition_fits import kernel_shap_fit, lime_fit
    from hematovision.explain.coalitions import ScoredCoalitions, coalition_masks

    weights = np.array([0.5, -0.2, 0.1, 0.0, 0.3, 0.05])
    for count, samples in ((6, 64), (6, 40)):
        masks, lime, shap, exhaustive = coalition_masks(count, samples, seed=1)
        scores = masks @ weights + 0.4 * masks[:, 0] * masks[:, 1]
        scored = ScoredCoalitions(masks, lime, shap, exhaustive, np.zeros((len(masks), 2)),
                                  np.zeros((2, 2), int))
        values, empty = kernel_shap_fit(scored, scores)
        assert empty == 0.0 and values.sum() == pytest.approx(scores[0])
        if exhaustive:
            assert np.allclose(values, weights + [0.2, 0.2, 0, 0, 0, 0], atol=1e-9)
        assert np.argmax(lime_fit(scored, masks @ weights)) == 0


def _scored(masks: np.ndarray, lime: np.ndarray, shap: np.ndarray, exhaustive: bool):
    from hematovision.explain.coalitions import ScoredCoalitions

    return ScoredCoalitions(masks, lime, shap, exhaustive, np.zeros((len(masks), 2)),
                            np.zeros((2, 2), int))


def test_completed_coalitions_keep_every_score_and_fill_an_additive_one_exactly():
    from hematovision.explain.coalition_fits import completed_scores, every_coalition
    from hematovision.explain.coalitions import coalition_masks

    count, rng = 10, np.random.RandomState(2)
    masks, lime, shap, exhaustive = coalition_masks(count, 250, seed=2)
    assert not exhaustive
    weights = rng.normal(0, 1, count)
    additive = completed_scores(_scored(masks, lime, shap, exhaustive), masks @ weights + 0.3)
    assert np.allclose(additive, every_coalition(count) @ weights + 0.3, atol=1e-6)
    # Scored coalitions keep their own score, whatever the surrogate says of them (a
    # coalition drawn twice scores alike: the network is deterministic).
    codes = masks @ (1 << np.arange(count))
    noisy = masks @ weights + rng.normal(0, 1, 2 ** count)[codes]
    completed = completed_scores(_scored(masks, lime, shap, exhaustive), noisy)
    assert np.allclose(completed[codes], noisy)


def test_lime_reads_every_coalition_alike_whether_scored_or_given():
    # With every coalition scored, LIME's map is its limit over them: the same numbers
    # the benchmark compares the map and the library's reference with.
    from hematovision.explain.coalition_fits import every_coalition, lime_fit, lime_limit
    from hematovision.explain.coalitions import coalition_masks

    count, rng = 6, np.random.RandomState(3)
    table = rng.normal(0, 1, 2 ** count)
    masks, lime, shap, exhaustive = coalition_masks(count, 64, seed=1)
    assert exhaustive
    scores = table[masks @ (1 << np.arange(count))]
    assert np.allclose(lime_fit(_scored(masks, lime, shap, exhaustive), scores),
                       lime_limit(table), atol=1e-9)
    assert np.array_equal(every_coalition(count) @ (1 << np.arange(count)),
                          np.arange(2 ** count))


def test_lime_over_completed_coalitions_is_the_library_fit_of_many_draws():
    # On a score with pair interactions, LIME's map from the shared 250-row design must be
    # what the library's own fit tends to (here on 20,000 draws), patch for patch.
    from hematovision.explain.coalition_fits import lime_fit
    from hematovision.explain.coalitions import coalition_masks
    from hematovision.explain.lime_map import LimeSamples, fit_lime, lime_masks

    count, rng = 11, np.random.RandomState(4)
    main, pairs = rng.normal(0, 1, count), np.triu(rng.normal(0, 0.3, (count, count)), 1)

    def score(masks):
        masks = masks.astype(np.float64)
        return masks @ main + np.einsum("ni,ij,nj->n", masks, pairs, masks)

    masks, lime, shap, exhaustive = coalition_masks(count, 250, seed=0)
    ours = lime_fit(_scored(masks, lime, shap, exhaustive), score(masks))
    draws = lime_masks(np.random.RandomState(1), 20000, count, False)
    logits = np.stack([score(draws), np.zeros(len(draws))], axis=1)
    library = fit_lime(LimeSamples(draws, logits, None), 0, "logit")
    assert np.abs(ours - library).max() < 0.05 * np.abs(library).max()


def test_lime_and_shap_score_the_cell_once_for_every_class(classifier, pbc_examples):
    # The second method, and any other class, reuse the first one's network calls.
    from hematovision.explain import coalitions

    coalitions._memo.clear()
    x_image = read_image(pbc_examples[7][0])
    calls = []
    real = classifier.forward

    def counting(batch, batch_size=32):
        calls.append(len(batch))
        return real(batch, batch_size)

    classifier.forward = counting
    try:
        explain("lime", x_image, classifier, 2)
        first = sum(calls)
        explain("shap", x_image, classifier, 2)
        explain("shap", x_image, classifier, 5)
        explain("lime", x_image, classifier, 5)
    finally:
        del classifier.forward
    assert first >= 200  # every distinct masked copy once
    assert sum(calls) - first == 3  # one probability each for the caption, no batches


def test_superpixel_hierarchy_is_a_balanced_tree_over_the_patches(classifier, cell):
    from scipy.cluster.hierarchy import is_valid_linkage, leaves_list

    from hematovision.explain.superpixels import segment_cell, segment_hierarchy

    x = classifier.prepare(cell)
    segmentation = segment_cell(x, 32)
    count = segmentation.max() + 1
    tree = segment_hierarchy(x, segmentation)
    assert tree.shape == (count - 1, 4) and is_valid_linkage(tree)
    assert sorted(leaves_list(tree)) == list(range(count))
    assert tree[-1, 3] == count
    assert tree[:, 2].max() == np.ceil(np.log2(count))  # as shallow as a binary tree can be


def test_explaining_never_changes_the_shared_model(classifier, cell):
    x = classifier.prepare(cell)[None]
    before = classifier.model.predict(x, verbose=0)
    explain("gradcampp", cell, classifier, 0)
    explain("gradcam", cell, classifier, 3)
    after = classifier.model.predict(x, verbose=0)
    assert np.array_equal(before, after)


def _masked_cells(count: int):
    rows = [line.split(",") for line in (ZHENG / "labels.csv").read_text().splitlines()[1:]]
    for image, _label, mask in rows[:count]:
        yield read_image(ZHENG / image), np.asarray(Image.open(ZHENG / mask))


def test_gradcam_peaks_on_the_white_cell_not_the_background(classifier):
    inside = 0
    cells = list(_masked_cells(20))
    for image, mask in cells:
        heatmap = explain("gradcam", image, classifier).heatmap
        row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        inside += bool(mask[row, col] > 0)
    assert inside / len(cells) >= 0.8


def test_log_odds_from_logits_match_the_probabilities_and_do_not_saturate():
    from scipy.special import softmax

    from hematovision.explain.lime_map import log_odds

    logits = np.array([[2.0, 0.5, -1.0], [40.0, 0.0, 0.0], [60.0, 0.0, 0.0]])
    odds = log_odds(logits, temperature=1.5)
    p = softmax(logits[0] / 1.5)
    assert np.allclose(odds[0], np.log(p / (1 - p)))
    # Both probabilities round to 1.0 in float32, yet the second cell is surer.
    assert np.isfinite(odds).all() and odds[2, 0] > odds[1, 0] > 20


def test_the_explanation_panel_keeps_each_picture_s_proportions():
    # Kaggle's pictures are 320 × 240: a round cell in one must stay round in the panel
    # that `hematovision explain` and the Explain page's download write.
    from PIL import ImageDraw

    from hematovision.explain.overlay import compose_panel

    picture = Image.new("RGB", (320, 240), (230, 220, 220))
    ImageDraw.Draw(picture).ellipse((100, 60, 220, 180), fill=(20, 20, 120))
    panel = compose_panel([("cell", np.asarray(picture))], title="", tile_size=256)
    rows, columns = np.nonzero(panel[..., 2].astype(int) - panel[..., 0] > 60)
    width, height = np.ptp(columns) + 1, np.ptp(rows) + 1
    assert abs(width - height) <= 2, (width, height)


def test_the_panel_title_draws_a_dash_not_an_empty_box():
    # The Explain page's title joins its parts with em dashes; a font without the glyph
    # drew each as a tall empty box on the picture that goes onto teaching slides.
    from hematovision.explain.overlay import compose_panel

    panel = compose_panel([("", np.full((64, 64, 3), 255, np.uint8))], title="—")
    rows, columns = np.nonzero(panel[:40].min(axis=2) < 128)
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    assert height <= 3 and width >= 3 * height, (height, width)


@pytest.mark.parametrize("method", [m.name for m in available_methods()])
def test_a_blank_picture_has_no_evidence_to_show(method, classifier):
    # Hiding a patch of empty glass changes nothing: any colour in the map would be
    # rounding noise scaled up to full strength.
    grey = np.full((300, 300, 3), 180, np.uint8)
    result = explain(method, grey, classifier, classifier.classes.index("ig"),
                     **FAST.get(method, {}))
    assert result.heatmap.max() == 0.0
    if result.signed is not None:
        assert np.abs(result.signed).max() == 0.0


def test_a_first_map_s_time_leaves_out_loading_the_network(cell):
    import time

    from hematovision.model.classifier import Classifier

    fresh = Classifier(SHIPPED_MODEL)  # classifies on LiteRT; Keras loads on first use
    started = time.perf_counter()
    result = explain("gradcam", cell, fresh, layer="top_conv")  # the slow, Keras path
    whole = time.perf_counter() - started
    # Loading and tracing take seconds, the map a tenth of one: "7.6 s" misled.
    assert result.seconds < whole / 4


def test_a_class_the_model_rules_out_gets_a_greyed_map_with_its_reason(classifier, cell):
    probabilities = classifier.predict_proba(classifier.prepare(cell)[None])[0]
    unlikely, top = int(np.argmin(probabilities)), int(np.argmax(probabilities))
    assert probabilities[unlikely] < 0.02
    for method in ("gradcam", "gradcampp"):
        ruled_out = explain(method, cell, classifier, unlikely)
        assert ruled_out.probability == pytest.approx(probabilities[unlikely], abs=1e-6)
        assert ruled_out.faint and classifier.classes[unlikely] in ruled_out.faint
        assert explain(method, cell, classifier, top).faint == ""


def test_padding_around_the_picture_is_never_evidence(classifier, pbc_examples):
    # A cell cut at the picture's corner: the model's square reaches past two edges and
    # is padded there; no map may colour that padding.
    from hematovision.io.images import picture_mask

    image = read_image(pbc_examples[10][0])
    box = classifier.frame(image)
    corner = image[int(box.top + box.side / 2):, int(box.left + box.side / 2):]
    corner_box = classifier.frame(corner)
    inside = picture_mask(corner.shape[:2], corner_box, classifier.input_size)
    assert 0.2 < inside.mean() < 0.95, "the square should reach past the picture"
    for method in available_methods():
        result = explain(method.name, corner, classifier, 0, box=corner_box,
                         **FAST.get(method.name, {}))
        assert not result.square_heatmap[inside == 0].any(), method.name
        if result.square_signed is not None:
            assert not result.square_signed[inside == 0].any(), method.name


def test_lime_and_shap_colours_stand_out_over_a_basophil_nucleus():
    # Over the dark purple of a basophil's nucleus, full evidence for or against must
    # change the colour clearly (PiYG and RdBu_r, used before, moved its brightness by
    # −16 to +3 of 255; a reader could not tell the patches from the stain).
    from hematovision.explain.overlay import overlay_signed

    image = read_image(next(iter(sorted((PBC / "basophil").iterdir()))))
    luma = image.astype(np.float64) @ [0.299, 0.587, 0.114]
    nucleus = luma <= np.percentile(luma, 8)
    for method in ("lime", "shap"):
        colormap = get_explainer(method).signed_colormap
        for sign in (1.0, -1.0):
            shown = overlay_signed(image, np.full(luma.shape, sign, np.float32), 0.5, colormap)
            change = (shown.astype(np.float64) @ [0.299, 0.587, 0.114] - luma)[nucleus]
            assert change.mean() > 30, (method, sign, change.mean())
