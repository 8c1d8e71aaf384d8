"""Layout slips a new user hit (issue 26), each checked on the figure or the page."""

from __future__ import annotations

import pytest

from hematovision.report.atlas import common_name
from hematovision.report.batch import Differential
from hematovision.report.charts import differential_bars

from .test_dashboard import _page


@pytest.mark.parametrize("name,spelled", [
    ("ig", "Immature granulocyte"), ("neutrophil", "Neutrophil"),
    ("erythroblast", "Erythroblast"), ("platelet", "Platelet"), ("unknown", "unknown"),
])
def test_classes_are_named_as_the_atlas_spells_them(name, spelled):
    assert common_name(name) == spelled


@pytest.mark.data  # the quiz draws its cells from the datasets
def test_the_quiz_offers_and_answers_with_the_names_the_atlas_uses(classifier):
    at = _page("pages/5_Atlas.py").run()
    assert not at.exception
    cell, truth, _ = at.session_state["quiz_cell"]
    guess = at.radio(key=f"quiz_guess_{cell.sha256}")
    assert "Immature granulocyte" in guess.options and "ig" not in guess.options
    wrong = next(name for name in classifier.classes if name != truth)
    guess.set_value(wrong).run()
    at.button(key="quiz_check").click().run()
    assert not at.exception
    said = " ".join(e.value for e in at.error) + " ".join(m.value for m in at.markdown)
    assert f"**{common_name(truth).lower()}**" in said
    assert "**ig**" not in said and " ig." not in said


def _differential(counts: dict[str, int]) -> Differential:
    total = sum(counts.values())
    shares = {name: count / total for name, count in counts.items()}
    return Differential(tuple(counts), counts, shares, 0, 0, total)


@pytest.mark.parametrize("counts", [
    {"lymphocyte": 3, "neutrophil": 7},
    {"lymphocyte": 0, "neutrophil": 40, "monocyte": 1},
    {"neutrophil": 1},  # a share of 100 % whose interval reaches 1.0
])
def test_batch_chart_labels_sit_above_the_interval_whiskers(counts):
    diff = _differential(counts)
    figure = differential_bars(diff)
    bars, labels = figure.data
    assert bars.text is None  # no label on the bar's top, where the whisker runs
    highs = [diff.interval(name)[1] for name in diff.classes]
    assert list(labels.y) == pytest.approx(highs)
    assert labels.mode == "text" and labels.textposition == "top center"
    assert labels.cliponaxis is False and figure.layout.yaxis.range[1] > max(highs)
    assert [text.split(" %")[0] for text in labels.text] == [
        f"{100 * diff.shares[name]:.1f}" for name in diff.classes]
