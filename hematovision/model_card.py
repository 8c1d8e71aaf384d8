"""The model card: everything that belongs to a trained model, stored beside its weights.

Classes, input size, preprocessing, temperature, the review threshold and the Grad-CAM
layer live here rather than in code, so pages and the CLI read them from the model they
are using (Mitchell et al. 2019, "Model Cards for Model Reporting").
"""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

__all__ = ["CARD_FILE", "MODEL_FILE", "ModelCard", "load_card", "save_card", "render_markdown",
           "data_markdown", "training_markdown", "auc_text", "adaptation_text"]

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
    external: list = field(default_factory=list)
    foreign: dict = field(default_factory=dict)
    adaptation: dict = field(default_factory=dict)  # {tuning depth: adaptation study}
    intended_use: str = INTENDED_USE
    out_of_scope: str = OUT_OF_SCOPE
    limitations: tuple[str, ...] = DEFAULT_LIMITATIONS

    def __post_init__(self):
        # A hand-edited card ("input_size": "224") must fail here, naming the field, and
        # not as a TypeError deep inside the network.
        for name, kind in (("input_size", numbers.Integral), ("temperature", numbers.Real),
                           ("review_threshold", numbers.Real), ("model_file", str)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(f"{name} has the wrong type: {value!r}")
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
        FileNotFoundError: the folder or its card is missing (the message names the file).
        ValueError: the card is not valid JSON or lacks required fields.
    """
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"model card not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"model card {path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"model card {path} is not a JSON object of fields")
    known = {f.name for f in fields(ModelCard)}
    try:
        raw = {key: value for key, value in raw.items() if key in known}
        raw["classes"] = tuple(raw["classes"])
        raw["limitations"] = tuple(raw.get("limitations", ()))
        if "rows" in raw.get("adaptation", {}):  # one study, as cards held before depths
            raw["adaptation"] = {raw["adaptation"].get("tuning", "last-layer"): raw["adaptation"]}
        return ModelCard(**raw)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"model card {path} is incomplete or damaged: {error}") from error


def save_card(model_dir: str | Path, card: ModelCard) -> None:
    """Write ``card.json`` and its Markdown rendering."""
    model_dir = Path(model_dir)
    (model_dir / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n", encoding="utf-8")
    (model_dir / CARD_MARKDOWN).write_text(render_markdown(card), encoding="utf-8")


def _pct(value) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f} %"


def auc_text(value: float | None) -> str:
    """The macro AUC to four places; a set of one class has none."""
    return "– (one class only)" if value is None or value != value else f"{value:.4f}"


TUNING_WORDS = {"last-layer": "last layer only", "last-block": "last block and layer"}


def adaptation_text(card: ModelCard, tuning: str = "last-layer") -> str | None:
    """What adapting this model to another laboratory at ``tuning`` depth bought where it
    was measured, in one sentence; ``None`` if it never was. A user deciding whether to
    label cells should see the measured gain, not a promise."""
    study = card.adaptation.get(tuning, {})
    rows = study.get("rows", [])
    if not rows:
        return None
    parts = [f"{row['per_class']} cells per class: {_pct(row['before_balanced_accuracy'])} → "
             f"{_pct(row['after_balanced_accuracy'])}" for row in rows]
    return (f"Measured ({TUNING_WORDS.get(tuning, tuning)}) on {study['data']}, another "
            "laboratory's cells: balanced accuracy on the cells not used for adapting, "
            f"before → after, over {rows[0]['splits']} random splits — " + "; ".join(parts)
            + ".")


def _ci(values) -> str:
    return f" ({_pct(values[0])} – {_pct(values[1])})" if values else ""


def _metrics_table(metrics: dict) -> list[str]:
    lines = [
        f"- accuracy {_pct(metrics.get('accuracy'))}{_ci(metrics.get('accuracy_ci95'))}",
        f"- balanced accuracy {_pct(metrics.get('balanced_accuracy'))}"
        f"{_ci(metrics.get('balanced_accuracy_ci95'))}",
        f"- macro one-vs-rest ROC AUC {auc_text(metrics.get('macro_auc_ovr'))}",
    ]
    if "ece_before_temperature" in metrics:
        lines.append(
            f"- expected calibration error (15 bins): {metrics['ece_before_temperature']:.4f} "
            f"before, {metrics['ece_after_temperature']:.4f} after temperature scaling"
        )
    per_class = metrics.get("per_class", {})
    if per_class:
        lines += ["", "| class | n | precision | recall | F1 (95 % CI) |", "|---|---|---|---|---|"]
        for name, row in per_class.items():
            if not row["support"]:  # recall and F1 are undefined, not 0
                lines.append(f"| {name} | 0 | {_pct(row['precision'])} | – "
                             f"| no cells of this class here |")
                continue
            lines.append(
                f"| {name} | {row['support']} | {_pct(row['precision'])} | {_pct(row['recall'])} "
                f"| {_pct(row['f1'])}{_ci(row.get('f1_ci95'))} |"
            )
    return lines


_FRAMING = {
    "whole": "the whole picture, padded to a square",
    "cell": "a square around the white cell, found by its stained nucleus, with the cell at "
            "about half the frame (the whole picture when none is found, flagged Unfamiliar)",
}


def _flag_lines(metrics: dict) -> list[str]:
    if "share_unfamiliar" not in metrics:
        return []
    return [f"- flagged Unfamiliar {_pct(metrics['share_unfamiliar'])}, Review "
            f"{_pct(metrics.get('share_review'))}; accuracy on the cells not flagged "
            f"Unfamiliar {_pct(metrics.get('accuracy_familiar'))}; of the wrong answers "
            f"{_pct(metrics.get('wrong_flagged'))} were flagged"]


def _cross_lab_table(card: ModelCard) -> list[str]:
    lines = ["## Across laboratories", "",
             "| data | labels | n | accuracy | balanced accuracy | ECE | Unfamiliar |",
             "|---|---|---|---|---|---|---|"]
    rows = [("held-out test", card.metrics, None)] if card.metrics else []
    rows += [(e.get("name", "?"), e.get("metrics", {}), e.get("restricted"))
             for e in card.external]
    for name, strict, restricted in rows:
        for labels, row in (("strict", strict), ("restricted", restricted)):
            if row:
                lines.append(f"| {name} | {labels} | {row.get('n')} | {_pct(row.get('accuracy'))} "
                             f"| {_pct(row.get('balanced_accuracy'))} | "
                             f"{row.get('ece_after_temperature', float('nan')):.3f} | "
                             f"{_pct(strict.get('share_unfamiliar'))} |")
    return [*lines, ""]


def data_markdown(data: dict) -> str:
    """Source, fingerprint and a class × split table of the training data."""
    counts = data.get("counts", {})
    splits = list(counts)
    classes = list(dict.fromkeys(name for split in counts.values() for name in split))
    lines = [f"Source `{data.get('source', '?')}`; split fingerprint "
             f"`{data.get('split_fingerprint', '?')}`"
             + "".join(f"; {key.replace('_', ' ')}: {data[key]}" for key in
                       ("duplicates_removed", "conflicting_groups_dropped", "skipped_files")
                       if key in data) + "."]
    if counts:
        lines += ["", "| class | " + " | ".join(splits) + " |",
                  "|---|" + "---|" * len(splits)]
        lines += [f"| {name} | " + " | ".join(str(counts[split].get(name, 0))
                                               for split in splits) + " |" for name in classes]
        lines.append("| **all** | " + " | ".join(str(sum(counts[split].values()))
                                                   for split in splits) + " |")
    return "\n".join(lines)


def _minutes(seconds) -> str:
    return f"{seconds / 60:.0f} min" if isinstance(seconds, (int, float)) else "?"


def training_markdown(training: dict, record: bool = True) -> str:
    """Hardware, time, runs, settings; with `record`, the raw record folded away."""
    lines = []
    facts = [("hardware", training.get("hardware")),
             ("this run", _minutes(training.get("total_seconds"))),
             ("all runs that led to it", training.get("all_runs_seconds")
              and _minutes(training["all_runs_seconds"])),
             ("validation balanced accuracy", training.get("val_balanced_accuracy")
              and f"{training['val_balanced_accuracy']:.4f}"),
             ("TensorFlow / Keras", training.get("tensorflow")
              and f"{training['tensorflow']} / {training.get('keras', '?')}")]
    lines += [f"- {name}: {value}" for name, value in facts if value]
    if training.get("runs"):
        lines += ["", training["runs"]]
    config = training.get("config", {})
    if config:
        lines += ["", "| setting | value |", "|---|---|"]
        # The card's own review threshold (above) may have been refitted since training.
        lines += [f"| {key.replace('_', ' ')} | {value} |" for key, value in config.items()
                  if value is not None and not isinstance(value, dict)
                  and key != "review_threshold"]
        lines += [f"| augmentation: {key.replace('_', ' ')} | {value} |"
                  for key, value in config.get("augmentation", {}).items()]
    ablation = training.get("augmentation_ablation")
    if ablation:
        lines += ["", f"Augmentation families: {ablation['method']}, "
                      f"{ablation['train_cells']} training cells.", "",
                  "| family | PBC test balanced | zheng2018_d2 balanced |", "|---|---|---|"]
        lines += [f"| {row['family']} | {row['pbc_test_balanced']:.3f} | "
                  f"{row['zheng_balanced']:.3f} |" for row in ablation.get("rows", [])]
    if record:  # earlier runs' settings and anything else, in full
        lines += ["", "<details><summary>Everything recorded about training (card.json)"
                      "</summary>", "", "```json", json.dumps(training, indent=2), "```",
                  "</details>"]
    return "\n".join(lines)


def render_markdown(card: ModelCard) -> str:
    lines = [
        f"# Model card: {card.name}",
        "",
        f"**Classes** ({len(card.classes)}): {', '.join(card.classes)}",
        "",
        f"- **Backbone**: {card.backbone}; weights: {card.weight_source}",
        f"- **Input**: RGB {card.input_size}×{card.input_size}; {card.preprocessing}",
        f"- **Temperature**: {card.temperature:.4f}; "
        f"**review threshold**: {card.review_threshold:.2f}"
        + (f" ({card.review_rule})" if card.review_rule else ""),
        f"- **Model file**: `{card.model_file}` (sha256 `{card.model_sha256}`)",
        f"- **Fast runtime**: `{card.runtime_file or 'none'}` (sha256 `{card.runtime_sha256}`)",
        f"- **Head weights for Grad-CAM without TensorFlow**: "
        f"`{card.head_weights_file or 'none'}` (sha256 `{card.head_weights_sha256}`)",
        f"- **Framing**: {_FRAMING[card.framing]}",
        f"- **Familiarity statistics**: `{card.familiarity_file or 'none'}` "
        f"(sha256 `{card.familiarity_sha256}`)",
        "",
        "## Intended use",
        card.intended_use,
        "",
        "## Out of scope",
        card.out_of_scope,
        "",
    ]
    if card.data:
        lines += ["## Data", data_markdown(card.data), ""]
    if card.training:
        lines += ["## Training", training_markdown(card.training), ""]
    if card.metrics:
        lines += ["## Held-out test results", *_metrics_table(card.metrics),
                  *_flag_lines(card.metrics), ""]
    if card.external:
        lines += _cross_lab_table(card)
    for result in card.external:
        lines += [f"## External data: {result.get('name', '?')}",
                  *_metrics_table(result.get("metrics", {})),
                  *_flag_lines(result.get("metrics", {}))]
        if "restricted" in result:
            lines += ["", "Restricted to the classes present:",
                      *_metrics_table(result["restricted"])]
        lines.append("")
    if card.foreign:
        lines += ["## Images that are not blood cells",
                  f"Flagged Unfamiliar: {card.foreign['flagged']} of {card.foreign['n']} "
                  f"({_pct(card.foreign['share_flagged'])}); measured with "
                  "`hematovision foreign`.", "", "| kind | n | flagged |", "|---|---|---|"]
        lines += [f"| {kind} | {row['n']} | {_pct(row['share_flagged'])} |"
                  for kind, row in card.foreign.get("kinds", {}).items()]
        lines.append("")
    for tuning, study in card.adaptation.items():
        lines += [f"## Adapting to another laboratory ({study['data']}): "
                  f"{TUNING_WORDS.get(tuning, tuning)}",
                  "Adapted on N cells per class (at most half of a class), scored on the "
                  "rest; mean ± sd over random splits (`hematovision adapt --study`).",
                  "", "| cells/class | balanced before | balanced after | accuracy after "
                  "| ECE after |", "|---|---|---|---|---|"]
        lines += [f"| {row['per_class']} | {_pct(row['before_balanced_accuracy'])} | "
                  f"{_pct(row['after_balanced_accuracy'])} ± "
                  f"{100 * row['after_balanced_accuracy_sd']:.1f} | "
                  f"{_pct(row['after_accuracy'])} | {row['after_ece']:.3f} |"
                  for row in study.get("rows", [])]
        lines.append("")
    if card.limitations:
        lines += ["## Known limitations", *[f"- {item}" for item in card.limitations], ""]
    return "\n".join(lines)
