"""Uploaded zip files: images come out, hostile members do not."""

from __future__ import annotations

import io
import zipfile

import pytest

from hematovision.io.archive import ArchiveError, ArchiveLimits, read_zip

from .conftest import PBC


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_images_are_read_and_bad_members_reported():
    cell = sorted((PBC / "monocyte").iterdir())[0].read_bytes()
    data = _zip({"cells/a.jpg": cell, "../escape.jpg": cell, "/abs.png": cell,
                 "C:/drive.png": cell, "cell 10:30.jpg": cell,
                 "notes.txt": b"hello", "bomb.png": b"\0" * 5_000_000, ".hidden.jpg": cell})
    members = {m.name: m for m in read_zip(data)}
    assert set(members) == {"cells/a.jpg", "../escape.jpg", "/abs.png", "C:/drive.png",
                            "cell 10:30.jpg", "notes.txt", "bomb.png"}
    assert members["cells/a.jpg"].data == cell and not members["cells/a.jpg"].error
    assert members["cell 10:30.jpg"].data == cell  # a time in a name is no drive
    assert "unsafe path" in members["C:/drive.png"].error
    assert "unsafe path" in members["../escape.jpg"].error
    assert "unsafe path" in members["/abs.png"].error
    assert "not an image" in members["notes.txt"].error
    assert "compression ratio" in members["bomb.png"].error


@pytest.mark.parametrize("data,limits,message", [
    (b"not a zip at all", ArchiveLimits(), "not a readable zip"),
    (_zip({f"{i}.png": b"x" for i in range(5)}), ArchiveLimits(max_files=4), "holds 5 files"),
    (_zip({"a.png": b"x" * 1000}), ArchiveLimits(max_total_bytes=999), "unpacks to"),
])
def test_unusable_archives_are_refused(data, limits, message):
    with pytest.raises(ArchiveError, match=message):
        list(read_zip(data, limits=limits))
