"""What is shown and handed on: batches, PDF reports, charts, the audit page's tables.

- ``batch``: many cells classified into a table and a differential count;
- ``pdf``: the PDF report; ``audit``: the audit log;
- ``charts`` and ``model_charts``: Plotly figures; ``model_report``: what the audit page
  reads from a model folder;
- ``atlas``: teaching notes per class; ``examples``: example cells from the test split.
"""

from hematovision.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "batch": ("classify_sources", "differential", "results_csv", "CellResult"),
    "pdf": ("build_report",),
    "audit": ("audit_entry", "audit_csv"),
    "charts": ("probability_bars", "differential_bars"),
    "atlas": ("ATLAS", "notes_for"),
    "examples": ("example_cells", "example_classes"),
})
