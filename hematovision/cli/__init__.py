"""The ``hematovision`` command: one module per command, a thin ``main``."""

from hematovision.cli.entry import main

__all__ = ["main"]
