"""Model audit: what a reviewer needs to decide whether to trust the model, first; the
training detail a model developer needs, apart at the bottom."""

import streamlit as st

from dashboard.sidebar import review_threshold, show_sidebar
from dashboard.state import examples_folder, make_cell, try_decode
from dashboard.tables import estimate
from hematovision.explain import available_methods
from hematovision.model.card_markdown import data_markdown, training_markdown
from hematovision.report.model_charts import (
    confusion_heatmap,
    coverage_curve,
    deletion_curves,
    reliability_diagram,
    training_curves,
)
from hematovision.report.model_report import (
    GLOSSARY,
    audit_answers,
    check_verdicts,
    checks_table,
    external_rows,
    gallery,
    load_evaluation,
    load_explanation_checks,
    load_external_evaluations,
    load_history,
    source_benchmark_rows,
    source_rows,
    source_test_rows,
)

st.set_page_config(page_title="Model audit · HematoVision", page_icon="🔎", layout="wide")
classifier = show_sidebar()
card = classifier.card
results = card.results
st.title(f"Model audit: {card.name}")
evaluation = load_evaluation(classifier.model_dir)
if evaluation is None:
    st.warning("This model has no evaluation yet: run `hematovision evaluate --model "
               f"{classifier.model_dir} --data DATASET`.")
    st.stop()
metrics = evaluation["metrics"]
externals = load_external_evaluations(classifier.model_dir)
checks = load_explanation_checks(classifier.model_dir)
titles = {method.name: method.title for method in available_methods()}

st.caption("The answers a reviewer needs come first, each figure with how to read it; the "
           "training runs and settings are in *For model developers* at the bottom.")
answers = audit_answers(evaluation, externals, checks, titles)
for column, answer in zip(st.columns(len(answers)), answers):
    column.metric(answer["question"], answer["answer"])
    column.caption(answer["reading"])
with st.expander("What the terms mean"):
    st.markdown("\n".join(f"- **{term}**: {meaning}" for term, meaning in GLOSSARY.items()))

st.header("How often is it right, and where does it err?")
cols = st.columns(4)
cols[0].metric("Balanced accuracy", f"{100 * metrics['balanced_accuracy']:.1f} %")
low, high = metrics["balanced_accuracy_ci95"]
cols[0].caption(f"95 % interval {100 * low:.1f}–{100 * high:.1f} %")
cols[1].metric("Accuracy", f"{100 * metrics['accuracy']:.1f} %")
cols[2].metric("Macro AUC", f"{metrics['macro_auc_ovr']:.4f}")
cols[3].metric("Test cells", metrics["n"])

normalise = st.toggle("Show rows as % of each true class", key="normalise_confusion")
st.plotly_chart(confusion_heatmap(metrics["confusion_matrix"], evaluation["classes"], normalise),
                width="stretch", key="confusion")
st.caption("Read across a row: where the test cells of that true class went. The diagonal "
           "holds the right answers; every number off it is a mistake.")
st.dataframe([{"class": name, "cells": row["support"],
               "precision": estimate(row["precision"], row["precision_ci95"]),
               "recall": estimate(row["recall"], row["recall_ci95"]),
               "F1": estimate(row["f1"], row["f1_ci95"])}
              for name, row in metrics["per_class"].items()], hide_index=True, width="stretch")
st.caption("Recall: of the cells of a class, the share it found. Precision: of its answers "
           "of a class, the share that were right. In brackets, the 95 % interval.")

st.header("How sure is it?")
left, right = st.columns(2)
left.plotly_chart(reliability_diagram(metrics["reliability_before"], metrics["reliability_after"],
                                      metrics["ece_before_temperature"],
                                      metrics["ece_after_temperature"]),
                  width="stretch", key="reliability")
left.caption("Points on the diagonal mean that a stated 90 % is right 90 % of the time. "
             "A point's size shows how many cells its bin holds: the small ones, of a few "
             "cells each, stray from the diagonal by chance.")
right.plotly_chart(coverage_curve(evaluation["predictions"], review_threshold()),
                   width="stretch", key="coverage")
right.caption("If the model abstains (Review) below a threshold, it answers fewer cells but "
              "is right more often; the red point is the current Review threshold.")

st.header("On which laboratories?")
if results.source_tests:
    st.write("Trained on several sources, each with its own held-out test cells:")
    st.table(source_test_rows(results.source_tests), hide_index=True)
if externals:
    st.write("Cells from another laboratory look different (stain, background, scale, "
             "camera). The drop below is what to expect on images that are not from the "
             "training laboratory: treat such predictions as suggestions and check the maps.")
    st.table(external_rows(externals, metrics), hide_index=True)
    st.caption("*Its classes only*: if the model had to choose among the classes the "
               "laboratory's folder holds. The dashboard always lets it choose among all of "
               "its classes, so the figure to expect is the balanced accuracy.")
