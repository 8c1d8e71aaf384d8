"""Every file under a folder, the way a user means "everything in there".

``Path.rglob`` (before Python 3.13) does not descend into linked folders and silently
drops broken links; a lab that links its class folders in from a shared drive would lose
them without a word. Here linked folders are followed (each real folder once, so a link
back up cannot loop) and broken links are reported instead of vanishing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FolderContents", "files_under"]


@dataclass
class FolderContents:
    files: list[Path] = field(default_factory=list)  # sorted
    broken: list[Path] = field(default_factory=list)  # links to nothing, and unlistable folders


def files_under(root: str | Path) -> FolderContents:
    """The files under ``root`` (recursive, linked folders followed), hidden ones left out."""
    contents = FolderContents()
    visited: set[str] = set()

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
            (contents.files if path.is_file() else contents.broken).append(path)
    contents.files.sort()
    contents.broken.sort()
    return contents
