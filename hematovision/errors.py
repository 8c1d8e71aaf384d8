"""The errors a user can fix: one family, so that a caller catches exactly those.

A plain ``ValueError`` from deep inside NumPy or Keras is a bug to report; a
:class:`HematoVisionError` is something the user did (a damaged card, a folder too large,
an unknown class) and its message says what to change. Each one also subclasses the
built-in error that code written before the family caught (as scikit-learn's
``NotFittedError`` is also a ``ValueError``), so older ``except ValueError`` still works.

The CLI turns the family into one line and exit status 1; pages show it with
``st.error``.
"""

from __future__ import annotations

__all__ = ["CardError", "FolderTooLargeError", "HematoVisionError", "InputError",
           "MissingFileError"]


class HematoVisionError(Exception):
    """Something the user can fix; the message names the value and what was expected."""


class InputError(HematoVisionError, ValueError):
    """An argument, file or setting the user gave cannot be used."""


class MissingFileError(HematoVisionError, FileNotFoundError):
    """A file or folder the user named is not there."""


class CardError(HematoVisionError, ValueError):
    """A model card (``card.json``) is missing a field, has an unknown one, or is damaged."""


class FolderTooLargeError(HematoVisionError, ValueError):
    """A folder holds more files or bytes than the walker is allowed to read."""
