"""What the model says about one cell: the class, every probability, and a status.

The status is derived, never stored: Unfamiliar (the image is unlike the training cells,
out of focus, or holds no white cell), Review (the model is unsure), or Confident.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Prediction", "CONFIDENT", "REVIEW", "UNFAMILIAR"]

CONFIDENT = "Confident"

REVIEW = "Review"

UNFAMILIAR = "Unfamiliar"


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one cell.

    Attributes:
        label: the most probable class.
        confidence: its calibrated probability.
        probabilities: every class's calibrated probability, in the model's class order.
        classes: the model's classes.
        review_threshold: below this confidence the cell should be checked by a person.
        distance: how far the image's features lie from the training cells (see
            :mod:`hematovision.model.familiarity`); ``None`` when the model has no statistics.
        distance_threshold: above this distance the image is "Unfamiliar".
        no_cell: why no white cell was found, when the model frames cells and found none.
        sharpness: focus of the model input (see :func:`hematovision.io.focus.sharpness`).
        min_sharpness: below this the image is out of focus, hence "Unfamiliar".
    """

    label: str
    confidence: float
    probabilities: tuple[float, ...]
    classes: tuple[str, ...]
    review_threshold: float
    distance: float | None = None
    distance_threshold: float | None = None
    no_cell: str = ""
    sharpness: float | None = None
    min_sharpness: float = 0.0

    @property
    def unfamiliar_reason(self) -> str:
        """Why the image is unlike what the model knows, in words; empty when it is not."""
        if self.no_cell:
            return self.no_cell
        if self.sharpness is not None and self.sharpness < self.min_sharpness:
            return (f"out of focus (sharpness {self.sharpness:.2f}, the blurriest training "
                    f"cells have {2 * self.min_sharpness:.2f})")
        if self.distance is not None and self.distance_threshold is not None and (
                self.distance > self.distance_threshold):
            return (f"unlike the cells the model was trained on (distance "
                    f"{self.distance:.2f}, familiar up to {self.distance_threshold:.2f})")
        return ""

    @property
    def status(self) -> str:
        """Unfamiliar (do not trust the class at all), Review (unsure), or Confident."""
        if self.unfamiliar_reason:
            return UNFAMILIAR
        return REVIEW if self.confidence < self.review_threshold else CONFIDENT

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.classes, self.probabilities))

    @property
    def answer(self) -> str:
        """The class and its probability, e.g. ``"neutrophil 97.2 %"``."""
        return f"{self.label} {100 * self.confidence:.1f} %"

    @property
    def headline(self) -> str:
        """The answer as a card or thumbnail shows it: marked when it needs Review; for an
        Unfamiliar image only that word, since its answer means little."""
        if self.status == UNFAMILIAR:
            return UNFAMILIAR
        return self.answer + (f" · {REVIEW}" if self.status == REVIEW else "")
