"""Plotly figures about a model's measured quality, built from its evaluation JSON."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

__all__ = ["confusion_heatmap", "reliability_diagram", "coverage_accuracy", "coverage_curve",
           "deletion_curves", "training_curves"]


def confusion_heatmap(matrix: list[list[int]], classes: list[str], normalise: bool = False
                      ) -> go.Figure:
    """Rows: true class; columns: predicted. ``normalise`` shows each row as % of its cells."""
    counts = np.asarray(matrix, dtype=float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * 100 if normalise \
        else counts
    text = [[f"{v:.1f} %" if normalise else f"{int(v)}" for v in row] for row in values]
    figure = go.Figure(go.Heatmap(
        z=values, x=classes, y=classes, colorscale="Blues", text=text, texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>", showscale=False))
    figure.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10),
                         xaxis_title="predicted", yaxis_title="true",
                         yaxis=dict(autorange="reversed"))
    return figure


def reliability_diagram(before: list[dict], after: list[dict], ece_before: float,
                        ece_after: float) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling.

    Marker area shows how many cells a bin holds; markers are drawn past the axes (never cut
    in half at 1.0), the axes leave room for the largest, and the legend sits below the
    plot, never over its points."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect",
                                line=dict(dash="dot", color="#7f8c8d")))
    for bins, name, colour in ((before, f"before temperature (ECE {ece_before:.3f})",
                                "#e67e22"),
                               (after, f"after temperature (ECE {ece_after:.3f})", "#2c3e50")):
        filled = [b for b in bins if b["count"]]
        most = max((b["count"] for b in filled), default=1)
        # A bin of three cells can sit far off the diagonal by chance: marker area shows
        # how many cells each point stands for, so a reader weighs it accordingly.
        figure.add_trace(go.Scatter(
            x=[b["confidence"] for b in filled], y=[b["accuracy"] for b in filled],
            mode="lines+markers", name=name, line=dict(color=colour), cliponaxis=False,
            marker=dict(size=[5 + RELIABILITY_MARKER * (b["count"] / most) ** 0.5
                              for b in filled], opacity=0.8),
            customdata=[b["count"] for b in filled],
            hovertemplate="confidence %{x:.3f}, accuracy %{y:.3f}, %{customdata} cells"))
    figure.update_layout(height=420, margin=dict(l=10, r=30, t=30, b=10),
                         xaxis=dict(title="mean confidence in bin", range=[0, 1.06]),
                         yaxis=dict(title="accuracy in bin", range=[0, 1.08]),
                         legend=dict(orientation="h", x=0, xanchor="left", y=-0.22,
                                     yanchor="top"))
    return figure


# The largest reliability marker's diameter in pixels, beyond the 5 every marker has.
RELIABILITY_MARKER = 25


def coverage_accuracy(predictions: list[dict], also: tuple[float, ...] = ()
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every threshold t (0 to 0.99 by 0.01, and those in ``also``): the share of cells
    with confidence ≥ t (coverage) and the accuracy on them.
    Returns ``(thresholds, coverage, accuracy)``, thresholds ascending."""
    confidence = np.array([p["confidence"] for p in predictions])
    correct = np.array([p["predicted"] == p["label"] for p in predictions])
    thresholds = np.union1d(np.round(np.linspace(0.0, 0.99, 100), 2), also)
    coverage = np.array([(confidence >= t).mean() for t in thresholds])
    accuracy = np.array([correct[confidence >= t].mean() if (confidence >= t).any() else np.nan
                         for t in thresholds])
    return thresholds, coverage, accuracy


def coverage_curve(predictions: list[dict], threshold: float) -> go.Figure:
    """Accuracy against coverage when the model abstains below each threshold."""
    # The marked point is computed at the threshold itself: a third of the cells sit at
    # exactly 1.00, so the nearest grid point can be far off in coverage.
    thresholds, coverage, accuracy = coverage_accuracy(predictions, also=(threshold,))
    figure = go.Figure(go.Scatter(
        x=coverage, y=accuracy, mode="lines", customdata=thresholds, name="abstain below t",
        hovertemplate="threshold %{customdata:.2f}: %{x:.1%} of cells kept, "
                      "accuracy %{y:.2%}<extra></extra>"))
    index = int(np.flatnonzero(thresholds == threshold)[0])
    figure.add_trace(go.Scatter(x=[coverage[index]], y=[accuracy[index]], mode="markers+text",
                                marker=dict(size=12, color="#c0392b"), name="Review threshold",
                                text=[f"Review below {threshold:.2f}"],
                                textposition="bottom left"))
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                         xaxis=dict(title="share of cells answered (coverage)", tickformat=".0%"),
                         yaxis=dict(title="accuracy on answered cells", tickformat=".1%"))
    return figure


def training_curves(history: list[dict], metric: str = "loss") -> go.Figure:
    """Train and validation ``loss`` or ``accuracy`` per epoch, both phases in sequence."""
    figure = go.Figure()
    steps = list(range(1, len(history) + 1))
    for key, name in ((metric, "train"), (f"val_{metric}", "validation")):
        figure.add_trace(go.Scatter(
            x=steps, y=[float(row[key]) if row.get(key) not in ("", None) else None
                        for row in history], mode="lines+markers", name=name,
            customdata=[f"phase {row['phase']}, epoch {row['epoch']}" for row in history],
            hovertemplate="%{customdata}: %{y:.4f}<extra></extra>"))
    boundary = next((i for i, row in enumerate(history) if str(row["phase"]) == "2"), None)
    if boundary:
        figure.add_vline(x=boundary + 0.5, line_dash="dot",
                         annotation_text="fine-tuning starts", annotation_position="top")
    # A run continued from another model (--init-from) has only fine-tuning epochs.
    phases = {str(row["phase"]) for row in history}
    title = {"1": "head-training epoch", "2": "fine-tuning epoch"}.get(
        phases.pop(), "epoch") if len(phases) == 1 else "epoch (head training, then fine-tuning)"
    figure.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10),
                         xaxis=dict(title=title,
                                    dtick=1),  # whole epochs, never "1.5"
                         yaxis_title=metric)
    return figure


def deletion_curves(checks: dict, titles: dict[str, str] | None = None) -> go.Figure:
    """Mean class probability as the top-ranked pixels are deleted, per method."""
    titles = {**(titles or {}), "random": "random map"}
    figure = go.Figure()
    for method, row in checks["faithfulness"].items():
        name = titles.get(method, method)
        curve = row["deletion_curve"]
        fractions = np.linspace(0, 100, len(curve))
        figure.add_trace(go.Scatter(
            x=fractions, y=curve, mode="lines+markers",
            name=f"{name} (AUC {row['deletion_auc']:.3f})",
            line=dict(dash="dot" if method == "random" else "solid"),
            hovertemplate="%{x:.0f} % deleted: probability %{y:.3f}<extra>" + name + "</extra>"))
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10),
                         xaxis_title="% of pixels deleted, most important first",
                         yaxis=dict(title="probability of the explained class", range=[0, 1]))
    return figure
