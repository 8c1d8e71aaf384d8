"""A PDF report of a batch: differential, every cell with its Grad-CAM, the Review list."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from PIL import Image

from hematovision.explain.overlay import fitted_size
from hematovision.model.card import ModelCard
from hematovision.model.prediction import REVIEW, UNFAMILIAR
from hematovision.report.batch import CellResult, Differential, copies_warning

__all__ = ["DISCLAIMER", "build_report", "gradcam_thumbnails"]

DISCLAIMER = ("HematoVision is not a medical device. This report is for teaching, research and "
              "a second opinion by a trained reviewer; it must not be used for diagnosis.")
_BAR = (192, 57, 43)


def _text(value: str) -> str:
    # The PDF core fonts are Latin-1; anything else is shown as "?".
    return value.encode("latin-1", "replace").decode("latin-1")


def _pdf():
    from fpdf import FPDF

    class _Report(FPDF):
        def footer(self):
            self.set_y(-14)
            self.set_font("Helvetica", "I", 7)
            self.set_text_color(90, 90, 90)
            self.multi_cell(0, 3.5, _text(DISCLAIMER + f"   Page {self.page_no()}"))
            self.set_text_color(0, 0, 0)

    pdf = _Report(format="A4")
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title("HematoVision differential report")
    return pdf


def _summary_page(pdf, card: ModelCard, diff: Differential, model_sha256: str,
                  results: list[CellResult]) -> None:
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "HematoVision differential report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Date: {now}", f"Model: {card.name} (sha256 {model_sha256[:16]}...)"]
    if card.results.metrics:
        m = card.results.metrics
        lines.append(f"Held-out test: balanced accuracy {100 * m['balanced_accuracy']:.1f} %, "
                     f"accuracy {100 * m['accuracy']:.1f} %, n = {m['n']}, "
                     f"calibration error {m['ece_after_temperature']:.3f}")
    lines.append(f"Files: {diff.total}; white cells counted {diff.counted}; Review "
                 f"{diff.review}; Unfamiliar {diff.unfamiliar}; unreadable {diff.unreadable}")
    if diff.others:
        lines.append(f"Not white cells, not in the differential: {diff.others_text()}")
    # The threshold the answers were given under: a reader would assume the card's.
    thresholds = {r.prediction.review_threshold for r in results if r.prediction is not None}
    if thresholds:
        lines.append("Review: top probability below " + " / ".join(
            f"{100 * t:.0f} %" for t in sorted(thresholds))
            + f" (the model card's setting: {100 * card.config.review_threshold:.0f} %)")
    # A reader of the PDF alone must see it too, not only whoever ran the command.
    repeated = copies_warning(results)
    if repeated:
        lines.append(f"Warning: {repeated}.")
    for line in lines:
        pdf.cell(0, 6, _text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "White-cell differential (Review and Unfamiliar cells excluded)",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    left, width = pdf.l_margin + 35, 80
    for name in diff.classes:
        share, count = diff.shares[name], diff.counts[name]
        y = pdf.get_y()
        pdf.cell(35, 7, _text(name))
        pdf.set_fill_color(*_BAR)
        if share > 0:
            pdf.rect(left, y + 1, max(width * share, 0.5), 5, style="F")
        pdf.set_xy(left + width + 3, y)
        low, high = diff.interval(name)
        pdf.cell(0, 7, f"{100 * share:5.1f} %  ({count}; 95 % interval {100 * low:.0f}-"
                       f"{100 * high:.0f} %)", new_x="LMARGIN", new_y="NEXT")


def _cells_pages(pdf, results: list[CellResult], maps: dict[int, np.ndarray]) -> None:
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Every cell (left: image, right: Grad-CAM for the predicted class)",
             new_x="LMARGIN", new_y="NEXT")
    tile, per_row, gap = 20, 4, 4
    column_width = (pdf.w - pdf.l_margin - pdf.r_margin) / per_row
    for index, result in enumerate(results):
        column = index % per_row
        if column == 0:
            if pdf.get_y() + tile + 14 > pdf.h - 20:
                pdf.add_page()
            top = pdf.get_y()
        x = pdf.l_margin + column * column_width
        if result.thumbnail is not None:
            _place(pdf, result.thumbnail, x, top, tile)
        if index in maps:
            _place(pdf, maps[index], x + tile + 1, top, tile)
        pdf.set_xy(x, top + tile + 1)
        pdf.set_font("Helvetica", "", 6)
        name = result.name if len(result.name) <= 28 else "..." + result.name[-25:]
        if result.prediction is None:
            caption = f"{name}\nUNREADABLE"
        else:
            p = result.prediction
            flag = {REVIEW: " REVIEW", UNFAMILIAR: " UNFAMILIAR"}.get(p.status, "")
            caption = f"{name}\n{p.answer}{flag}"
        pdf.multi_cell(column_width - gap, 3, _text(caption))
        if column == per_row - 1 or index == len(results) - 1:
            pdf.set_y(top + tile + 9)


def _place(pdf, picture: np.ndarray, x: float, y: float, tile: float) -> None:
    """Draw a picture centred in a ``tile`` square, in its own proportions."""
    width, height = fitted_size(picture.shape, tile)
    pdf.image(Image.fromarray(picture), x=x + (tile - width) / 2, y=y + (tile - height) / 2,
              w=width, h=height)


def _lists_page(pdf, results: list[CellResult]) -> None:
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Review list (low confidence or unfamiliar: check by eye)",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    review = [r for r in results if r.prediction is not None
              and r.prediction.status in (REVIEW, UNFAMILIAR)]
    for r in review:
        why = (f"UNFAMILIAR, {r.prediction.unfamiliar_reason}"
               if r.prediction.status == UNFAMILIAR else "REVIEW")
        pdf.multi_cell(0, 5, _text(f"{r.name}: {r.prediction.answer} ({why})"),
                       new_x="LMARGIN", new_y="NEXT")
    if not review:
        pdf.cell(0, 5, "none", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Unreadable files", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    broken = [r for r in results if r.prediction is None]
    for r in broken:
        pdf.multi_cell(0, 5, _text(r.error or r.name), new_x="LMARGIN", new_y="NEXT")
    if not broken:
        pdf.cell(0, 5, "none", new_x="LMARGIN", new_y="NEXT")


def build_report(results: list[CellResult], diff: Differential, card: ModelCard,
                 model_sha256: str, maps: dict[int, np.ndarray] | None = None) -> bytes:
    """The report as PDF bytes.

    Args:
        results: every input, in order, unreadable ones included.
        maps: Grad-CAM overlays (RGB uint8) by index into ``results``.
    """
    pdf = _pdf()
    _summary_page(pdf, card, diff, model_sha256, results)
    _cells_pages(pdf, results, maps or {})
    _lists_page(pdf, results)
    return bytes(pdf.output())


def gradcam_thumbnails(classifier, sources: list[tuple[str, bytes | None, str]],
                       results: list[CellResult], size: int = 96) -> dict[int, np.ndarray]:
    """Grad-CAM overlays for the predicted class of every classified cell, as thumbnails."""
    from hematovision.explain.explanation import explain
    from hematovision.explain.overlay import overlay
    from hematovision.io.images import read_image

    maps = {}
    for index, ((name, data, _), result) in enumerate(zip(sources, results)):
        if result.prediction is None or data is None:
            continue
        image = read_image(data, name=name)
        class_index = classifier.classes.index(result.prediction.label)
        heatmap = explain("gradcam", image, classifier, class_index).heatmap
        picture = Image.fromarray(overlay(image, heatmap, 0.5))
        picture.thumbnail((size, size))
        maps[index] = np.asarray(picture)
    return maps
