"""The model audit page by audience: a reviewer's answers first, a developer's detail apart,
a per-source table for a model trained on several sources, and figures that fit."""

from __future__ import annotations

import pytest

from hematovision.model.card import load_card
from hematovision.report.model_charts import RELIABILITY_MARKER, reliability_diagram
from hematovision.report.model_report import (
    GLOSSARY,
    audit_answers,
    checks_table,
    load_evaluation,
    load_explanation_checks,
    load_external_evaluations,
    source_rows,
    source_test_rows,
)

from .conftest import ROOT, SHIPPED_MODEL
from .test_browser import browser, server  # noqa: F401 (fixtures)
from .test_dashboard import (
    _checked_against_pbc_lite0,  # noqa: F401 (autouse fixture)
    _linked_model,
    _page,
)

OUTPUT = ROOT / "test-output"

QUESTIONS = ["How often is it right?", "Where does it err?", "How sure is it?",
             "On which labs?", "Can the maps be trusted?"]


def test_a_reviewer_gets_five_answers_each_with_a_plain_reading():
    evaluation = load_evaluation(SHIPPED_MODEL)
    answers = audit_answers(evaluation, load_external_evaluations(SHIPPED_MODEL),
                            load_explanation_checks(SHIPPED_MODEL))
    assert [a["question"] for a in answers] == QUESTIONS
    assert all(0 < len(a["answer"]) <= 9 and a["reading"].endswith(".") for a in answers)
    right = answers[0]
    assert f"{100 * evaluation['metrics']['balanced_accuracy']:.1f} %" == right["answer"]
    assert "zheng2018_d2" in answers[3]["reading"]
    # Classes spelled out as the atlas spells them (the shipped model's commonest slip is
    # a neutrophil called an immature granulocyte).
    assert " ig " not in answers[1]["reading"] and "immature granulocyte" in answers[1]["reading"]


@pytest.mark.parametrize("externals,checks,lab,maps", [
    ([], None, "1 lab", "–"),
])
def test_without_other_labs_or_checks_the_answers_say_unknown(externals, checks, lab, maps):
    answers = audit_answers(load_evaluation(SHIPPED_MODEL), externals, checks)
    assert answers[3]["answer"] == lab and answers[4]["answer"] == maps


def test_the_glossary_explains_every_term_the_audit_uses():
    terms = " ".join(GLOSSARY).lower()
    for term in ("balanced accuracy", "ece", "deletion", "insertion", "pointing game",
                 "randomisation"):
        assert term in terms


def _fits_1280_pixels(rows: list[dict]) -> bool:
    # 1,280 px less the sidebar (336) and the page's padding (2 × 80) leaves 784 px; a grid
    # column needs about 7.5 px per character of its widest entry plus 20 px of padding.
    widths = [7.5 * max(len(str(column)), *(len(str(row[column])) for row in rows)) + 20
              for column in rows[0]]
    return sum(widths) <= 784


def test_the_maps_table_has_short_headers():
    # It was cut off at 1,280 px ("rank corr. with a scra…"); the page now shows it as a
    # plain table, whose headers wrap, and the headers are short besides.
    rows = checks_table(load_explanation_checks(SHIPPED_MODEL), {"gradcam": "Grad-CAM"})
    assert max(len(column) for column in rows[0]) <= 17


def test_reliability_markers_are_not_clipped_and_the_legend_is_below_the_plot():
    metrics = load_evaluation(SHIPPED_MODEL)["metrics"]
    figure = reliability_diagram(metrics["reliability_before"], metrics["reliability_after"],
                                 metrics["ece_before_temperature"],
                                 metrics["ece_after_temperature"])
    points = [trace for trace in figure.data if trace.mode == "lines+markers"]
    assert points and all(trace.cliponaxis is False for trace in points)
    # The axes reach past the largest marker's radius (in data units of a ~400 px plot).
    radius = (5 + RELIABILITY_MARKER) / 2 / 400
    assert figure.layout.xaxis.range[1] >= max(max(t.x) for t in points) + radius
    assert figure.layout.yaxis.range[1] >= max(max(t.y) for t in points) + radius
    assert figure.layout.margin.r >= (5 + RELIABILITY_MARKER) / 2
    legend = figure.layout.legend
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"


def test_the_first_screen_answers_and_the_training_detail_is_apart():
    at = _page("pages/4_Model_Audit.py").run()
    assert not at.exception
    assert [m.label for m in at.metric][:5] == QUESTIONS
    titles = [e.label for e in at.expander]
    assert "What the terms mean" in titles
    developer = next(e for e in at.expander if e.label.startswith("For model developers"))
    inside = [m.value for m in developer.markdown]
    assert any("| setting | value |" in text for text in inside)
    assert len(developer.get("plotly_chart")) == 2  # loss and accuracy curves
    # Nothing about training runs or settings outside it.
    outside = [m.value for m in at.markdown if m.value not in inside]
    assert not any("| setting | value |" in text for text in outside)
    assert not any(h.value == "Training" for h in at.header)
    # Grids keep their width and scroll; every one on the page fits 1,280 px. The small
    # tables (maps, laboratories) are plain tables, whose headers wrap.
    assert all(_fits_1280_pixels(df.value.to_dict("records")) for df in at.dataframe)
    assert any("method" in t.value.columns for t in at.table)


