"""The model card: everything that belongs to a trained model, stored beside its weights.

Classes, input size, preprocessing, temperature, the review threshold and the Grad-CAM
layer live here rather than in code, so pages and the CLI read them from the model they
are using (Mitchell et al. 2019, "Model Cards for Model Reporting").

A card fails closed: a key it does not know (a misspelt ``familiarity_file`` would switch
the Unfamiliar checks off without a word) or a required key it lacks is an error that
names the key and the file. Its Markdown rendering is :mod:`hematovision.model.card_markdown`.
"""

from __future__ import annotations

import difflib
import json
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from hematovision.errors import CardError, MissingFileError
from hematovision.io.files import write_json_atomic, write_text_atomic
from hematovision.model.card_markdown import render_markdown

__all__ = ["CARD_FILE", "CARD_MARKDOWN", "MODEL_FILE", "ModelCard", "load_card", "save_card"]

CARD_FILE = "card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
MODEL_FILE = "model.keras"

INTENDED_USE = (
    "Teaching white-blood-cell morphology, research, and a second opinion for a trained "
    "reviewer on single-cell images like those of the training data (CellaVision-style "
    "crops, May-Grünwald Giemsa stain)."
)
OUT_OF_SCOPE = (
    "Not a medical device and not for diagnosis or treatment decisions. Not validated for "
    "images from other analysers, stains, magnifications or whole smear fields; not for "
    "blasts, abnormal lymphocytes or other classes it was not trained on."
)

DEFAULT_LIMITATIONS = (
    "Trained on one laboratory's images (PBC: Hospital Clinic of Barcelona, CellaVision "
    "DM96, May-Grünwald Giemsa). Accuracy drops on other laboratories' images; see the "
    "external results.",
    "Knows only its classes. Blasts, reactive or abnormal lymphocytes, smudge cells and "
    "artefacts are forced into one of them, often confidently.",
    "'ig' lumps promyelocytes, myelocytes and metamyelocytes; 'neutrophil' lumps band and "
    "segmented forms.",
    "Expects one centred cell per image, as cropped by a CellaVision analyser; whole smear "
    "fields or several cells per image are not supported.",
    "The temperature was fitted on in-laboratory validation cells; on other laboratories' "
    "images the probabilities are overconfident.",
    "The maps show what the model uses, not what a haematologist uses; they can sit on "
    "background or neighbouring red cells.",
)


# What each annotation of ModelCard accepts; a sequence may come as a list or a tuple.
_KINDS = {"str": str, "int": numbers.Integral, "float": numbers.Real, "dict": dict,
          "list": (list, tuple), "tuple[str, ...]": (list, tuple)}


@dataclass(frozen=True)
class ModelCard:
    name: str
    classes: tuple[str, ...]
    backbone: str
    input_size: int
    preprocessing: str
    weight_source: str
    gradcam_layer: str
    temperature: float
    review_threshold: float
    review_rule: str = ""  # how the threshold was set (see calibration.fit_review_threshold)
    model_file: str = MODEL_FILE
    model_sha256: str = ""
    runtime_file: str = ""
    runtime_sha256: str = ""
    framing: str = "whole"  # "cell": inputs are framed around their white cell first
    familiarity_file: str = ""
    familiarity_sha256: str = ""
    head_weights_file: str = ""  # the linear head after the Grad-CAM layer (runtime.load_head)
    head_weights_sha256: str = ""
    head: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # the first source's held-out test split
    source_tests: dict = field(default_factory=dict)  # {source: its test split's metrics}
    source_benchmark: dict = field(default_factory=dict)  # benchmarks/sources.py's table
    external: list = field(default_factory=list)
    foreign: dict = field(default_factory=dict)
    adaptation: dict = field(default_factory=dict)  # {tuning depth: adaptation study}
    intended_use: str = INTENDED_USE
    out_of_scope: str = OUT_OF_SCOPE
    limitations: tuple[str, ...] = DEFAULT_LIMITATIONS

    def __post_init__(self):
        # A hand-edited card ("input_size": "224", "metrics": "good") must fail here,
        # naming the field, and not as a TypeError deep inside the network or a page.
        for spec in fields(self):
            value = getattr(self, spec.name)
            kind = _KINDS[spec.type]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(f"{spec.name} has the wrong type: {value!r} (expected "
                                f"{spec.type})")
            if kind == (list, tuple) and spec.type.startswith("tuple"):
                object.__setattr__(self, spec.name, tuple(value))  # a list from JSON
        if not all(isinstance(name, str) and name for name in self.classes):
            raise TypeError(f"classes must be names, got {list(self.classes)!r}")
        if not self.classes:
            raise ValueError("a model card needs at least one class")
        if not 0.0 < self.temperature:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.review_threshold <= 1.0:
            raise ValueError(f"review_threshold must lie in [0, 1], got {self.review_threshold}")
        if self.framing not in ("whole", "cell"):
            raise ValueError(f"framing must be 'whole' or 'cell', got {self.framing!r}")


def load_card(model_dir: str | Path) -> ModelCard:
    """Read ``card.json`` from a model folder.

    Raises:
        MissingFileError: the folder or its card is missing (a ``FileNotFoundError``).
        CardError: the card is not valid JSON, has a key :class:`ModelCard` does not know,
            lacks a required one, or holds a wrong value (a ``ValueError``); the message
            names the key and the file.
    """
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise MissingFileError(f"model card not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CardError(f"model card {path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise CardError(f"model card {path} is not a JSON object of fields")
    _check_keys(raw, path)
    try:
        if "rows" in raw.get("adaptation", {}):  # one study, as cards held before depths
            raw["adaptation"] = {raw["adaptation"].get("tuning", "last-layer"): raw["adaptation"]}
        return ModelCard(**raw)
    except (TypeError, AttributeError, ValueError) as error:
        raise CardError(f"model card {path} is damaged: {error}") from error


def _check_keys(raw: dict, path: Path) -> None:
    """Every key known and every required one there, or a CardError naming them."""
    known = [f.name for f in fields(ModelCard)]
    unknown = [key for key in raw if key not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise CardError(f"model card {path} has unknown key{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(hints)}; a card holds only: {', '.join(known)}")
    required = [f.name for f in fields(ModelCard)
                if f.default is MISSING and f.default_factory is MISSING]
    missing = [key for key in required if key not in raw]
    if missing:
        raise CardError(f"model card {path} lacks the required key"
                        f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")


def save_card(model_dir: str | Path, card: ModelCard) -> None:
    """Write ``card.json`` and its Markdown rendering, each in one step (a reader never
    finds half a card)."""
    model_dir = Path(model_dir)
    write_json_atomic(model_dir / CARD_FILE, asdict(card), indent=2)
    write_text_atomic(model_dir / CARD_MARKDOWN, render_markdown(card))
