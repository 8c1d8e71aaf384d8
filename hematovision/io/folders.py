"""Every file under a folder, the way a user means "everything in there".

``Path.rglob`` (before Python 3.13) does not descend into linked folders and silently
drops broken links; a lab that links its class folders in from a shared drive would lose
them without a word. Here linked folders are followed (each real folder once, so a link
back up cannot loop) and broken links are reported instead of vanishing.

A caller that reads what it finds (the Batch page holds every file in memory) passes
:class:`FolderLimits`: the walk stops with :class:`FolderTooLargeError` as soon as the
folder holds more files or bytes than allowed, rather than after listing all of ``/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hematovision.errors import FolderTooLargeError

__all__ = ["FolderContents", "FolderLimits", "files_under"]


@dataclass(frozen=True)
class FolderLimits:
    """The most files and bytes (sizes of the files found, links followed) a walk may
    find; ``None`` for no limit."""

    max_files: int | None = None
    max_bytes: int | None = None


@dataclass
class FolderContents:
    files: list[Path] = field(default_factory=list)  # sorted
    broken: list[Path] = field(default_factory=list)  # links to nothing, and unlistable folders


def files_under(root: str | Path, limits: FolderLimits = FolderLimits()) -> FolderContents:
    """The files under ``root`` (recursive, linked folders followed), hidden ones left out.

    Raises:
        FolderTooLargeError: ``root`` holds more files or bytes than ``limits`` allow.
    """
    contents = FolderContents()
    visited: set[str] = set()
    size = 0

    def unlistable(error: OSError) -> None:
        contents.broken.append(Path(error.filename))

    for folder, subfolders, names in os.walk(root, followlinks=True, onerror=unlistable):
        real = os.path.realpath(folder)
        if real in visited:
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = Path(folder) / name
            if not path.is_file():
                contents.broken.append(path)
                continue
            contents.files.append(path)
            size += _size(path) if limits.max_bytes is not None else 0
            _check(root, limits, len(contents.files), size)
    contents.files.sort()
    contents.broken.sort()
    return contents


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since it was listed: reading it will say so
        return 0


def _check(root: str | Path, limits: FolderLimits, files: int, size: int) -> None:
    if limits.max_files is not None and files > limits.max_files:
        raise FolderTooLargeError(f"{root} holds more than {limits.max_files} files; "
                                  "choose a smaller folder")
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise FolderTooLargeError(f"{root} holds more than {limits.max_bytes / 2**20:.0f} MB "
                                  "of files; choose a smaller folder")
