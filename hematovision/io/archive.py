"""Read images out of an uploaded .zip safely: no path traversal, no zip bombs."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hematovision.errors import HematoVisionError
from hematovision.io.images import IMAGE_SUFFIXES, ImageLimits

__all__ = ["ArchiveError", "ArchiveLimits", "ArchiveMember", "read_zip", "zip_folder"]


class ArchiveError(HematoVisionError, ValueError):
    """The archive as a whole cannot be used (not a zip, too large, too many files)."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int = 2000
    max_total_bytes: int = 500 * 1024 * 1024  # uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed, per member


@dataclass(frozen=True)
class ArchiveMember:
    """One file of the archive: its bytes, or why it was not read."""

    name: str
    data: bytes = b""
    error: str = ""


def _unsafe_name(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    if not path.parts:
        return True
    # A drive ("C:/…") is unsafe; a colon elsewhere is a name ("cell 10:30.jpg").
    return path.is_absolute() or ".." in path.parts or bool(re.match(r"[A-Za-z]:", name))


def read_zip(data: bytes, image_limits: ImageLimits = ImageLimits(),
             limits: ArchiveLimits = ArchiveLimits()) -> Iterator[ArchiveMember]:
    """Yield the image files in a zip archive, in name order.

    Members are never extracted to disk. Names that escape the archive (absolute, ``..``)
    and members whose size or compression ratio is implausible are reported as errors
    instead of read; hidden files, folders and macOS resource forks are left out.

    Raises:
        ArchiveError: the data is not a zip file, or the archive exceeds ``limits``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ArchiveError(f"not a readable zip file ({error})") from error
    members = [m for m in archive.infolist() if not m.is_dir()
               and not PurePosixPath(m.filename).name.startswith(".")
               and "__MACOSX" not in m.filename]
    if len(members) > limits.max_files:
        raise ArchiveError(f"the zip holds {len(members)} files; the limit is {limits.max_files}")
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise ArchiveError(f"the zip unpacks to {total:,} bytes; the limit is "
                           f"{limits.max_total_bytes:,}")
    for member in sorted(members, key=lambda m: m.filename):
        name = member.filename
        if _unsafe_name(name):
            yield ArchiveMember(name, error=f"{name}: unsafe path inside the zip, not read")
        elif PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            yield ArchiveMember(name, error=f"{name}: not an image file")
        elif member.file_size > image_limits.max_bytes:
            yield ArchiveMember(name, error=f"{name}: {member.file_size:,} bytes is larger than "
                                            f"the limit of {image_limits.max_bytes:,} bytes")
        elif member.compress_size and member.file_size / member.compress_size > limits.max_ratio:
            yield ArchiveMember(name, error=f"{name}: implausible compression ratio, not read")
        else:
            try:
                with archive.open(member) as handle:
                    content = handle.read(image_limits.max_bytes + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as error:
                yield ArchiveMember(name, error=f"{name}: cannot be read from the zip ({error})")
                continue
            yield ArchiveMember(name, data=content)


def zip_folder(folder: str | Path) -> bytes:
    """The files of ``folder`` (a model folder, say) as a zip whose entries sit in a folder
    of the same name, so that unpacking it gives the folder back."""
    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()
