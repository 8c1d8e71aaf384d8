"""HematoVision — home page: what it is, which model is loaded, how to read the maps.

`streamlit run streamlit_app.py`; the other pages live in pages/."""

import streamlit as st

from dashboard.sidebar import review_threshold, show_sidebar
from hematovision.model.backbones import BACKBONES

st.set_page_config(page_title="HematoVision", page_icon="🩸", layout="wide")
classifier = show_sidebar()
card = classifier.card
config, results = card.config, card.results

st.title("HematoVision")
st.write(
    "Classifies white blood cells in single-cell microscope images and shows **why**: "
    "calibrated class probabilities, and four maps of what the model looked at. "
    "For teaching morphology, for research, and as a second opinion — not for diagnosis."
)
col_classify, col_explain = st.columns(2)
col_classify.page_link("pages/1_Classify.py", label="Classify cells", icon=":material/biotech:")
col_explain.page_link("pages/2_Explain.py", label="Explain a prediction", icon=":material/map:")

st.subheader(f"Loaded model: {card.name}")
metrics = results.metrics
left, middle, right, last = st.columns(4)
left.metric("Classes", len(config.classes))
if metrics:
    middle.metric("Balanced accuracy (held-out test)",
                  f"{100 * metrics['balanced_accuracy']:.1f} %")
    right.metric("Test cells", metrics["n"])
    last.metric("Calibration error (ECE)", f"{metrics['ece_after_temperature']:.3f}")
# PBC's folder names are the classes; "ig" alone says nothing to a student.
FULL_NAMES = {"ig": "ig (immature granulocyte: promyelocyte, myelocyte, metamyelocyte)"}
st.write("**Classes:** " + ", ".join(FULL_NAMES.get(name, name) for name in config.classes))
network = BACKBONES[config.backbone].title if config.backbone in BACKBONES else config.backbone
st.caption(f"A convolutional network ({network}), first "
           "trained on everyday photos (ImageNet), then on the training laboratory's cells. "
           "Details on the Model audit page.")
sources = [source["name"] for source in results.data.get("sources", [])]
if len(sources) > 1:
    st.write("**Learned from:** " + ", ".join(
        f"{name} (held-out test: {100 * results.source_tests[name]['balanced_accuracy']:.1f} %)"
        if name in results.source_tests else name for name in sources))
if results.external:
    measured = "; ".join(f"{entry['name']} ({entry['metrics']['n']} cells): "
                         f"{100 * entry['metrics']['balanced_accuracy']:.1f} %"
                         for entry in results.external)
    learned = (f"Trained on images from {len(sources)} sources ({', '.join(sources)})"
               if len(sources) > 1 else "Trained on one laboratory's images")
    st.warning(
        f"{learned}. On cells from laboratories it never saw the balanced accuracy "
        f"falls — {measured}. Images from other microscopes, stains or scanners may be "
        "misclassified, often confidently: check the flags and the maps, or teach the "
        "model your microscope on the Adapt page."
    )

st.subheader("What the flags mean")
# The threshold in force is the sidebar's; the card's fitted one is named beside it when a
# user has moved the slider, so the text never contradicts the control next to it.
threshold = review_threshold()
if abs(threshold - config.review_threshold) < 5e-3:
    setting = f"{threshold:.2f}" + (f" ({config.review_rule})" if config.review_rule else "")
else:
    setting = (f"{threshold:.2f}, as set in the sidebar (the model card's: "
               f"{config.review_threshold:.2f})")
st.markdown(
    f"""
- **Confident** — the calibrated probability of the top class is above the Review threshold
  and the image looks like the cells the model learned from.
- **Review** — the model is unsure: the top probability is under
  {setting}; adjustable in the sidebar. Check the cell
  yourself.
- **Unfamiliar** — the image is unlike the training cells: no stained white cell was found,
  it is out of focus, or the network's own features lie far from every class it knows
  (Mahalanobis distance). The probabilities and maps are still shown on request, labelled
  unreliable. Cells from another laboratory are often Unfamiliar: the **Adapt** page teaches
  the model your microscope with about ten labelled cells per class.
"""
)

st.subheader("How to read the maps")
st.markdown(
    """
- **Grad-CAM / Grad-CAM++** — warm colours mark where the features that raise the
  chosen class's score sit. They are coarse (a 7×7 grid, smoothed): read them as *region*,
  not detail. On a good prediction they cover the nucleus and granules, not the background.
- **LIME** — the cell is cut into patches; green patches raise the model's confidence in
  the class, pink ones lower it. Patch-shaped by design.
- **SHAP** — the same patches, grouped nucleus with nucleus and cytoplasm with cytoplasm,
  each get their share of the class probability: red for, blue against. The shares add up
  to what the cell adds over a blurred copy of itself.
- When the methods **disagree**, or the maps sit on the background or a neighbouring red
  cell, trust the prediction less. You can ask every map about **any class** ("why not
  monocyte?").
"""
)
with st.expander("Model card: intended use and limitations"):
    st.markdown(f"**Intended use.** {card.intended_use}")
    st.markdown(f"**Out of scope.** {card.out_of_scope}")
    for item in card.limitations:
        st.markdown(f"- {item}")