SOURCE_TESTS = {
    "pbc": {"n": 1910, "accuracy": 0.98, "balanced_accuracy": 0.985,
            "balanced_accuracy_ci95": [0.98, 0.99]},
    "raabin_wbc": {"n": 700, "accuracy": 0.91, "balanced_accuracy": 0.88,
                   "balanced_accuracy_ci95": [0.85, 0.91]},
}
SOURCES = [{"name": "pbc", "root": "../shared/datasets/pbc",
            "counts": {"train": {"basophil": 600}, "val": {"basophil": 130},
                       "test": {"basophil": 135}}},
           {"name": "raabin_wbc", "root": "../shared/datasets/raabin_wbc",
            "counts": {"train": {"basophil": 200}, "val": {"basophil": 40},
                       "test": {"basophil": 41}}}]


def test_per_source_rows():
    rows = source_test_rows(SOURCE_TESTS)
    assert [r["source"] for r in rows] == ["pbc", "raabin_wbc"]
    assert rows[1]["balanced accuracy"] == "88.0 %" and rows[1]["test cells"] == 700
    assert source_rows({"sources": SOURCES})[1] == {
        "source": "raabin_wbc", "folder": "../shared/datasets/raabin_wbc",
        "train": 200, "val": 40, "test": 41}


def test_a_model_trained_on_two_sources_shows_a_test_table_per_source(tmp_path, monkeypatch):
    data = {**load_card(SHIPPED_MODEL).results.data, "sources": SOURCES}
    model = _linked_model(tmp_path / "models" / "two-sources",
                          results={"source_tests": SOURCE_TESTS, "data": data})
    monkeypatch.setenv("HEMATOVISION_MODEL", str(model))
    at = _page("pages/4_Model_Audit.py").run()
    assert not at.exception
    tables = [t.value for t in at.table]
    per_source = next(t for t in tables if "test cells" in t.columns)
    assert list(per_source["source"]) == ["pbc", "raabin_wbc"]
    assert any("folder" in t.columns and len(t) == 2 for t in tables)


def test_in_a_1280_pixel_browser_the_answers_are_on_the_first_screen_and_nothing_is_cut(
        server, browser):  # noqa: F811 (the fixtures imported above)
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server}/Model_Audit")
    expect(page.get_by_text("How often is it right?", exact=True)).to_be_visible(
        timeout=120_000)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
    for question in QUESTIONS:
        label = page.get_by_test_id("stMetricLabel").get_by_text(question, exact=True)
        box = label.bounding_box()
        assert box and box["y"] + box["height"] <= 800, question
    # No table or grid is wider than the column it sits in (that is what cut the maps
    # table off at "rank corr. with a scra…").
    # A grid scrolls inside its ".dvn-scroller"; a plain table would spill out of its box.
    boxes = '[data-testid="stTable"], [data-testid="stDataFrame"] .dvn-scroller'
    overflowing = page.evaluate("""boxes => [...document.querySelectorAll(boxes)]
        .filter(e => e.scrollWidth > e.clientWidth + 1 ||
                     e.getBoundingClientRect().right > document.documentElement.clientWidth)
        .map(e => [e.className, e.scrollWidth, e.clientWidth, e.innerText.slice(0, 60)])""",
                                boxes)
    assert page.locator('[data-testid="stDataFrame"] .dvn-scroller').count() >= 1
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "model-audit-1280.png"), full_page=True)
    for number, chart in enumerate(page.locator(".js-plotly-plot").all()[:4]):
        chart.scroll_into_view_if_needed()
        chart.screenshot(path=str(OUTPUT / f"model-audit-chart-{number}.png"))
    # The last table on show (the developers' tables stay folded away).
    page.locator('[data-testid="stTable"]:visible').last.screenshot(
        path=str(OUTPUT / "model-audit-last-table.png"))
    assert overflowing == []
    page.close()


def test_the_default_model_shows_the_leave_one_source_out_table(monkeypatch):
    from hematovision.model.store import default_model_dir

    monkeypatch.delenv("HEMATOVISION_MODEL", raising=False)
    at = _page("pages/4_Model_Audit.py").run()
    assert not at.exception
    table = next(t.value for t in at.table if "seen in training" in t.value.columns)
    card = load_card(default_model_dir())
    assert len(table) == len(card.results.source_benchmark["rows"])
    never = table[table["seen in training"] == "never"]
    assert {"zheng2018_d2", "kaggle_bloodcells_sample"} <= set(never["data"])
