"""Plotly figures; pages only display them."""

from __future__ import annotations

import plotly.graph_objects as go

from hematovision.classifier import Prediction

__all__ = ["differential_bars", "probability_bars"]

HIGHLIGHT = "#c0392b"
OTHER = "#95a5a6"


def probability_bars(prediction: Prediction, height: int = 300) -> go.Figure:
    """Horizontal bars of every class's calibrated probability, largest on top, the
    predicted class highlighted; hovering shows the exact value."""
    pairs = sorted(zip(prediction.classes, prediction.probabilities), key=lambda p: p[1])
    names = [name for name, _ in pairs]
    values = [value for _, value in pairs]
    colours = [HIGHLIGHT if name == prediction.label else OTHER for name in names]
    # The threshold line and the layout go in at construction: Plotly's add_vline and
    # update_layout re-validate the whole figure and cost more than the bars themselves,
    # once per cell and user.
    threshold = prediction.review_threshold
    return go.Figure(
        go.Bar(x=values, y=names, orientation="h", marker_color=colours,
               text=[f"{100 * v:.1f} %" for v in values], textposition="outside",
               hovertemplate="%{y}: %{x:.4f}<extra></extra>"),
        layout=dict(
            height=height, margin=dict(l=10, r=40, t=10, b=10), showlegend=False,
            xaxis=dict(range=[0, 1.15], tickformat=".0%", title="calibrated probability"),
            yaxis=dict(title=None),
            shapes=[dict(type="line", x0=threshold, x1=threshold, y0=0, y1=1, yref="paper",
                         line=dict(dash="dot", color="#34495e"))],
            annotations=[dict(x=threshold, y=0, yref="paper", text="review below",
                              showarrow=False, xanchor="left", yanchor="bottom")],
        ),
    )


def differential_bars(diff, height: int = 320) -> go.Figure:
    """The differential: share of each class among the counted (non-Review) cells."""
    names = list(diff.classes)
    figure = go.Figure(go.Bar(
        x=names, y=[diff.shares[n] for n in names], marker_color=HIGHLIGHT,
        text=[f"{100 * diff.shares[n]:.1f} % ({diff.counts[n]})" for n in names],
        textposition="outside", hovertemplate="%{x}: %{y:.3f}<extra></extra>",
    ))
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                         yaxis=dict(tickformat=".0%", range=[0, 1.1], title="share of counted"),
                         title=f"Differential of {diff.counted} cells "
                               f"({diff.review} for review, {diff.unreadable} unreadable)")
    return figure
