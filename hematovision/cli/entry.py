"""``hematovision``: parse the command line, run the command, say errors in one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["main", "USER_ERROR", "BUG"]


def main(argv: list[str] | None = None) -> int:
    """Run ``hematovision`` with ``argv`` (default: the command line); returns the exit status."""
    from hematovision.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    # TensorFlow's C++ start-up notes (CPU features, oneDNN) say nothing to a user; read
    # before TensorFlow is first imported, which is why it is set here. --verbose wins over
    # a level set in the environment: whoever asks for the log lines means it.
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return _run(args, verbose)


# Exit statuses: 0 done; 1 the user can fix something (HematoVisionError, a file the
# system could not read or write, and, until every module raises the family, a plain
# ValueError), or some inputs failed (predict); 2 argparse's, a bad option; 3 a bug.
USER_ERROR, BUG = 1, 3


def _run(args: argparse.Namespace, verbose: bool) -> int:
    """Run the command; an error becomes one line on stderr, with the traceback under
    ``--verbose`` unless it is one of ours (whose message says all there is)."""
    import traceback

    from hematovision.errors import HematoVisionError

    try:
        return args.run(args)
    except (HematoVisionError, OSError, ValueError) as error:
        if verbose and not isinstance(error, HematoVisionError):
            traceback.print_exc()
        print(f"error: {_error_text(error)}", file=sys.stderr)
        return USER_ERROR
    except Exception as error:  # noqa: BLE001 - a bug: say so, in one line unless asked
        if verbose:
            traceback.print_exc()
        print(f"error: unexpected {type(error).__name__}: {error} (a bug in hematovision; "
              "run again with --verbose for the traceback and report it)", file=sys.stderr)
        return BUG


def _error_text(error: Exception) -> str:
    """The message, with the file named: a disk that fills up says only "[Errno 28] …"."""
    if isinstance(error, OSError) and error.strerror and error.args[1:] == (error.strerror,):
        return f"{error.filename or 'writing the output'}: {error.strerror}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
