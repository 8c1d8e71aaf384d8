"""The sidebar every page shares: the pages, model choice and the review threshold."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.state import current_classifier, model_choices, own_models
from hematovision.model.classifier import Classifier
from hematovision.model.prediction import Prediction
from hematovision.report.audit import audit_csv, audit_entry
from hematovision.report.batch import CSV_ENCODING

# Every page in the order and under the name the sidebar shows. st.navigation could name
# them too, but with a pages/ folder Streamlit skips it when a visitor opens a page's own
# address first, and the sidebar would then show its file names.
PAGES = (
    ("streamlit_app.py", "Home", ":material/home:"),
    ("pages/1_Classify.py", "Classify", ":material/biotech:"),
    ("pages/2_Explain.py", "Explain", ":material/map:"),
    ("pages/3_Batch.py", "Batch", ":material/table_chart:"),
    ("pages/4_Model_Audit.py", "Model audit", ":material/fact_check:"),
    ("pages/5_Atlas.py", "Atlas and quiz", ":material/menu_book:"),
    ("pages/6_Adapt.py", "Adapt to your lab", ":material/tune:"),
)


def _labels(choices: list[Path]) -> list[str]:
    """A label per model folder: its name, and where it lies when another has that name
    (picking the second of two equal names loaded the first)."""
    names = [path.name for path in choices]
    own = set(own_models())
    return [f"{name} (yours, this session)" if path in own
            else name if names.count(name) == 1 else f"{name} ({path.parent})"
            for name, path in zip(names, choices)]


def show_sidebar() -> Classifier:
    with st.sidebar.container(key="pages"):
        for path, title, icon in PAGES:
            st.page_link(path, label=title, icon=icon)
        st.divider()
    choices = model_choices()
    if len(choices) > 1:
        names = _labels(choices)
        current = st.session_state.get("model_dir")
        index = next((i for i, p in enumerate(choices) if str(p) == current), 0)
        picked = st.sidebar.selectbox("Model", names, index=index, key="model_name")
        st.session_state["model_dir"] = str(choices[names.index(picked)])
    else:
        st.session_state.setdefault("model_dir", str(choices[0]))
    classifier = current_classifier()
    st.sidebar.caption(f"Model **{classifier.name}** · {len(classifier.classes)} classes · "
                       f"runtime {classifier.runtime}")
    # Widgets belong to one page; the chosen threshold lives in a plain key so that it
    # follows the user from page to page, and a new model brings its own. The slider is
    # set from it on every run, so what it shows is always what the pages use.
    if st.session_state.get("threshold_model") != classifier.name:
        st.session_state["threshold"] = float(classifier.card.config.review_threshold)
        st.session_state["threshold_model"] = classifier.name
    st.session_state["threshold_widget"] = st.session_state["threshold"]

    def keep_threshold() -> None:
        st.session_state["threshold"] = st.session_state["threshold_widget"]

    config = classifier.card.config
    st.sidebar.slider(
        "Review below this probability", 0.0, 1.0,
        step=0.01, key="threshold_widget", on_change=keep_threshold,
        help="Cells whose top probability is lower are marked Review instead of trusted, as "
             "analysers mark cells 'unidentified'. The default "
             f"({config.review_threshold:.2f}) comes from the model card"
             + (f": {config.review_rule}." if config.review_rule else "."))
    # Pages log their predictions after the sidebar is drawn; the button sits in a slot
    # that each new entry redraws, so its count is never one prediction behind.
    st.session_state["audit_slot"] = st.sidebar.empty()
    _show_audit_button()
    return classifier


def log_prediction(classifier: Classifier, image_sha256: str, prediction: Prediction) -> None:
    """Add a prediction to this session's audit log, once per image, model and threshold."""
    key = (image_sha256, classifier.model_sha256, prediction.review_threshold)
    logged = st.session_state.setdefault("audit_keys", set())
    if key not in logged:
        logged.add(key)
        st.session_state.setdefault("audit", []).append(
            audit_entry(classifier, image_sha256, prediction))
        _show_audit_button()


def _show_audit_button() -> None:
    entries = st.session_state.get("audit", [])
    slot = st.session_state.get("audit_slot")
    if not entries or slot is None:
        return
    count = len(entries)
    slot.download_button(
        f"Audit log ({count} prediction{'' if count == 1 else 's'}, CSV)",
        # Built when clicked, not on every redraw: a batch logs hundreds of entries.
        lambda: audit_csv(entries).encode(CSV_ENCODING), file_name="hematovision_audit.csv",
        mime="text/csv", key=f"download_audit_{count}",
        help="Every prediction shown in this session: time, image SHA-256 (never the "
             "image), model and its file hash, probabilities and flag.")


def review_threshold() -> float:
    return float(st.session_state["threshold"])
