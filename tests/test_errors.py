"""The user-fixable error family and how the command line reports errors."""

from __future__ import annotations

import argparse

import pytest

from hematovision.cli import entry as cli
from hematovision.errors import (
    CardError,
    FolderTooLargeError,
    HematoVisionError,
    InputError,
    MissingFileError,
)
from hematovision.io.archive import ArchiveError
from hematovision.io.images import ImageError
from hematovision.model.classifier import ModelFileError


@pytest.mark.parametrize("error, builtin", [
    (InputError, ValueError), (CardError, ValueError), (FolderTooLargeError, ValueError),
    (MissingFileError, FileNotFoundError), (ImageError, ValueError),
    (ArchiveError, ValueError), (ModelFileError, RuntimeError),
])
def test_every_user_error_is_one_of_the_family_and_what_older_code_caught(error, builtin):
    assert issubclass(error, HematoVisionError) and issubclass(error, builtin)


def _raising(error: Exception):
    def run(args):
        raise error
    return argparse.Namespace(run=run)


# status, one line on stderr, a traceback without / with --verbose
@pytest.mark.parametrize("error, status, traceback_when_verbose", [
    (InputError("--data x: no images"), 1, False),
    (MissingFileError("model card not found: m/card.json"), 1, False),
    (ValueError("a plain ValueError, maybe a bug"), 1, True),
    (PermissionError(13, "Permission denied", "out.csv"), 1, True),
    (KeyError("oops"), 3, True),
])
def test_the_command_line_says_one_line_and_shows_tracebacks_only_when_asked(
        capsys, error, status, traceback_when_verbose):
    assert cli._run(_raising(error), verbose=False) == status
    quiet = capsys.readouterr().err
    assert quiet.count("\n") == 1 and quiet.startswith("error: ") and "Traceback" not in quiet
    assert cli._run(_raising(error), verbose=True) == status
    verbose = capsys.readouterr().err
    assert ("Traceback" in verbose) == traceback_when_verbose
    assert verbose.rstrip().endswith(quiet.rstrip())
