"""The Streamlit pages, driven through AppTest on the shipped model."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import make_cell

from .conftest import ROOT

TIMEOUT = 300


def _page(name: str) -> AppTest:
    """A page reached through the app's navigation, as a browser reaches it."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    if name != "streamlit_app.py":
        at.switch_page(name)
    return at


def _cells(examples) -> list:
    return [make_cell(path.name, path.read_bytes()) for path, _ in examples]


def test_home_page_shows_the_model_card(classifier):
    at = _page("streamlit_app.py").run()
    assert not at.exception
    labels = [metric.label for metric in at.metric]
    assert any("Balanced accuracy" in label for label in labels)
    text = " ".join(m.value for m in at.markdown)
    for name in classifier.classes:
        assert name in text


def test_classify_adds_an_example_and_shows_label_and_bars(pbc_examples):
    at = _page("pages/1_Classify.py").run()
    assert not at.exception
    at.selectbox(key="example_class").set_value("eosinophil")
    at.button(key="add_examples").click().run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1
    headline = " ".join(h.value for h in at.subheader)
    assert "eosinophil" in headline  # examples come from the held-out test split


def test_a_bad_upload_shows_an_error_and_the_rest_are_classified(pbc_examples):
    at = _page("pages/1_Classify.py")
    good = _cells(pbc_examples[:3])
    at.session_state["examples"] = [good[0], make_cell("broken.png", b"\x89PNG garbage"),
                                    make_cell("empty.jpg", b""), *good[1:]]
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert any("broken.png" in e for e in errors) and any("empty.jpg" in e for e in errors)
    table = at.dataframe[0].value
    assert len(table) == 3
    expected = [label for _, label in pbc_examples[:3]]
    assert list(table["label"]) == expected


def test_explain_renders_all_four_maps_for_a_chosen_class(pbc_examples, monkeypatch):
    import dashboard.results

    calls = []
    real = dashboard.results.explain

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(dashboard.results, "explain", counting)
    cell = _cells(pbc_examples[:1])[0]
    at = _page("pages/2_Explain.py")
    at.session_state["classified"] = {cell.sha256: cell}
    at.session_state["lime_samples"] = 50
    at.session_state["shap_evaluations"] = 50
    at.run()
    assert not at.exception
    at.selectbox(key=f"class_{cell.sha256}").set_value("monocyte").run()
    assert not at.exception
    assert len(at.get("image")) == 5  # the cell and four maps
    assert "monocyte" in " ".join(m.value for m in at.markdown)
    assert len(at.get("download_button")) == 1
    computed = len(calls)
    at.slider(key="opacity").set_value(0.8).run()
    assert not at.exception
    assert len(calls) == computed  # moving the slider recomputes nothing


def test_explain_without_cells_points_to_classify():
    at = _page("pages/2_Explain.py").run()
    assert not at.exception
    assert at.info and "Classify" in at.info[0].value


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "pages").glob("*.py")))
def test_every_page_runs(page):
    at = _page(f"pages/{page}").run()
    assert not at.exception


def test_batch_page_classifies_a_folder_and_lists_the_broken_file(pbc_examples, tmp_path):
    import shutil

    for path, _ in pbc_examples[:4]:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "cut.jpg").write_bytes(pbc_examples[0][0].read_bytes()[:400])
    at = _page("pages/3_Batch.py").run()
    assert not at.exception
    at.text_input(key="batch_folder").input(str(tmp_path))
    at.button(key="run_batch").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 5
    assert (table["status"] == "unreadable").sum() == 1
    assert table["thumbnail"].notna().sum() == 4  # a thumbnail for every readable cell
    assert "truncated" in table.loc[table["status"] == "unreadable", "error"].iloc[0].lower()
    assert len(at.get("plotly_chart")) == 1
    assert at.session_state["audit"]  # every shown prediction is in the audit log
    at.button(key="make_pdf").click().run()
    assert not at.exception
    assert at.session_state["batch_pdf"][:4] == b"%PDF"


def test_audit_page_reads_the_evaluation_and_shows_the_gallery():
    at = _page("pages/4_Model_Audit.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 6  # confusion, reliability, coverage, 2 curves, deletion
    assert len(at.get("image")) >= 6  # the gallery, with Grad-CAM overlays
    checks = [df.value for df in at.dataframe if "method" in df.value.columns]
    assert checks and {"gradcam", "lime", "shap", "random"} <= set(checks[0]["method"])
    assert any(m.value.startswith("**gradcam**") for m in at.markdown)  # a sentence per method
    at.toggle(key="normalise_confusion").set_value(True).run()
    assert not at.exception


def test_quiz_answer_path_scores_and_reveals_the_model(classifier):
    at = _page("pages/5_Atlas.py").run()
    assert not at.exception
    cell, truth = at.session_state["quiz_cell"]
    at.radio(key=f"quiz_guess_{cell.sha256}").set_value(truth).run()
    at.button(key="quiz_check").click().run()
    assert not at.exception
    assert at.session_state["quiz_score"] == {"right": 1, "asked": 1}
    assert any(truth in s.value for s in at.success)
    assert any("The model said" in m.value for m in at.markdown)
