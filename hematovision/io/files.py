"""Files written whole or not at all, and read back by their fingerprint.

Write a file so that a reader sees the old contents or the new, never half of either.

A card rewritten in place and cut short (a full disk, a killed process, a second writer)
leaves a model folder that no longer loads. Here the text goes to a temporary file in the
same folder, is flushed to disk, and then takes the target's name with ``os.replace``,
which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["write_json_atomic", "write_text_atomic", "sha256_of_file"]


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` by ``text`` in one step; returns the path."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding=encoding) as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private (0600); the target keeps the mode it had.
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data, indent: int | None = 1) -> Path:
    """``data`` as JSON (with a final newline) at ``path``, written in one step."""
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


def sha256_of_file(path: str | Path) -> str:
    """The file's sha256 as 64 hex digits, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
