"""The model card as Markdown (``MODEL_CARD.md``) and the sentences pages quote from it.

Kept apart from :mod:`hematovision.model.card`, which reads and writes the card's fields:
what a card holds and how it is shown change for different reasons.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hematovision.model.card import ModelCard, ModelConfig, ModelResults

__all__ = ["TUNING_WORDS", "adaptation_text", "auc_text", "data_markdown", "percent_text",
           "render_markdown", "training_markdown"]


def percent_text(value: float | None) -> str:
    """A share as a percentage to one place (``0.973`` → ``97.3 %``); ``–`` when unknown."""
    return "–" if value is None or value != value else f"{100 * value:.1f} %"


def auc_text(value: float | None) -> str:
    """The macro AUC to four places; a set of one class has none."""
    return "– (one class only)" if value is None or value != value else f"{value:.4f}"


TUNING_WORDS = {"last-layer": "last layer only", "last-block": "last block and layer"}


def adaptation_text(card: ModelCard, tuning: str = "last-layer") -> str | None:
    """What adapting this model to another laboratory at ``tuning`` depth bought where it
    was measured, in one sentence; ``None`` if it never was. A user deciding whether to
    label cells should see the measured gain, not a promise."""
    study = card.results.adaptation.get(tuning, {})
    rows = study.get("rows", [])
    if not rows:
        return None
    parts = [f"{row['per_class']} cells per class: "
             f"{percent_text(row['before_balanced_accuracy'])} → "
             f"{percent_text(row['after_balanced_accuracy'])}" for row in rows]
    return (f"Measured ({TUNING_WORDS.get(tuning, tuning)}) on {study['data']}, another "
            "laboratory's cells: balanced accuracy on the cells not used for adapting, "
            f"before → after, over {rows[0]['splits']} random splits — " + "; ".join(parts)
            + ".")


def _ci(values) -> str:
    return f" ({percent_text(values[0])} – {percent_text(values[1])})" if values else ""


def _metrics_table(metrics: dict) -> list[str]:
    lines = [
        f"- accuracy {percent_text(metrics.get('accuracy'))}{_ci(metrics.get('accuracy_ci95'))}",
        f"- balanced accuracy {percent_text(metrics.get('balanced_accuracy'))}"
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
                lines.append(f"| {name} | 0 | {percent_text(row['precision'])} | – "
                             f"| no cells of this class here |")
                continue
            lines.append(
                f"| {name} | {row['support']} | {percent_text(row['precision'])} "
                f"| {percent_text(row['recall'])} "
                f"| {percent_text(row['f1'])}{_ci(row.get('f1_ci95'))} |"
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
    return [f"- flagged Unfamiliar {percent_text(metrics['share_unfamiliar'])}, Review "
            f"{percent_text(metrics.get('share_review'))}; accuracy on the cells not flagged "
            f"Unfamiliar {percent_text(metrics.get('accuracy_familiar'))}; of the wrong answers "
            f"{percent_text(metrics.get('wrong_flagged'))} were flagged"]


def _cross_lab_table(results: ModelResults) -> list[str]:
    lines = ["## Across laboratories", "",
             "| data | labels | n | accuracy | balanced accuracy | ECE | Unfamiliar |",
             "|---|---|---|---|---|---|---|"]
    rows = [("held-out test", results.metrics, None)] if results.metrics else []
    rows += [(e.get("name", "?"), e.get("metrics", {}), e.get("restricted"))
             for e in results.external]
    for name, strict, restricted in rows:
        for labels, row in (("strict", strict), ("restricted", restricted)):
            if row:
                lines.append(f"| {name} | {labels} | {row.get('n')} "
                             f"| {percent_text(row.get('accuracy'))} "
                             f"| {percent_text(row.get('balanced_accuracy'))} | "
                             f"{row.get('ece_after_temperature', float('nan')):.3f} | "
                             f"{percent_text(strict.get('share_unfamiliar'))} |")
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


def _source_benchmark_table(benchmark: dict) -> list[str]:
    lines = ["## Leave one source out",
             f"Measured with `{benchmark.get('command', 'benchmarks/sources.py')}`: each "
             "model on every set, a source it learned from by its held-out test split.", "",
             "| model | data | seen in training | n | balanced, 4 common cells | balanced "
             "| ECE | Unfamiliar | Confident and wrong |", "|---|---|---|---|---|---|---|---|---|"]
    for row in benchmark["rows"]:
        common = row.get("balanced_common")
        lines.append(
            f"| {row['model']} | {row['data']} | "
            f"{'test split' if row['role'] == 'held-out test split' else 'never'} | "
            f"{row['n']} | {'–' if common is None else f'{common:.3f}'} | "
            f"{row['balanced']:.3f} | {row['ece']:.3f} | "
            f"{percent_text(row['share_unfamiliar'])} | "
            f"{percent_text(row['share_confident_wrong'])} |")
    return lines + [""]


def _config_lines(config: ModelConfig) -> list[str]:
    return [
        f"**Classes** ({len(config.classes)}): {', '.join(config.classes)}",
        "",
        f"- **Backbone**: {config.backbone}; weights: {config.weight_source}",
        f"- **Input**: RGB {config.input_size}×{config.input_size}; {config.preprocessing}",
        f"- **Temperature**: {config.temperature:.4f}; "
        f"**review threshold**: {config.review_threshold:.2f}"
        + (f" ({config.review_rule})" if config.review_rule else ""),
        f"- **Model file**: `{config.model_file}` (sha256 `{config.model_sha256}`)",
        f"- **Fast runtime**: `{config.runtime_file or 'none'}` "
        f"(sha256 `{config.runtime_sha256}`)",
        f"- **Framing**: {_FRAMING[config.framing]}",
        f"- **Familiarity statistics**: `{config.familiarity_file or 'none'}` "
        f"(sha256 `{config.familiarity_sha256}`)",
    ]


def _foreign_lines(foreign: dict) -> list[str]:
    lines = ["## Images that are not blood cells",
             f"Flagged Unfamiliar: {foreign['flagged']} of {foreign['n']} "
             f"({percent_text(foreign['share_flagged'])}); measured with "
             "`hematovision foreign`.", "", "| kind | n | flagged |", "|---|---|---|"]
    lines += [f"| {kind} | {row['n']} | {percent_text(row['share_flagged'])} |"
              for kind, row in foreign.get("kinds", {}).items()]
    return [*lines, ""]


def _adaptation_lines(adaptation: dict) -> list[str]:
    lines = []
    for tuning, study in adaptation.items():
        lines += [f"## Adapting to another laboratory ({study['data']}): "
                  f"{TUNING_WORDS.get(tuning, tuning)}",
                  "Adapted on N cells per class (at most half of a class), scored on the "
                  "rest; mean ± sd over random splits (`hematovision adapt --study`).",
                  "", "| cells/class | balanced before | balanced after | accuracy after "
                  "| ECE after |", "|---|---|---|---|---|"]
        lines += [f"| {row['per_class']} | {percent_text(row['before_balanced_accuracy'])} | "
                  f"{percent_text(row['after_balanced_accuracy'])} ± "
                  f"{100 * row['after_balanced_accuracy_sd']:.1f} | "
                  f"{percent_text(row['after_accuracy'])} | {row['after_ece']:.3f} |"
                  for row in study.get("rows", [])]
        lines.append("")
    return lines


def _results_lines(results: ModelResults) -> list[str]:
    lines = []
    if results.data:
        lines += ["## Data", data_markdown(results.data), ""]
    if results.training:
        lines += ["## Training", training_markdown(results.training), ""]
    if results.metrics:
        lines += ["## Held-out test results", *_metrics_table(results.metrics),
                  *_flag_lines(results.metrics), ""]
    for name, metrics in results.source_tests.items():
        lines += [f"## Held-out test results: source {name}", *_metrics_table(metrics),
                  *_flag_lines(metrics), ""]
    if results.source_benchmark.get("rows"):
        lines += _source_benchmark_table(results.source_benchmark)
    if results.external:
        lines += _cross_lab_table(results)
    for result in results.external:
        lines += [f"## External data: {result.get('name', '?')}",
                  *_metrics_table(result.get("metrics", {})),
                  *_flag_lines(result.get("metrics", {}))]
        if "restricted" in result:
            lines += ["", "Restricted to the classes present:",
                      *_metrics_table(result["restricted"])]
        lines.append("")
    if results.foreign:
        lines += _foreign_lines(results.foreign)
    return lines + _adaptation_lines(results.adaptation)


def render_markdown(card: ModelCard) -> str:
    """The whole card for a reader: its config, its use, its results, its limitations."""
    lines = [f"# Model card: {card.name}", "", *_config_lines(card.config), "",
             "## Intended use", card.intended_use, "",
             "## Out of scope", card.out_of_scope, "",
             *_results_lines(card.results)]
    if card.limitations:
        lines += ["## Known limitations", *[f"- {item}" for item in card.limitations], ""]
    return "\n".join(lines)
