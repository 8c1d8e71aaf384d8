"""Adapt: teach the model your microscope with a few labelled cells per class."""

import re
from pathlib import Path

import streamlit as st

from dashboard.sidebar import show_sidebar
from dashboard.state import keep_own_model, local_mode, new_own_model_folder, own_models
from hematovision.adapt.adaptation import adapt_from_zip
from hematovision.adapt.tunings import TUNINGS
from hematovision.errors import HematoVisionError
from hematovision.io.archive import zip_folder
from hematovision.model.card_markdown import adaptation_text
from hematovision.model.store import models_root

st.set_page_config(page_title="Adapt · HematoVision", page_icon="🧪", layout="wide")
classifier = show_sidebar()
st.title("Adapt the model to your laboratory")
st.write(
    "Cells from another microscope, stain or camera look different from the training cells, "
    "and the model is then often wrong, and sure of itself. A few labelled cells per class "
    "from your own set-up recover part of that. Upload a **.zip with one folder per "
    f"class** (folder names among: {', '.join(classifier.classes)}). Up to the chosen number "
    "of cells per class (at most half of each class) adapt the model; the rest score the "
    "result, before and after, so the numbers it reports come from cells the adaptation "
    "never saw. The adapted model is saved as a new model; the original stays."
    + ("" if local_mode() else " On this shared server it stays in your session only: "
       "no other visitor sees it, and it is gone when you close the page, so download it."))

archive = st.file_uploader("Labelled cells (.zip of class folders)", type=["zip"],
                           key="adapt_zip")
left, middle, right = st.columns(3)
per_class = left.number_input("Cells per class to adapt on", 2, 50, 10, key="adapt_per_class")
tuning = middle.radio("What to tune", list(TUNINGS), format_func=TUNINGS.get,
                      key="adapt_tuning",
                      help="The last layer moves the boundaries between classes; on the "
                           "other laboratory we could test it did as well as the last block "
                           "or better, with better-calibrated probabilities. "
                           "The last block also changes what the network sees in your cells, "
                           "and the adapted model then no longer flags images far from every "
                           "class.")
measured = adaptation_text(classifier.card, tuning)
if measured:
    st.caption(measured)
default_name = f"{classifier.name}-adapted"
# The proposed name belongs to the model it adapts: after a switch in the sidebar the old
# one would save this model under the other's name.
if "adapt_name" not in st.session_state or st.session_state.get(
        "adapt_name_for") != str(classifier.model_dir):
    st.session_state["adapt_name"] = default_name
    st.session_state["adapt_name_for"] = str(classifier.model_dir)
name = right.text_input("Name of the new model", key="adapt_name")
# Shown before there is anything to adapt on, so the page's next step is visible.
if st.button("Adapt", key="adapt_run", type="primary", disabled=archive is None,
             help="Upload a .zip of class folders first." if archive is None else None):
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or default_name
    # Locally, beside the other models; on a shared server, in this session alone: in the
    # models folder every visitor's sidebar would list it.
    taken = ((models_root() / safe).exists() if local_mode()
             else any(path.name == safe for path in own_models()))
    if taken:
        st.error(f"A model called {safe} already exists; choose another name.")
        st.stop()
    out_dir = models_root() / safe if local_mode() else new_own_model_folder(safe)
    bar = st.progress(0.0, text="Starting…")
    try:
        result, skipped = adapt_from_zip(
            classifier.model_dir, archive.getvalue(), out_dir, int(per_class), tuning=tuning,
            progress=lambda fraction, message: bar.progress(fraction, text=message))
    except HematoVisionError as error:
        st.error(f"Could not adapt: {error}")
        st.stop()
    if not local_mode():
        keep_own_model(out_dir)
    # Drawn again from the top, so that the sidebar, drawn before this button, offers the
    # new model; the result waits in the session for that second pass.
    st.session_state["adapted"] = (safe, result, skipped)
    st.rerun()

if "adapted" in st.session_state:
    safe, result, skipped = st.session_state["adapted"]
    in_use = Path(classifier.model_dir).resolve() == Path(result.out_dir).resolve()
    st.success(f"Saved the adapted model as **{safe}**"
               + ("" if local_mode() else " for this session") + "; "
               + ("it is the model in use now." if in_use else "choose it in the sidebar."))
    if result.out_dir.is_dir():
        st.download_button(
            "Download the adapted model (.zip)", lambda: zip_folder(result.out_dir),
            file_name=f"{safe}.zip", mime="application/zip", key="adapt_download",
            help="The model folder: unpack it into a models folder and start the dashboard "
                 "or the command line on it.")
    st.dataframe([{"": when, "cells scored": row["n"],
                   "accuracy": round(row["accuracy"], 3),
                   "balanced accuracy": round(row["balanced_accuracy"], 3),
                   "calibration error (ECE)": round(row["ece"], 3)}
                  for when, row in (("before", result.before), ("after", result.after))],
                 hide_index=True)
    st.caption("Cells used per class: " + ", ".join(
        f"{c} {n}" for c, n in result.used.items() if n) + ". Held out: " + ", ".join(
        f"{c} {n}" for c, n in result.held_out.items() if n) + ".")
    if skipped:
        with st.expander(f"{len(skipped)} file{'s were' if len(skipped) > 1 else ' was'} "
                         "not used"):
            st.write("\n".join(f"- {why}" for why in skipped))
