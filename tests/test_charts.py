"""The probability chart says what the Classify page promises: sorted bars, the answer
highlighted, exact values on hover, the Review threshold drawn where the user set it."""

from __future__ import annotations

from hematovision.charts import HIGHLIGHT, OTHER, probability_bars
from hematovision.classifier import Prediction

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
