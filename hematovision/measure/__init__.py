"""Measuring a model: metrics, evaluation on held-out cells, and the checks beside it.

- ``metrics``: balanced accuracy, per-class report, bootstrap intervals;
- ``evaluation``: a model on its test split or another folder, written to its card;
- ``source_benchmark``: leave one source out;
- ``foreign``: the foreign test set (what should be flagged Unfamiliar);
- ``explanation_checks``: faithfulness, pointing game and randomisation of the explainers.
"""

from hematovision.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "metrics": ("balanced_accuracy", "classification_report", "bootstrap_metrics"),
    "evaluation": ("evaluate", "format_report", "format_table"),
    "foreign": ("foreign_images", "measure_foreign"),
    "explanation_checks": ("run_checks", "save_checks"),
})
