"""The model card: everything that belongs to a trained model, stored beside its weights.

A card has two parts and a few words for its reader (Mitchell et al. 2019, "Model Cards
for Model Reporting"):

- ``config`` (:class:`ModelConfig`): what the weights need to be used. Classes, input
  size, preprocessing, temperature, the Review threshold, the Grad-CAM layer, the framing
  and the files beside the weights with their sha256 live here rather than in code, so
  pages and the CLI read them from the model they are using. Every field is typed and
  checked.
- ``results`` (:class:`ModelResults`): what was measured and recorded about the model
  (its training, data, test metrics, external evaluations, studies). Nothing in it
  changes a prediction; commands add to it as they measure.
- ``name``, ``intended_use``, ``out_of_scope`` and ``limitations``: what the card tells a
  person.

``card.json`` holds ``{"name": …, "config": {…}, "intended_use": …, "out_of_scope": …,
"limitations": […], "results": {…}}``.

A card fails closed: a key it does not know (a misspelt ``familiarity_file`` would switch
the Unfamiliar checks off without a word) or a required key it lacks is an error that
names the key and the file; a value of the wrong type names its field.

Cards written before the split (every field at the top level, as a model trained by an
earlier version has) still load: their keys are sorted into the parts by name, under the
same rules, so an unknown key is still an error. Reading never rewrites a folder; the
next :func:`save_card` (a command that records a result, say) writes the split layout.

The card's Markdown rendering is :mod:`hematovision.model.card_markdown`.
"""

from __future__ import annotations

import difflib
import json
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from hematovision.errors import CardError, MissingFileError
from hematovision.io.files import write_json_atomic, write_text_atomic
from hematovision.model.card_markdown import render_markdown

__all__ = ["CARD_FILE", "CARD_MARKDOWN", "MODEL_FILE", "ModelCard", "ModelConfig",
           "ModelResults", "load_card", "save_card"]

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


# What each annotation of a card's parts accepts; a sequence may come as a list or a tuple.
_KINDS = {"str": str, "int": numbers.Integral, "float": numbers.Real, "dict": dict,
          "list": (list, tuple), "tuple[str, ...]": (list, tuple)}


def _check_types(part) -> None:
    """Every field of ``part`` of the kind its annotation names, or a TypeError that starts
    with the field's name (:func:`load_card` puts the part's name before it)."""
    # A hand-edited card ("input_size": "224", "metrics": "good") must fail here,
    # naming the field, and not as a TypeError deep inside the network or a page.
    for spec in fields(part):
        value = getattr(part, spec.name)
        kind = _KINDS[spec.type]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise TypeError(f"{spec.name} has the wrong type: {value!r} (expected "
                            f"{spec.type})")
        if kind == (list, tuple) and spec.type.startswith("tuple"):
            object.__setattr__(part, spec.name, tuple(value))  # a list from JSON


@dataclass(frozen=True)
class ModelConfig:
    """What the weights need: how to feed them, read their output and find their files."""

    classes: tuple[str, ...]
    backbone: str
    input_size: int  # pixels of the square the model takes
    preprocessing: str
    weight_source: str
    gradcam_layer: str
    temperature: float
    review_threshold: float  # the top probability under which an answer is Review
    review_rule: str = ""  # how the threshold was set (see calibration.fit_review_threshold)
    framing: str = "whole"  # "cell": inputs are framed around their white cell first
    model_file: str = MODEL_FILE
    model_sha256: str = ""
    runtime_file: str = ""
    runtime_sha256: str = ""
    familiarity_file: str = ""
    familiarity_sha256: str = ""
    head_weights_file: str = ""  # the linear head after the Grad-CAM layer (runtime.load_head)
    head_weights_sha256: str = ""
    head: dict = field(default_factory=dict)  # the layers after the backbone, described

    def __post_init__(self):
        _check_types(self)
        if not all(isinstance(name, str) and name for name in self.classes):
            raise TypeError(f"classes must be names, got {list(self.classes)!r}")
        if not self.classes:
            raise ValueError("classes must name at least one class")
        if not 0.0 < self.temperature:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.review_threshold <= 1.0:
            raise ValueError(f"review_threshold must lie in [0, 1], got {self.review_threshold}")
        if self.framing not in ("whole", "cell"):
            raise ValueError(f"framing must be 'whole' or 'cell', got {self.framing!r}")


@dataclass(frozen=True)
class ModelResults:
    """What was measured and recorded about the model; none of it changes a prediction."""

    training: dict = field(default_factory=dict)  # settings, time, hardware, earlier runs
    data: dict = field(default_factory=dict)  # the training data: source, counts, split
    metrics: dict = field(default_factory=dict)  # the first source's held-out test split
    source_tests: dict = field(default_factory=dict)  # {source: its test split's metrics}
    source_benchmark: dict = field(default_factory=dict)  # benchmarks/sources.py's table
    external: list = field(default_factory=list)  # [{name, metrics, restricted?}]
    foreign: dict = field(default_factory=dict)  # images that are not blood cells
    adaptation: dict = field(default_factory=dict)  # {tuning depth: adaptation study}

    def __post_init__(self):
        _check_types(self)


