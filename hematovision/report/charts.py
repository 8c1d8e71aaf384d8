"""Plotly figures; pages only display them."""

from __future__ import annotations

import plotly.graph_objects as go

from hematovision.model.prediction import Prediction

__all__ = ["differential_bars", "probability_bars"]

HIGHLIGHT = "#c0392b"
OTHER = "#95a5a6"
# Value labels on bars, in pixels: Streamlit's body text is 16 px, Plotly's ticks 12 px.
LABEL_SIZE = 13


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
    # Long bars carry their value inside, so a narrow chart never clips "99.9 %" at its
    # right edge; short ones carry it after the bar.
    inside = [value >= 0.45 for value in values]
    return go.Figure(
        go.Bar(x=values, y=names, orientation="h", marker_color=colours,
               text=[f"{100 * v:.1f} %" for v in values],
               textposition=["inside" if i else "outside" for i in inside],
               # Plotly shrinks text to fit inside a bar's thickness: in a 220-pixel chart
               # of eight classes "100.0 %" came out at about 8 px. It keeps its size
               # here, and the bars are thick enough to hold it.
               constraintext="none", textfont=dict(size=LABEL_SIZE),
               insidetextanchor="end", insidetextfont=dict(color="white", size=LABEL_SIZE),
               cliponaxis=False, hovertemplate="%{y}: %{x:.4f}<extra></extra>"),
        layout=dict(
            height=height, margin=dict(l=10, r=20, t=28, b=10), showlegend=False, bargap=0.12,
            xaxis=dict(range=[0, 1.0], tickformat=".0%", title="calibrated probability"),
            yaxis=dict(title=None),
            shapes=[dict(type="line", x0=threshold, x1=threshold, y0=0, y1=1, yref="paper",
                         line=dict(dash="dot", color="#34495e"))],
            # Above the bars, where no value label can sit under it.
            annotations=[dict(x=threshold, y=1, yref="paper", text=f"Review < {threshold:.0%}",
                              showarrow=False, yanchor="bottom",
                              xanchor="right" if threshold > 0.5 else "left")],
        ),
    )


def differential_bars(diff, height: int = 320) -> go.Figure:
    """The differential: share of each white-cell class among the counted cells (neither
    Review nor Unfamiliar); classes that are not white cells are named in the title."""
    names = list(diff.classes)
    shares = [diff.shares[n] for n in names]
    intervals = [diff.interval(n) for n in names]
    highs = [high for _, high in intervals]
    figure = go.Figure(go.Bar(
        x=names, y=shares, marker_color=HIGHLIGHT,
        error_y=dict(type="data", symmetric=False, color="#34495e", thickness=1,
                     array=[high - share for share, high in zip(shares, highs)],
                     arrayminus=[share - low for share, (low, _) in zip(shares, intervals)]),
        customdata=[[100 * low, 100 * high] for low, high in intervals],
        hovertemplate="%{x}: %{y:.1%} (95 % interval %{customdata[0]:.1f}–"
                      "%{customdata[1]:.1f} %)<extra></extra>",
    ))
    # Each label sits above its interval's whisker, not on the bar's top, where the whisker
    # ran through it.
    figure.add_trace(go.Scatter(
        x=names, y=highs, mode="text", textposition="top center", cliponaxis=False,
        text=[f"{100 * diff.shares[n]:.1f} % ({diff.counts[n]})" for n in names],
        hoverinfo="skip", showlegend=False))
    # A second title line (the classes outside the differential) needs room above the bars.
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=60 if diff.others else 30,
                                                    b=10),
                         showlegend=False,
                         yaxis=dict(tickformat=".0%", range=[0, 1.12], title="share of counted"),
                         title=f"Differential of {diff.counted} white "
                               f"cell{'' if diff.counted == 1 else 's'} ({diff.review} "
                               f"Review, {diff.unfamiliar} Unfamiliar, {diff.unreadable} "
                               "unreadable left out)"
                               + (f"<br><sub>Not white cells: {diff.others_text()}</sub>"
                                  if diff.others else ""))
    return figure
