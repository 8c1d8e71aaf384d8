"""The set-up a new user runs: `make app` on a port of their choice, a quiet install."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .conftest import ROOT


@pytest.mark.parametrize("port, expected", [(None, "--server.port 8501"),
                                            ("8600", "--server.port 8600")])
def test_make_app_serves_on_the_port_given(port, expected):
    if shutil.which("make") is None:
        pytest.fail("make is needed to run the project's set-up")
    command = ["make", "-n", "app"] + ([f"PORT={port}"] if port else [])
    shown = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    serve = [line for line in shown.stdout.splitlines() if "streamlit run" in line]
    assert serve and serve[-1].endswith(expected), shown.stdout


def test_the_licence_is_an_spdx_string_that_setuptools_reads_without_a_warning():
    # setuptools ≥ 77 warns three times per install about `license = { text = ... }`.
    # (tomllib is not in Python 3.10, which the project supports.)
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license\s*=\s*"MIT"\s*$', text, re.MULTILINE), "license is not SPDX"
    minimum = re.search(r'requires\s*=\s*\["setuptools>=(\d+)', text)
    assert minimum and int(minimum.group(1)) >= 77  # the first to read SPDX strings
