"""The command line's parser: common options, then each command's own, from its module."""

from __future__ import annotations

import argparse

from hematovision.cli import (
    adapt,
    evaluate,
    explain,
    export,
    familiarity,
    foreign,
    predict,
    report,
    review_threshold,
    train,
)
from hematovision.cli.options import Help

__all__ = ["build_parser", "EXAMPLES", "COMMANDS"]

# Listed in --help in this order: what a user does most comes first.
COMMANDS = (predict, explain, report, train, evaluate, adapt, export, familiarity,
            review_threshold, foreign)

EXAMPLES = {
    "train": ("hematovision train --data ../shared/datasets/pbc "
              "../shared/datasets/raabin_wbc --out models/mine"),
    "evaluate": ("hematovision evaluate --model models/pbc-lite0 --data ../shared/datasets/pbc "
                 "../shared/datasets/zheng2018_d2"),
    "predict": "hematovision predict my_cells/ slide.zip --out results.csv",
    "explain": ("hematovision explain cell.jpg --method lime --class monocyte "
                "--out why.png"),
    "report": "hematovision report my_cells/ --out differential.pdf",
    "adapt": ("hematovision adapt --data my_lab_cells/ --out models/my-lab   "
              "(my_lab_cells/<class>/<image>)"),
    "export": "hematovision export --model models/mine",
    "familiarity": "hematovision familiarity --model models/mine --data ../shared/datasets/pbc",
    "review-threshold": ("hematovision review-threshold --model models/mine "
                         "--data ../shared/datasets/pbc --catch 0.9"),
    "foreign": "hematovision foreign --model models/mine --data ../shared/datasets/pbc",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hematovision")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``hematovision`` parser; a command's ``run`` is in ``args.run``."""
    # Options every command takes, after its name as well as before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show the log messages of TensorFlow and the other libraries")
    parser = argparse.ArgumentParser(
        prog="hematovision", parents=[common],
        description="Classify white blood cells in microscope images and show why.",
        epilog="Run 'hematovision COMMAND --help' for a command's options and an example.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str = ""):
        example = EXAMPLES.get(name)
        return commands.add_parser(
            name, help=help, description=description or help[0].upper() + help[1:] + ".",
            parents=[common], formatter_class=Help,
            epilog=f"example: {example}" if example else None)

    for module in COMMANDS:
        module.add(command)
    return parser
