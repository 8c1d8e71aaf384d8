"""Batch: many cells at once, the differential count, CSV and PDF downloads."""

from pathlib import Path

import streamlit as st

from dashboard.results import model_key
from dashboard.sidebar import log_prediction, review_threshold, show_sidebar
from dashboard.state import FOLDER_LIMITS, LIMITS, local_mode, remembered_uploads
from dashboard.styles import THUMBNAIL_COLUMNS, thumbnail_captions
from dashboard.tables import COLUMN_CONFIG, answer_columns
from hematovision.errors import HematoVisionError
from hematovision.explain.overlay import thumbnail_uri
from hematovision.report.batch import (
    CSV_ENCODING,
    classify_sources,
    copies_warning,
    differential,
    results_csv,
    sources_from_paths,
    sources_from_upload,
)
from hematovision.report.charts import differential_bars
from hematovision.report.pdf import build_report, gradcam_thumbnails

st.set_page_config(page_title="Batch · HematoVision", page_icon="🧮", layout="wide")
classifier = show_sidebar()
st.title("Batch differential")
st.write("Classify many cells at once. Cells marked **Review** (low confidence) or "
         "**Unfamiliar** (unlike the training cells) are left out of the differential and "
         "counted beside it, as are platelets and erythroblasts, which are not white cells; "
         "the table lists every file, unreadable ones with the reason.")

# No file-type filter: the uploader would drop a wrong file with a passing note, and the
# table promises every file, so ours reads each one and names what is wrong with it.
uploads = remembered_uploads(
    "Cell images or .zip files", "batch_uploads",
    lambda kept: f"Kept for the next run: {len(kept)} file{'s' if len(kept) != 1 else ''} "
                 "uploaded before you opened another page.")
# A folder on the server only when it runs for one user (HEMATOVISION_LOCAL=1): on a
# shared server a typed path would let any visitor read the server's files.
folder = (st.text_input("…or a folder on this computer", key="batch_folder")
          if local_mode() else "")
if not local_mode():
    st.caption("Run on your own computer, the dashboard also reads a folder of images: "
               "start it with HEMATOVISION_LOCAL=1 (see the README).")
clicked = st.button("Classify all", key="run_batch", type="primary")
if clicked:
    sources = []
    try:
        for upload in uploads:
            sources += sources_from_upload(upload.name, upload.data)
        if folder:
            if Path(folder).is_dir():
                sources += sources_from_paths([folder], FOLDER_LIMITS)
            else:
                st.error(f"Folder not found: {folder}")
    except HematoVisionError as error:
        st.error(str(error))
        st.stop()
    if not sources:
        st.warning("Nothing to classify: upload images or a .zip"
                   + (", or give a folder." if local_mode() else "."))
        st.stop()
    st.session_state["batch_sources"] = sources
elif "batch_sources" not in st.session_state:
    st.stop()
sources = st.session_state["batch_sources"]
# The answers belong to the model and threshold that gave them: after a switch in the
# sidebar the same files are classified again, and the old PDF goes with the old answers.
answered_by = (model_key(classifier), review_threshold())
if clicked or st.session_state.get("batch_answered_by") != answered_by:
    bar = st.progress(0.0, text=f"Classifying {len(sources)} files…")
    st.session_state["batch"] = classify_sources(
        classifier, sources, review_threshold(), LIMITS,
        progress=lambda f: bar.progress(f, text="Classifying…"))
    st.session_state["batch_answered_by"] = answered_by
    st.session_state.pop("batch_pdf", None)
    bar.empty()
results = st.session_state["batch"]
for result in results:
    if result.prediction is not None:
        log_prediction(classifier, result.sha256, result.prediction)
diff = differential(results, classifier.classes)
repeated = copies_warning(results)
if repeated:
    st.warning(f"{repeated}.")
left, right = st.columns([2, 3])
with left:
    st.metric("White cells counted", diff.counted)
    st.write(f"Review: **{diff.review}** · Unfamiliar: **{diff.unfamiliar}** · "
             f"unreadable: **{diff.unreadable}** · files: **{diff.total}**")
    if diff.others:
        st.write(f"Not white cells, so not in the differential: {diff.others_text()}.")
right.plotly_chart(differential_bars(diff), width="stretch", key="differential")
right.caption("Whiskers: 95 % interval of each share, from the number of cells counted "
              "alone (a manual 100-cell differential has the same uncertainty)."
              + (f" With {diff.counted} cell{'' if diff.counted == 1 else 's'} counted the "
                 "shares are rough; count at least "
                 "100 for a differential." if diff.counted < 100 else ""))

table = [{"thumbnail": thumbnail_uri(r.thumbnail), "file": r.name,
          **answer_columns(r.prediction),
          "status": r.prediction.status if r.prediction else "unreadable",
          "error": r.error or ""} for r in results]
st.dataframe(table, width="stretch", hide_index=True, row_height=60,
             column_config={**COLUMN_CONFIG,
                            "thumbnail": st.column_config.ImageColumn("cell", width="small")})
with st.expander("Thumbnails"), st.container(key="thumbnails"):
    thumbnail_captions("thumbnails")
    shown = [r for r in results if r.thumbnail is not None]
    columns = st.columns(THUMBNAIL_COLUMNS)
    for i, result in enumerate(shown):
        prediction = result.prediction
        columns[i % THUMBNAIL_COLUMNS].image(
            result.thumbnail, caption="\n".join([result.name, *prediction.headline.split(" · ")]),
            alt=f"{result.name}: {prediction.headline}")

csv_column, pdf_column = st.columns(2)
csv_column.download_button("Download table (CSV)",
                           results_csv(results, classifier).encode(CSV_ENCODING),
                           file_name="hematovision_batch.csv", mime="text/csv",
                           key="download_csv")
if pdf_column.button("Make PDF report (with Grad-CAM)", key="make_pdf"):
    with st.spinner("Computing Grad-CAM maps and writing the report…"):
        maps = gradcam_thumbnails(classifier, sources, results)
        st.session_state["batch_pdf"] = build_report(results, diff, classifier.card,
                                                     classifier.model_sha256, maps)
if "batch_pdf" in st.session_state:
    pdf_column.download_button("Download PDF report", st.session_state["batch_pdf"],
                               file_name="hematovision_report.pdf", mime="application/pdf",
                               key="download_pdf")
