"""The folders a model is trained on, each a *source* with its own split.

Each folder is scanned and split on its own, so each source keeps its proportions in
train, validation and test, and adding a source never moves another's cells; an image
already in an earlier source is left out of later ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hematovision.io.dataset import (
    SPLIT_FILE,
    rank,
    scan_folder,
    source_name,
    split_dataset,
    split_fingerprint,
)
from hematovision.io.decoding import decode_images

if TYPE_CHECKING:
    from hematovision.train.training import TrainingConfig

__all__ = ["Source", "scan_sources", "combined_fingerprint", "decode_sources", "write_split",
           "limit_per_class"]

log = logging.getLogger(__name__)


def limit_per_class(items, limit: int | None):
    """At most ``limit`` items per class, the same ones on every run (``None``: all)."""
    if not limit:
        return items
    kept, per_class = [], Counter()
    for item in sorted(items, key=lambda it: rank(it.sha256)):
        if per_class[item.label] < limit:
            kept.append(item)
            per_class[item.label] += 1
    return sorted(kept, key=lambda it: str(it.path))


def write_split(out_dir: Path, sources, config, fingerprint: str) -> None:
    """Record which file of which source went into which split (``split.json``)."""
    files = []
    for source in sources:
        files += [{"path": item.path.relative_to(source.dataset.root).as_posix(),
                   "sha256": item.sha256, "label": item.label,
                   "split": source.assignment[item.sha256], "source": source.name}
                  for item in source.dataset.items]
    classes = sorted({name for source in sources for name in source.dataset.classes})
    document = {"root": str(sources[0].dataset.root), "fingerprint": fingerprint,
                "sources": [{"name": source.name, "root": str(source.dataset.root),
                             "fingerprint": source.fingerprint} for source in sources],
                "fractions": asdict(config.fractions), "classes": classes, "files": files}
    (out_dir / SPLIT_FILE).write_text(json.dumps(document, indent=0) + "\n")


@dataclass
class Source:
    """One training folder: its cells and its own split."""

    name: str
    dataset: object
    assignment: dict
    fingerprint: str


def scan_sources(data_dirs, config: TrainingConfig) -> list[Source]:
    """Scan and split each folder on its own, so each source keeps its proportions in
    train, validation and test, and adding a source never moves another's cells."""
    sources, seen = [], set()
    for data_dir in data_dirs:
        name = source_name(data_dir)
        if name in {source.name for source in sources}:
            raise ValueError(f"two training folders are named {name}; the split records "
                             "a source by its folder's name: rename one")
        dataset = scan_folder(data_dir, config.classes)
        duplicates = [item for item in dataset.items if item.sha256 in seen]
        if duplicates:
            log.warning("%s: left out %d images already in an earlier source", name,
                        len(duplicates))
        dataset.items = limit_per_class([item for item in dataset.items if item.sha256 not in seen],
                               config.limit_per_class)
        if not dataset.items:
            raise ValueError(f"{data_dir}: every image is already in an earlier source")
        seen.update(item.sha256 for item in dataset.items)
        assignment = split_dataset(dataset, config.fractions)
        sources.append(Source(name, dataset, assignment,
                               split_fingerprint(dataset, assignment)))
    return sources


def combined_fingerprint(sources: list[Source]) -> str:
    """One fingerprint for the splits of all sources."""
    if len(sources) == 1:  # as before sources: a one-folder model's fingerprint is its own
        return sources[0].fingerprint
    text = "\n".join(f"{source.name} {source.fingerprint}" for source in sources)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decode_sources(sources: list[Source], index: dict[str, int], config: TrainingConfig,
                    progress: bool):
    """Each source's training and validation cells as model inputs, their class and
    source indices, the frames they were cut with, and each source's counts by split and
    class."""
    arrays, labels, origin, frames = {}, {}, {}, {}
    per_source = {source.name: {} for source in sources}
    for split in ("train", "val"):
        parts, part_labels, part_origin, part_frames = [], [], [], []
        for number, source in enumerate(sources):
            items = [it for it in source.dataset.items if source.assignment[it.sha256] == split]
            images, kept, _, boxes = decode_images([it.path for it in items], config.input_size,
                                                   progress=progress, framing=config.framing)
            parts.append(images.reshape(-1, config.input_size, config.input_size, 3))
            part_frames += boxes
            part_labels.append(np.array([index[items[i].label] for i in kept], dtype=np.int64))
            part_origin.append(np.full(len(kept), number, dtype=np.int64))
            per_source[source.name][split] = {
                c: int(np.sum(part_labels[-1] == i)) for c, i in index.items()}
        arrays[split] = np.concatenate(parts)
        labels[split] = np.concatenate(part_labels)
        origin[split] = np.concatenate(part_origin)
        frames[split] = part_frames
    for source in sources:
        per_source[source.name]["test"] = {c: sum(
            1 for it in source.dataset.items
            if source.assignment[it.sha256] == "test" and it.label == c) for c in index}
    return arrays, labels, origin, frames, per_source
