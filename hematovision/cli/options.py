"""What the commands share: argparse types, the help format, the common options, and
the safe way to build a model folder."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["count", "share", "Help", "model_option", "quiet_option", "default_model_dir",
           "new_model_folder", "class_list", "writable", "show_progress"]


@contextlib.contextmanager
def new_model_folder(out: str, overwrite: bool, source: str | None = None):
    """The folder to build a model in. Refuses to write over a model unless asked; when
    asked, the new model is built beside the old one and takes its place only once it is
    complete, so a run that fails (bad data, a wrong option, Ctrl-C) leaves the old model
    as it was, and none of the old model's reports is read as the new one's."""
    from hematovision.model.card import CARD_FILE

    folder = Path(out)
    if source and Path(source).resolve() == folder.resolve():
        raise ValueError(f"--out {out} is the model it starts from; choose a new folder")
    if not (folder / CARD_FILE).is_file():
        yield folder
        return
    if not overwrite:
        raise ValueError(f"{out} already holds a model; choose another --out, or pass "
                         "--overwrite to replace it")
    building = folder.with_name(f".{folder.name}.new-{os.getpid()}")
    try:
        yield building
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    retired = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    folder.rename(retired)
    building.rename(folder)
    shutil.rmtree(retired)


def class_list(text: str) -> tuple[str, ...]:
    """``"Monocyte, basophil,basophil"`` → ``("basophil", "monocyte")``: folder names match
    without regard to case, and a model's classes are in name order, as when found."""
    return tuple(sorted({name.strip().lower() for name in text.split(",") if name.strip()}))


def writable(out: str) -> None:
    """Check an output file's place before the slow work, not after it."""
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder {path.parent} does not exist")


def show_progress(fraction: float, message: str) -> None:
    """Progress as one line per step, for commands without a bar."""
    print(f"[{100 * fraction:3.0f} %] {message}", flush=True)


def count(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value
    parse.__name__ = "whole number"  # what argparse names in its error
    return parse


def share(zero: bool = True):
    """An argparse type: a number from 0 to 1, or above 0 when ``zero`` is not allowed (a
    share of errors to catch: 0 is refused here rather than after hours of training, where
    the threshold is fitted)."""
    words = "between 0 and 1" if zero else "above 0 and at most 1"

    def parse(text: str) -> float:
        value = float(text)
        if not (value >= 0.0 if zero else value > 0.0) or value > 1.0:
            raise argparse.ArgumentTypeError(f"must lie {words}, got {value}")
        return value
    parse.__name__ = "number"  # what argparse names in its error
    return parse


class Help(argparse.HelpFormatter):
    """Help that states an option's default where it has one worth stating."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or not action.option_strings or default is None
                or default is False or default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def default_model_dir() -> Path:
    """The default model folder (imported on use: ``--help`` stays light)."""
    from hematovision.model.store import default_model_dir as find

    return find()


def model_option(sub: argparse.ArgumentParser, required: bool = False,
                 what: str = "model folder") -> None:
    """``--model``: required, or the default model."""
    if required:
        sub.add_argument("--model", required=True, help=what)
    else:
        sub.add_argument("--model", default=str(default_model_dir()),
                         help=f"{what} ($HEMATOVISION_MODEL if set, else the shipped model)")


def quiet_option(sub: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar."""
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
