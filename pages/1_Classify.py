"""Classify: upload cells or pick examples; label, calibrated probability, Review flag."""

import streamlit as st

from dashboard.results import model_view, predict
from dashboard.sidebar import log_prediction, review_threshold, show_sidebar
from dashboard.state import (
    IMAGE_TYPES,
    distinct_cells,
    examples_folders,
    make_cell,
    remembered_uploads,
    try_decode,
    warm_up_explanations,
)
from dashboard.tables import COLUMN_CONFIG, answer_columns
from hematovision.errors import HematoVisionError
from hematovision.model.prediction import REVIEW, UNFAMILIAR
from hematovision.report.charts import probability_bars
from hematovision.report.examples import example_cells, example_classes

st.set_page_config(page_title="Classify · HematoVision", page_icon="🔬", layout="wide")
if st.session_state.pop("open_explain", False):
    # Set by the Explain button's callback: switch before this page draws its cells again
    # (a second of charts, measured in benchmarks/explain_browser.py).
    st.switch_page("pages/2_Explain.py")
classifier = show_sidebar()
st.title("Classify cells")

uploaded = remembered_uploads(
    "Single-cell images (JPEG, PNG, BMP, TIFF, GIF, WebP)", "uploads",
    lambda kept: "Cells uploaded before you opened another page are kept here.",
    type=IMAGE_TYPES)
st.session_state.setdefault("examples", [])
folders = examples_folders()
if folders:
    with st.expander("Or add example cells from the dataset folder"):
        left, middle, right = st.columns([2, 1, 1])
        classes = example_classes(folders)
        if not classes:
            st.caption(f"{', '.join(map(str, folders))}: no class folders of images "
                       "directly inside.")
        label = left.selectbox("Class", classes, key="example_class")
        count = middle.number_input("How many", 1, 24, 1, key="example_count")
        if right.button("Add examples", key="add_examples", disabled=not classes):
            # Seeded by how many examples this session holds: a lesson can be repeated
            # with the same cells, and each further click still brings new ones.
            held = st.session_state["examples"]
            try:
                paths = example_cells(classifier, folders, label, int(count), seed=len(held),
                                      shown={cell.name for cell in held})
            except HematoVisionError as error:
                st.warning(f"No examples added: {error}.")
                paths = []
            held += [make_cell(path.name, path.read_bytes()) for path in paths]
        if st.session_state["examples"] and st.button("Remove examples", key="clear_examples"):
            st.session_state["examples"] = []
            st.rerun()

cells, copies = distinct_cells(
    uploaded + st.session_state["examples"])
if not cells:
    st.session_state["classified"] = {}  # Explain offers only what is on this page
    st.info("Upload one or more cell images, or add example cells, to classify them.")
    st.stop()
for copy, original in copies:
    st.caption(f"{copy.name} is the same image as {original.name}; it is shown once.")

threshold = review_threshold()
results = []
for cell in cells:
    image, error = try_decode(cell)
    if error:
        st.error(f"Could not classify {error}")  # the message starts with the file name
        continue
    prediction = predict(classifier, cell.sha256, image, threshold)
    log_prediction(classifier, cell.sha256, prediction)
    results.append((cell, image, prediction))
st.session_state["classified"] = {cell.sha256: cell for cell, _, _ in results}


def open_in_explain(sha256: str) -> None:
    """The Explain button's callback: runs before the rerun, which then switches pages."""
    st.session_state["explain_sha"] = sha256
    st.session_state["open_explain"] = True


def show_answer(container, prediction, key: str, height: int | None = None) -> None:
    """Label, flags and bars; for an Unfamiliar image the bars only on request."""
    bars = {"height": height} if height else {}
    if prediction.status == UNFAMILIAR:
        container.error(f"Unfamiliar: {prediction.unfamiliar_reason}. The model's answer "
                        "means little here.")
        if container.toggle("Show the probabilities anyway (unreliable)", key=f"show_{key}"):
            container.caption(f"Unreliable: {prediction.answer}")
            container.plotly_chart(probability_bars(prediction, **bars), width="stretch",
                                   key=f"bars_{key}")
        return
    if prediction.status == REVIEW:
        container.warning(f"Review: the top probability is below {threshold:.0%}.")
    container.plotly_chart(probability_bars(prediction, **bars), width="stretch",
                           key=f"bars_{key}")


if len(results) == 1:
    cell, image, prediction = results[0]
    left, right = st.columns([1, 2])
    left.image(image, caption=cell.name, width="stretch", alt=f"uploaded cell {cell.name}")
    view, how = model_view(classifier, cell.sha256, image)
    left.image(view, caption=f"What the model classified ({how})", width=160,
               alt=f"the part of {cell.name} the model classified")
    right.subheader(prediction.headline)
    show_answer(right, prediction, "single")
    if prediction.distance is not None:
        distance = (f"Familiarity distance {prediction.distance:.2f} (familiar up to "
                    f"{prediction.distance_threshold:.2f})")
        if (prediction.status == UNFAMILIAR
                and prediction.distance <= prediction.distance_threshold):
            # A blank or unstained picture can sit close to the training cells' features;
            # the distance alone would read as "familiar" beside the flag.
            distance += (": close enough alone, but the image is Unfamiliar for the reason "
                         "above")
        right.caption(distance + ".")
    right.button("Explain this prediction", key=f"explain_{cell.sha256}",
                 on_click=open_in_explain, args=(cell.sha256,))
elif results:
    table = [{"cell": cell.name, **answer_columns(p), "status": p.status,
              "distance": None if p.distance is None else round(p.distance, 2),
              "why flagged": p.unfamiliar_reason or ""} for cell, _, p in results]
    st.dataframe(table, width="stretch", hide_index=True, column_config=COLUMN_CONFIG)
    per_row = 4
    for start in range(0, len(results), per_row):
        columns = st.columns(per_row)
        for column, (cell, image, prediction) in zip(columns, results[start:start + per_row]):
            with column.container(border=True):
                st.image(image, caption=cell.name, width="stretch",
                         alt=f"cell {cell.name}, {prediction.headline}")
                st.markdown(f"**{prediction.headline}**")
                show_answer(st, prediction, cell.sha256, height=220)
                if st.button("Explain", key=f"explain_{cell.sha256}"):
                    open_in_explain(cell.sha256)

warm_up_explanations(str(classifier.model_dir), classifier)
