"""Morphology atlas and quiz, for educators and students."""

import random

import streamlit as st

from dashboard.results import gradcam_view, model_key, predict
from dashboard.sidebar import log_prediction, review_threshold, show_sidebar
from dashboard.state import examples_folders, make_cell, try_decode
from hematovision.errors import HematoVisionError
from hematovision.model.prediction import UNFAMILIAR
from hematovision.report.atlas import REFERENCE, common_name, confusions, notes_for
from hematovision.report.examples import example_cells, held_out
from hematovision.report.model_report import load_evaluation

st.set_page_config(page_title="Atlas · HematoVision", page_icon="📖", layout="wide")
classifier = show_sidebar()
st.title("Morphology atlas")
evaluation = load_evaluation(classifier.model_dir)
folders = examples_folders()
atlas_tab, quiz_tab = st.tabs(["Atlas", "Quiz"])

with atlas_tab:
    name = st.selectbox("Class", classifier.classes, key="atlas_class",
                        format_func=lambda n: notes_for(n).title if notes_for(n) else n)
    notes = notes_for(name)
    if notes is None:
        st.info(f"No teaching notes for '{name}' yet.")
    else:
        st.subheader(notes.title)
        st.markdown("**What to look for**\n" + "\n".join(f"- {p}" for p in notes.look_for))
        st.markdown(f"**Normal share (adults):** {notes.normal_share}")
        st.markdown(f"**Often confused with:** {notes.often_confused_with}")
        if evaluation is not None:
            called_as, taken_for = confusions(evaluation["metrics"]["confusion_matrix"],
                                              evaluation["classes"], name)
            spelled = common_name(name).lower()
            said = ", ".join(f"{100 * s:.1f} % {common_name(c).lower()}" for c, s in called_as)
            st.markdown(f"**This model**, on its held-out test cells: of the true {spelled} "
                        + (f"cells it called {said}." if said else "cells it called none "
                           "anything else."))
            if taken_for:
                st.markdown(f"Of the cells it called {spelled}, " + ", ".join(
                    f"{100 * s:.1f} % were {common_name(c).lower()}" for c, s in taken_for)
                    + ".")
        st.caption(REFERENCE)
    if folders:
        names = ", ".join(folder.name for folder in folders)
        st.markdown("**Examples with the model's Grad-CAM** (from " + (
            f"{names}: the held-out test split of each laboratory, in turn)"
            if held_out(classifier, folders) else f"{names}, not the model's own test split)"))
        columns = st.columns(4)
        try:
            examples = example_cells(classifier, folders, name, 4, seed=0)
        except HematoVisionError:
            examples = []
            st.caption(f"The dataset folder holds no example cells of {name}.")
        for column, path in zip(columns, examples):
            cell = make_cell(path.name, path.read_bytes())
            image, _ = try_decode(cell)
            prediction = predict(classifier, cell.sha256, image, review_threshold())
            log_prediction(classifier, cell.sha256, prediction)
            index = classifier.classes.index(prediction.label)
            column.image(image, width="stretch", alt=f"example {name} cell")
            # The headline carries Review and Unfamiliar, which a bare label would hide.
            column.image(gradcam_view(classifier, cell.sha256, image, index), width="stretch",
                         caption=f"model: {prediction.headline}",
                         alt=f"Grad-CAM over the example {name} cell")

with quiz_tab:
    if not folders:
        st.info("The quiz needs the dataset folder (HEMATOVISION_EXAMPLES).")
        st.stop()
    score = st.session_state.setdefault("quiz_score", {"right": 0, "asked": 0})

    def next_cell() -> None:
        # Only classes the folder has cells of: another lab's set may lack some.
        for label in random.sample(classifier.classes, len(classifier.classes)):
            try:
                # Any of the laboratories: the quiz shows other cameras too.
                path = example_cells(classifier, random.sample(folders, len(folders)),
                                     label, 1)[0]
            except HematoVisionError:
                continue
            st.session_state["quiz_cell"] = (make_cell(path.name, path.read_bytes()), label,
                                             model_key(classifier))
            st.session_state["quiz_answered"] = None
            return
        st.session_state.pop("quiz_cell", None)

    # A question asked under another model may have an answer this one cannot give.
    if st.session_state.get("quiz_cell", (None, None, None))[2] != model_key(classifier):
        next_cell()
    if "quiz_cell" not in st.session_state:
        st.info("The dataset folder holds no cells of this model's classes.")
        st.stop()
    cell, truth, _ = st.session_state["quiz_cell"]
    image, _ = try_decode(cell)
    answered = st.session_state.get("quiz_answered")
    left, right = st.columns([1, 2])
    left.image(image, width="stretch", alt="quiz cell, unlabelled")
    # Once checked, the answer stands: the choice is locked until the next cell.
    # Spelled out as the atlas spells them ("Immature granulocyte", never "ig").
    guess = right.radio("What is this cell?", classifier.classes, key=f"quiz_guess_{cell.sha256}",
                        index=None, horizontal=True, disabled=answered is not None,
                        format_func=common_name)
    if answered is None and right.button("Check", key="quiz_check", disabled=guess is None):
        st.session_state["quiz_answered"] = guess
        score["asked"] += 1
        score["right"] += int(guess == truth)
        st.rerun()
    if answered is not None:
        prediction = predict(classifier, cell.sha256, image, review_threshold())
        log_prediction(classifier, cell.sha256, prediction)
        if answered == truth:
            right.success(f"Right! It is **{common_name(truth).lower()}**.")
        else:
            right.error(f"Not quite: you said {common_name(answered).lower()}. It is "
                        f"**{common_name(truth).lower()}**.")
        right.write(f"The model said **{common_name(prediction.label).lower()}** "
                    f"({100 * prediction.confidence:.0f} %, {prediction.status})"
                    + (f": unreliable here, {prediction.unfamiliar_reason}."
                       if prediction.status == UNFAMILIAR else "."))
        index = classifier.classes.index(prediction.label)
        right.image(gradcam_view(classifier, cell.sha256, image, index),
                    caption="Grad-CAM for the model's answer, on the part it saw (red: "
                            "strongest evidence)",
                    alt=f"Grad-CAM for the model's answer, {prediction.label}",
                    width=260)
        tip = notes_for(truth)
        if tip:
            right.markdown("**Look for:** " + " ".join(tip.look_for[:2]))
    score_column, next_column = right.columns(2)
    score_column.metric("Score", f"{score['right']} / {score['asked']}")
    next_column.button("Next cell", key="quiz_next", on_click=next_cell,
                       type="primary" if answered is not None else "secondary")
