"""Without the datasets the tests that need them are skipped and the others run; under CI
their absence is an error, so CI can never pass by skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import HERE, ROOT

# One test that reads a cell, one that reads nothing, one whose helper reads a cell and one
# given a path under the datasets: the three ways conftest finds a test that needs them.
SAMPLE = '''
import pytest

from conftest import PBC


def _first_cell():
    return next(PBC.iterdir())


def test_reads_a_cell():
    assert any(PBC.iterdir())


def test_needs_nothing():
    assert 1 + 1 == 2


def test_reads_a_cell_through_a_helper():
    assert _first_cell()


@pytest.mark.parametrize("folder", [PBC])
def test_given_a_folder_of_cells(folder):
    assert folder.is_dir()
'''


def _run(tmp_path: Path, datasets: Path, ci: str | None) -> subprocess.CompletedProcess:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {key: value for key, value in os.environ.items()
           if key not in ("CI", "PYTEST_ADDOPTS")}
    env.update(HEMATOVISION_DATASETS=str(datasets), PYTHONPATH=str(ROOT))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("ci", [None, "false"])
def test_without_the_datasets_their_tests_are_skipped_by_name_and_the_rest_run(tmp_path, ci):
    nowhere = tmp_path / "nowhere"
    result = _run(tmp_path, nowhere, ci)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 3 skipped" in result.stdout
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all(str(nowhere) in line and "HEMATOVISION_DATASETS" in line
                           for line in skipped)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_missing_datasets_are_an_error_not_a_skip(tmp_path, ci):
    nowhere = tmp_path / "nowhere"
    result = _run(tmp_path, nowhere, ci)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"datasets not found at {nowhere}" in result.stderr
    assert "passed" not in result.stdout and "skipped" not in result.stdout


def test_with_the_datasets_every_test_runs(tmp_path):
    datasets = tmp_path / "datasets"
    (datasets / "pbc").mkdir(parents=True)
    (datasets / "pbc" / "cell.jpg").write_bytes(b"")
    result = _run(tmp_path, datasets, "true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout and "skipped" not in result.stdout