@dataclass(frozen=True)
class ModelCard:
    """A model's config, its results, and what it tells a person about its use."""

    name: str
    config: ModelConfig
    intended_use: str = INTENDED_USE
    out_of_scope: str = OUT_OF_SCOPE
    limitations: tuple[str, ...] = DEFAULT_LIMITATIONS
    results: ModelResults = field(default_factory=ModelResults)

    def __post_init__(self):
        _check_types(self)

    def with_config(self, **changes) -> ModelCard:
        """This card with some config fields changed (``card.with_config(temperature=1.2)``)."""
        return replace(self, config=replace(self.config, **changes))

    def with_results(self, **changes) -> ModelCard:
        """This card with some results replaced (``card.with_results(foreign=summary)``)."""
        return replace(self, results=replace(self.results, **changes))


_KINDS.update(ModelConfig=ModelConfig, ModelResults=ModelResults)
_PARTS = {"config": ModelConfig, "results": ModelResults}
_TOP = tuple(f.name for f in fields(ModelCard) if f.name not in _PARTS)


def _required(cls) -> list[str]:
    return [f.name for f in fields(cls) if f.default is MISSING
            and f.default_factory is MISSING]


def load_card(model_dir: str | Path) -> ModelCard:
    """Read ``card.json`` from a model folder, in the split layout or the older flat one.

    Raises:
        MissingFileError: the folder or its card is missing (a ``FileNotFoundError``).
        CardError: the card is not valid JSON, has a key a card does not know, lacks a
            required one, or holds a wrong value (a ``ValueError``); the message names the
            key (``config.input_size``) and the file.
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
    flat = not any(part in raw for part in _PARTS)
    top, parts = _sorted_flat(raw) if flat else _split(raw, path)
    _check_keys(top, parts, path, flat)
    adaptation = parts["results"].get("adaptation", {})
    if isinstance(adaptation, dict) and "rows" in adaptation:  # one study, before depths
        parts["results"]["adaptation"] = {adaptation.get("tuning", "last-layer"): adaptation}
    built = {}
    for part, cls in _PARTS.items():
        try:
            built[part] = cls(**parts[part])
        except (TypeError, ValueError) as error:
            where = "" if flat else f"{part}."
            raise CardError(f"model card {path} is damaged: {where}{error}") from error
    try:
        return ModelCard(**top, **built)
    except (TypeError, ValueError) as error:
        raise CardError(f"model card {path} is damaged: {error}") from error


def _sorted_flat(raw: dict) -> tuple[dict, dict[str, dict]]:
    """A card written before the split, its keys sorted into their parts by name; a key
    no part knows stays at the top, where :func:`_check_keys` refuses it."""
    owner = {f.name: part for part, cls in _PARTS.items() for f in fields(cls)}
    parts = {part: {} for part in _PARTS}
    top = {}
    for key, value in raw.items():
        (parts[owner[key]] if key in owner else top)[key] = value
    return top, parts


def _split(raw: dict, path: Path) -> tuple[dict, dict[str, dict]]:
    """The top-level keys and each part of a card in the split layout."""
    parts = {part: raw.get(part, {}) for part in _PARTS}
    for part, value in parts.items():
        if not isinstance(value, dict):
            raise CardError(f"model card {path}: {part} must be a JSON object of fields, "
                            f"not {type(value).__name__}")
    return {key: value for key, value in raw.items() if key not in _PARTS}, dict(parts)


def _check_keys(top: dict, parts: dict[str, dict], path: Path, flat: bool) -> None:
    """Every key known and every required one there, or a CardError naming them."""
    # Each key as this layout writes it: "temperature" (flat) or "config.temperature".
    spelt = {name: name for name in (*_TOP, *(() if flat else _PARTS))}
    spelt.update({f.name: f.name if flat else f"{part}.{f.name}"
                  for part, cls in _PARTS.items() for f in fields(cls)})
    known = {"": list(spelt) if flat else [*_TOP, *_PARTS],
             **{part: [f.name for f in fields(cls)] for part, cls in _PARTS.items()}}
    unknown = [(part, key) for part, keys in {"": top, **parts}.items() for key in keys
               if key not in known[part]]
    if unknown:
        hints = []
        for part, key in unknown:
            # Searched over every part, so a key put in the wrong one is shown its place.
            close = difflib.get_close_matches(key, list(spelt), n=1)
            hints.append(repr(f"{part}.{key}" if part else key)
                         + (f" (did you mean {spelt[close[0]]!r}?)" if close else ""))
        holds = "; ".join(f"{part or 'a card'} holds only: {', '.join(known[part])}"
                          for part in dict.fromkeys(part for part, _ in unknown))
        raise CardError(f"model card {path} has unknown key{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(hints)}; {holds}")
    missing = [spelt[name] for name in _required(ModelCard)
               if name not in _PARTS and name not in top]
    missing += [spelt[name] for part, cls in _PARTS.items() for name in _required(cls)
                if name not in parts[part]]
    if missing:
        raise CardError(f"model card {path} lacks the required key"
                        f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")


def save_card(model_dir: str | Path, card: ModelCard) -> None:
    """Write ``card.json`` (in the split layout) and its Markdown rendering, each in one
    step (a reader never finds half a card)."""
    model_dir = Path(model_dir)
    write_json_atomic(model_dir / CARD_FILE, asdict(card), indent=2)
    write_text_atomic(model_dir / CARD_MARKDOWN, render_markdown(card))
