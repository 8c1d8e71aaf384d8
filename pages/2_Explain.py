"""Explain: the cell beside Grad-CAM, Grad-CAM++, LIME and SHAP for any chosen class."""

import streamlit as st

from dashboard.results import explanation, model_key, model_view, predict
from dashboard.sidebar import review_threshold, show_sidebar
from dashboard.state import try_decode
from hematovision.explain import available_methods
from hematovision.explain.overlay import (
    COLORMAPS,
    colour_scale,
    compose_panel,
    greyed,
    overlay,
    overlay_signed,
    to_png,
)
from hematovision.model.prediction import UNFAMILIAR
from hematovision.report.model_report import check_cautions, load_explanation_checks

st.set_page_config(page_title="Explain · HematoVision", page_icon="🗺️", layout="wide")
classifier = show_sidebar()
st.title("Explain a prediction")

cells = st.session_state.get("classified", {})
if not cells:
    st.info("Classify a cell first; then open it here.")
    st.page_link("pages/1_Classify.py", label="Go to Classify", icon=":material/biotech:")
    st.stop()

shas = list(cells)
chosen = st.session_state.get("explain_sha")
index = shas.index(chosen) if chosen in shas else 0
sha = st.selectbox("Cell", shas, index=index, format_func=lambda s: cells[s].name,
                   key="explain_cell")
st.session_state["explain_sha"] = sha
image, error = try_decode(cells[sha])
if error:
    st.error(error)
    st.stop()
prediction = predict(classifier, sha, image, review_threshold())

controls = st.columns([2, 2, 1])
# Keyed by model too: after a switch in the sidebar the choice starts again from the new
# model's answer, instead of explaining a class nobody picked for this model.
class_name = controls[0].selectbox(
    "Explain the class", classifier.classes, index=classifier.classes.index(prediction.label),
    key=f"class_{model_key(classifier)}_{sha}",
    help="Any class can be asked about: 'why not monocyte?'")
opacity = controls[1].slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
colormap = controls[2].selectbox(
    "Colormap of Grad-CAM and Grad-CAM++", COLORMAPS, key="colormap",
    help="LIME (green for, pink against the class) and SHAP (orange for, blue against) "
         "keep their own colours: their maps have two signs.")
methods = available_methods()
tunable = [method for method in methods if method.settings]
settings = {}
with st.expander("Method settings"):
    for column, method in zip(st.columns(len(tunable)), tunable):
        settings[method.name] = {
            setting.name: int(column.number_input(
                setting.label, setting.minimum, setting.maximum, method.defaults[setting.name],
                setting.step, key=f"{method.name}_{setting.name}", help=setting.help or None))
            for setting in method.settings}

class_index = classifier.classes.index(class_name)
probability = prediction.probabilities[class_index]
st.markdown(f"Predicted **{prediction.answer}** ({prediction.status}); "
            f"explaining **{class_name}** ({100 * probability:.1f} %).")
if prediction.status == UNFAMILIAR:
    st.error(f"Unfamiliar image: {prediction.unfamiliar_reason}. These maps show what the "
             "model looked at, but its answer is not to be trusted for this image.")

# The model saw only the square around the cell (the cell about half of it, padded with
# slide background where it leaves the picture); on the whole picture the maps stop at
# that square's edge, which reads as part of the map.
VIEWS = {"model": "the cell as the model saw it", "whole": "the whole picture"}
view = st.radio("Show the maps on", list(VIEWS), format_func=VIEWS.get, horizontal=True,
                key="explain_view")
on_model = view == "model"
base = model_view(classifier, sha, image)[0] if on_model else image

cautions = check_cautions(load_explanation_checks(classifier.model_dir))
columns = st.columns(len(methods) + 1)
columns[0].image(base, caption=VIEWS[view], width="stretch", alt=f"{cells[sha].name}, "
                 f"{VIEWS[view]}")
tiles = [(VIEWS[view], base)]
keys = [None]
# Grad-CAM and Grad-CAM++ take a fraction of a second and show at once; LIME and SHAP
# then score the same masked copies of the cell once, behind a progress bar in each column.
for column, method in zip(columns[1:], methods):
    with column:
        bar = st.progress(0.0, text=f"{method.title}…")
        def report(fraction, bar=bar, title=method.title):
            bar.progress(fraction, text=f"{title}…")

        result = explanation(classifier, sha, image, method.name, class_index,
                             settings.get(method.name, {}), progress=report)
        bar.empty()
        if result.signed is not None:
            shown = overlay_signed(base, result.square_signed if on_model else result.signed,
                                   opacity, method.signed_colormap)
        else:
            shown = overlay(base, result.square_heatmap if on_model else result.heatmap,
                            opacity, colormap)
        signed = result.signed is not None
        if result.faint:
            shown = greyed(shown)
        st.image(shown, caption=f"{method.title} ({result.seconds:.2f} s)"
                 + (f" — {result.faint}" if result.faint else ""),
                 alt=f"{method.title} map for {class_name} over the cell",
                 width="stretch")
        scale = colour_scale(method.signed_colormap if signed else colormap, signed)
        key_words = ("against ◂ neutral ▸ for the class" if signed else
                     "none ▸ strong evidence for the class")
        if result.faint:
            scale, key_words = greyed(scale), "no key: too little probability to be evidence"
        st.image(scale, caption=key_words, width="stretch", alt=f"colour key: {key_words}")
        st.caption(method.caption)
        if method.name in cautions:
            st.warning(cautions[method.name])
        with st.expander("How it is computed"):
            st.caption(f"{method.how} ({method.reference})")
        tiles.append((method.title + (" (greyed)" if result.faint else ""), shown))
        keys.append((scale, "no evidence: class below 2 %" if result.faint else
                     "against < neutral > for" if signed else "none > strong evidence"))

# The flag travels with the picture: a saved panel is shown without this page around it.
flag = prediction.status + (", not to be trusted" if prediction.status == UNFAMILIAR else "")
panel = compose_panel(tiles, title=f"{cells[sha].name}: {class_name} ({100 * probability:.1f} %)"
                                   f" — predicted {prediction.answer}, {flag} — "
                                   f"{classifier.name}", keys=keys)
st.download_button("Download the panel (PNG)", to_png(panel), file_name=f"explain_{sha[:12]}.png",
                   mime="image/png", key="download_panel")
