"""The probability chart says what the Classify page promises: sorted bars, the answer
highlighted, exact values on hover, the Review threshold drawn where the user set it."""

from __future__ import annotations

from hematovision.model.prediction import Prediction
from hematovision.report.charts import HIGHLIGHT, OTHER, probability_bars

CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte")


def _prediction(threshold: float) -> Prediction:
    probabilities = (0.05, 0.15, 0.7, 0.1)
    return Prediction("lymphocyte", 0.7, probabilities, CLASSES, threshold)


def test_bars_are_sorted_with_the_answer_highlighted():
    bar = probability_bars(_prediction(0.5)).data[0]
    assert list(bar.y) == ["basophil", "monocyte", "eosinophil", "lymphocyte"]  # top last
    assert list(bar.x) == sorted(bar.x)
    assert list(bar.marker.color) == [OTHER, OTHER, OTHER, HIGHLIGHT]
    assert list(bar.text)[-1] == "70.0 %"
    # The answer's value sits inside its long bar, the small ones' after theirs.
    assert list(bar.textposition) == ["outside", "outside", "outside", "inside"]
    assert "%{x:.4f}" in bar.hovertemplate


def test_the_review_line_follows_the_threshold():
    for threshold in (0.35, 0.9):
        layout = probability_bars(_prediction(threshold), height=220).layout
        (line,) = layout.shapes
        assert line.x0 == line.x1 == threshold and line.yref == "paper"
        label = layout.annotations[0]
        assert label.text == f"Review < {threshold:.0%}" and label.y == 1  # above the bars
        assert layout.height == 220


def test_the_colour_key_runs_from_no_evidence_to_strong_evidence():
    import numpy as np

    from hematovision.explain.overlay import colorize, colour_scale

    plain = colour_scale("jet", width=100, height=5)
    assert plain.shape == (5, 100, 3) and plain.dtype == np.uint8
    assert (plain[0, 0] == colorize(np.zeros((1, 1)), "jet")[0, 0]).all()
    assert (plain[0, -1] == colorize(np.ones((1, 1)), "jet")[0, -1]).all()
    signed = colour_scale("RdBu_r", signed=True, width=101, height=5).astype(int)
    middle, against, evidence = signed[0, 50], signed[0, 0], signed[0, -1]
    assert (middle == 200).all()  # neutral: the underlying grey, as on the cell
    assert evidence[0] > evidence[2] and against[2] > against[0]  # red for, blue against


def test_a_cards_headline_names_the_answer_and_its_flag():
    from dataclasses import replace

    assert _prediction(0.5).headline == "lymphocyte 70.0 %"
    assert _prediction(0.9).headline == "lymphocyte 70.0 % · Review"
    # An Unfamiliar image's class means little: the headline leaves it out.
    unfamiliar = replace(_prediction(0.5), no_cell="no cell found")
    assert unfamiliar.status == "Unfamiliar" and unfamiliar.headline == "Unfamiliar"
    assert unfamiliar.answer == "lymphocyte 70.0 %"  # still there for the CSV and the PDF


def test_the_coverage_point_is_computed_at_the_threshold_itself():
    from hematovision.report.model_charts import coverage_curve

    # A third of the answers at exactly 1.0, as on the shipped model's test split.
    predictions = ([{"confidence": 1.0, "predicted": "a", "label": "a"}] * 4
                   + [{"confidence": 0.995, "predicted": "a", "label": "b"}] * 8)
    point = coverage_curve(predictions, 1.0).data[1]
    assert point.x[0] == 4 / 12 and point.y[0] == 1.0


def test_the_atlas_says_what_the_cells_called_a_class_truly_were():
    from hematovision.report.atlas import confusions

    # rows: true a, b; columns: called a, b
    called_as, taken_for = confusions([[8, 2], [6, 4]], ["a", "b"], "a")
    assert called_as == [("b", 0.2)]  # of the true a cells
    assert taken_for == [("b", 6 / 14)]  # of the cells called a


def test_the_training_curves_name_the_phases_the_history_holds():
    from hematovision.report.model_charts import training_curves

    def row(phase, epoch):
        return {"phase": phase, "epoch": epoch, "loss": 0.5, "val_loss": 0.6}

    both = training_curves([row(1, 1), row(1, 2), row(2, 1)])
    assert both.layout.xaxis.title.text == "epoch (head training, then fine-tuning)"
    # The shipped model's last run continued an earlier one: fine-tuning epochs only.
    continued = training_curves([row(2, 1), row(2, 2), row(2, 3)])
    assert continued.layout.xaxis.title.text == "fine-tuning epoch"
    assert training_curves([row(1, 1)]).layout.xaxis.title.text == "head-training epoch"


def test_the_value_inside_the_answer_bar_keeps_its_size_in_a_small_chart():
    # Plotly shrinks inside text to the bar's thickness unless told not to: "100.0 %" in
    # the red bar came out at about 8 px (the browser test measures it on the page).
    classes = tuple(f"class {i}" for i in range(8))
    probabilities = (0.93,) + (0.01,) * 7
    figure = probability_bars(Prediction("class 0", 0.93, probabilities, classes, 0.5),
                              height=220)
    bar = figure.data[0]
    assert bar.constraintext == "none"
    assert bar.insidetextfont.size >= 12 and bar.textfont.size >= 12
    # Eight bars share what the margins and the axis leave: each is thicker than its text.
    plot = figure.layout.height - figure.layout.margin.t - figure.layout.margin.b - 40
    assert plot / len(classes) * (1 - figure.layout.bargap) > 1.15 * bar.insidetextfont.size
