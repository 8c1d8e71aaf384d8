"""The audit log: every prediction shown, with hashes instead of images."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone

from hematovision.model.classifier import Classifier
from hematovision.model.prediction import Prediction

__all__ = ["AuditEntry", "audit_entry", "audit_csv"]


@dataclass(frozen=True)
class AuditEntry:
    time: str  # ISO 8601, UTC
    image_sha256: str
    model: str
    model_sha256: str
    label: str
    confidence: float
    status: str
    probabilities: tuple[float, ...]
    classes: tuple[str, ...]  # the answering model's, in the order of ``probabilities``


def audit_entry(classifier: Classifier, image_sha256: str, prediction: Prediction) -> AuditEntry:
    return AuditEntry(datetime.now(timezone.utc).isoformat(timespec="seconds"), image_sha256,
                      classifier.name, classifier.model_sha256, prediction.label,
                      prediction.confidence, prediction.status, prediction.probabilities,
                      tuple(prediction.classes))


def audit_csv(entries: list[AuditEntry]) -> str:
    """The log as CSV: one column per class of every model used in the session, filled by
    class name; a class the answering model does not know stays empty."""
    classes = list(dict.fromkeys(name for e in entries for name in e.classes))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["time", "image_sha256", "model", "model_sha256", "label", "confidence",
                     "status", *classes])
    for e in entries:
        known = dict(zip(e.classes, e.probabilities))
        writer.writerow([e.time, e.image_sha256, e.model, e.model_sha256, e.label,
                         f"{e.confidence:.6f}", e.status,
                         *[f"{known[c]:.6f}" if c in known else "" for c in classes]])
    return buffer.getvalue()
