"""The folder walker: linked folders followed, broken links reported, limits kept."""

from __future__ import annotations

import pytest

from hematovision.errors import FolderTooLargeError, HematoVisionError
from hematovision.io.folders import FolderLimits, files_under


def _folder(tmp_path, files: int, size: int):
    for number in range(files):
        (tmp_path / f"{number:03d}.png").write_bytes(b"x" * size)
    return tmp_path


@pytest.mark.parametrize("files, size, limits, error", [
    (3, 10, FolderLimits(max_files=3, max_bytes=30), None),
    (4, 10, FolderLimits(max_files=3, max_bytes=10_000), "more than 3 files"),
    (3, 1024**2, FolderLimits(max_files=100, max_bytes=2 * 1024**2), "more than 2 MB"),
    (5, 10, FolderLimits(), None),  # no limits unless asked
])
def test_the_walker_stops_past_its_limits_naming_the_folder(tmp_path, files, size, limits,
                                                            error):
    folder = _folder(tmp_path, files, size)
    if error is None:
        assert len(files_under(folder, limits).files) == files
        return
    with pytest.raises(FolderTooLargeError, match=error) as caught:
        files_under(folder, limits)
    assert str(folder) in str(caught.value)
    assert isinstance(caught.value, (HematoVisionError, ValueError))


def test_linked_folders_are_followed_once_and_broken_links_reported(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.png").write_bytes(b"a")
    (real / "back").symlink_to(tmp_path, target_is_directory=True)  # a loop
    (real / "gone.png").symlink_to(tmp_path / "nothing.png")
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    contents = files_under(tmp_path)
    assert [p.name for p in contents.files] == ["a.png"]
    assert [p.name for p in contents.broken] == ["gone.png"]
