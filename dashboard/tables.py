"""How an answer appears in the pages' tables: as its card shows it."""

from __future__ import annotations

import streamlit as st

from hematovision.model.prediction import UNFAMILIAR, Prediction

# A bar per row reads faster than a column of fractions, and shows "99.9 %" as the
# cards and charts do.
COLUMN_CONFIG = {
    "probability": st.column_config.ProgressColumn(
        "probability", format="%.1f %%", min_value=0, max_value=100),
    # The reasons are sentences; at the default width a laptop cut them mid-word.
    "why flagged": st.column_config.TextColumn("why flagged", width="large"),
    "error": st.column_config.TextColumn("error", width="large"),
}


def answer_columns(prediction: Prediction | None) -> dict:
    """Label and probability for a table row. An Unfamiliar image's answer means little, so
    the table leaves it out, as the card does unless asked; the CSV keeps it."""
    if prediction is None or prediction.status == UNFAMILIAR:
        return {"label": "", "probability": None}
    return {"label": prediction.label, "probability": round(100 * prediction.confidence, 1)}


def estimate(value: float | None, interval: list[float] | None) -> str:
    """``0.954 (0.931–0.973)``; a dash where the set had no cells to measure it on."""
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" ({interval[0]:.3f}–{interval[1]:.3f})" if interval else "")