if results.source_benchmark:
    st.write("**Leave one source out.** Each shipped model on every set: a source it learned "
             "from is scored on its held-out test cells, any other set whole. Compare the "
             "rows of a set the two models never saw.")
    st.table(source_benchmark_rows(results.source_benchmark), hide_index=True)
    st.caption("*4 common cells*: balanced accuracy over eosinophil, lymphocyte, monocyte "
               "and neutrophil, which every set holds. *Confident & wrong*: the share of "
               "cells answered Confident and wrong. Measured with "
               f"`{results.source_benchmark.get('command', 'benchmarks/sources.py')}`.")
if not externals:
    st.info("This model has not been measured on another laboratory's cells, so how it "
            "does on them is unknown: run `hematovision evaluate --model MODEL --data "
            "FOLDER` with a folder of them.")

st.header("Can the maps be trusted?")
if checks is None:
    st.info("No explanation checks stored for this model: run `hematovision evaluate "
            "--explanations`.")
else:
    st.write(f"Measured on {checks['cells']} held-out test cells and {checks['masked_cells']} "
             "cells from another laboratory with expert masks (pointing game); 'random' is a "
             "map of noise, the baseline every method must beat. ↓: lower is better, ↑: "
             "higher is better; *What the terms mean* above explains each check.")
    st.table(checks_table(checks, titles), hide_index=True)
    st.plotly_chart(deletion_curves(checks, titles), width="stretch", key="deletion_curves")
    st.caption("A map whose line falls faster than the random map's (dotted) points at "
               "pixels the model relies on.")
    for name, sentence in check_verdicts(checks, titles).items():
        st.markdown(f"**{name}**: {sentence}")

st.header("Gallery: most confident errors and least confident correct answers")
folder = examples_folder()
if folder is None:
    st.info("Configure the dataset folder (HEMATOVISION_EXAMPLES) to see the cells.")
else:
    from dashboard.results import gradcam_view

    wrong, unsure = gallery(evaluation)
    with st.spinner("Computing a Grad-CAM map for each cell of the gallery…"):
        for title, rows in (("Confident errors", wrong), ("Unsure but right", unsure)):
            st.subheader(title)
            present = [row for row in rows if (folder / row["path"]).is_file()]
            if len(present) < len(rows):
                st.info(f"{len(rows) - len(present)} of these {len(rows)} test cells are not "
                        f"in {folder} (the dataset folder is not the one the model was "
                        "tested on); they are left out.")
            columns = st.columns(max(len(present), 1))
            for column, row in zip(columns, present):
                path = folder / row["path"]
                cell = make_cell(path.name, path.read_bytes())
                image, _ = try_decode(cell)
                index = classifier.classes.index(row["predicted"])
                column.image(gradcam_view(classifier, cell.sha256, image, index, 0.4),
                             width="stretch",
                             alt=f"Grad-CAM over a {row['label']} cell the model called "
                                 f"{row['predicted']}",
                             caption=f"true {row['label']}, said {row['predicted']} "
                                     f"{100 * row['confidence']:.0f} %"
                                     + (f" ({row['status']})" if row.get("status")
                                        not in (None, "Confident") else ""))
                if column.button("Open in Explain", key=f"open_{title}_{cell.sha256}"):
                    st.session_state.setdefault("classified", {})[cell.sha256] = cell
                    st.session_state["explain_sha"] = cell.sha256
                    st.switch_page("pages/2_Explain.py")

st.header("Model card")
st.markdown(f"**Intended use.** {card.intended_use}")
st.markdown(f"**Out of scope.** {card.out_of_scope}")
st.markdown("**Limitations.**\n" + "\n".join(f"- {item}" for item in card.limitations))
if results.data:
    st.subheader("Data")
    if results.data.get("sources"):
        st.table(source_rows(results.data), hide_index=True)
    st.markdown(data_markdown(results.data))

st.divider()
with st.expander("For model developers: training curves, runs, settings and ablations"):
    history = load_history(classifier.model_dir)
    if history:
        left, right = st.columns(2)
        left.plotly_chart(training_curves(history, "loss"), width="stretch", key="loss_curve")
        right.plotly_chart(training_curves(history, "accuracy"), width="stretch",
                           key="acc_curve")
        st.caption("Loss and accuracy per epoch on the training and validation cells: "
                   "validation that keeps pace with training means the model did not learn "
                   "its training cells by heart.")
        if all(str(row["phase"]) == "2" for row in history):
            st.caption("The epochs of the model's last run, which continued fine-tuning an "
                       "earlier model; the model card lists every run.")
    if results.training:
        st.markdown(training_markdown(results.training, record=False))
