"""The audit log: every prediction shown, with hashes instead of images."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone

from hematovision.classifier import Classifier, Prediction

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


def audit_entry(classifier: Classifier, image_sha256: str, prediction: Prediction) -> AuditEntry:
    return AuditEntry(datetime.now(timezone.utc).isoformat(timespec="seconds"), image_sha256,
                      classifier.name, classifier.model_sha256, prediction.label,
                      prediction.confidence, prediction.status, prediction.probabilities)


def audit_csv(entries: list[AuditEntry], classes: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["time", "image_sha256", "model", "model_sha256", "label", "confidence",
                     "status", *classes])
    for e in entries:
        writer.writerow([e.time, e.image_sha256, e.model, e.model_sha256, e.label,
                         f"{e.confidence:.6f}", e.status, *[f"{p:.6f}" for p in e.probabilities]])
    return buffer.getvalue()
