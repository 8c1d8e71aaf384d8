"""``hematovision foreign``: how many clearly foreign images the model flags Unfamiliar."""

from __future__ import annotations

from pathlib import Path

from hematovision.cli.options import model_option

__all__ = ["add", "run"]


def run(args) -> int:
    """Measure the share of foreign images flagged Unfamiliar; record it in the card."""

    from hematovision.io.dataset import test_split_files
    from hematovision.io.files import write_json_atomic
    from hematovision.measure.foreign import measure_foreign
    from hematovision.model.card import load_card, save_card
    from hematovision.model.classifier import Classifier

    classifier = Classifier(args.model)
    files = test_split_files(args.model, args.data)
    if files is None:
        from hematovision.errors import InputError

        raise InputError(f"{args.data} does not hold {args.model}'s test split")
    result = measure_foreign(classifier, [path for path, _ in files])
    write_json_atomic(Path(args.model) / "foreign.json", result)
    summary = {key: value for key, value in result.items() if key != "images"}
    save_card(args.model, load_card(args.model).with_results(foreign=summary))
    for kind, row in result["kinds"].items():
        print(f"{kind:<16} {row['flagged']:>4}/{row['n']:<4} flagged Unfamiliar")
    print(f"{'all':<16} {result['flagged']:>4}/{result['n']:<4} "
          f"({100 * result['share_flagged']:.1f} %)")
    return 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    foreign = command("foreign",
                      "measure how many clearly foreign images the model flags Unfamiliar")
    model_option(foreign)
    foreign.add_argument("--data", required=True,
                         help="the data folder the model was trained on (its test split)")
    foreign.set_defaults(run=run)
