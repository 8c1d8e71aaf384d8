"""``hematovision adapt``: adapt a model to a laboratory's cells, or measure how well it adapts."""

from __future__ import annotations

import sys
from pathlib import Path

from hematovision.cli.options import (
    count,
    model_option,
    new_model_folder,
    quiet_option,
    show_progress,
)

__all__ = ["add", "run"]


def run(args) -> int:
    """Adapt a model into a new folder, or with ``--study`` measure how well it adapts."""
    from hematovision.adapt.adaptation import adapt, adaptation_study

    if args.study:

        from hematovision.io.files import write_json_atomic
        from hematovision.model.card import load_card, save_card
        from hematovision.model.classifier import Classifier

        study = adaptation_study(Classifier(args.model), args.data,
                                 tuple(args.per_class_study), args.splits, tuning=args.tuning,
                                 progress=None if args.quiet else show_progress)
        print(f"{'cells/class':>11}  {'before: balanced':>17}  {'after: balanced':>16}  "
              f"{'after: accuracy':>16}  {'ECE after':>9}")
        for row in study["rows"]:
            spread = row["after_balanced_accuracy_sd"]
            print(f"{row['per_class']:>11}  {row['before_balanced_accuracy']:>17.3f}  "
                  f"{row['after_balanced_accuracy']:>10.3f} ± {spread:.3f}"
                  f"  {row['after_accuracy']:>16.3f}  {row['after_ece']:>9.3f}")
        name = Path(args.data).resolve().name
        # One file per depth, so a study of the other depth does not overwrite this one.
        suffix = "" if args.tuning == "last-layer" else f"_{args.tuning}"
        write_json_atomic(Path(args.model) / f"adaptation_{name}{suffix}.json", study)
        card = load_card(args.model)
        rows = [{k: v for k, v in row.items() if k != "runs"} for row in study["rows"]]
        # Each depth keeps its own study in the card, as in its own file.
        studies = {**card.results.adaptation, study["tuning"]: {
            "data": name, "n": study["n"], "tuning": study["tuning"], "counts": study["counts"],
            "rows": rows}}
        save_card(args.model, card.with_results(adaptation=studies))
        return 0
    if not args.out:
        print("error: --out is required (or use --study)", file=sys.stderr)
        return 2
    with new_model_folder(args.out, args.overwrite, args.model) as folder:
        result = adapt(args.model, args.data, folder, per_class=args.per_class,
                       seed=args.seed, name=Path(args.out).name, tuning=args.tuning,
                       progress=None if args.quiet else show_progress)
    print(f"adapted on {sum(result.used.values())} cells, scored on "
          f"{sum(result.held_out.values())} held-out cells")
    if sum(result.held_out.values()) < 20:
        print(f"warning: only {sum(result.held_out.values())} held-out cells score the "
              "result; the numbers below are rough (give more cells of each class)",
              file=sys.stderr)
    for when, row in (("before", result.before), ("after", result.after)):
        print(f"{when:>6}: accuracy {row['accuracy']:.3f}, balanced accuracy "
              f"{row['balanced_accuracy']:.3f}, ECE {row['ece']:.3f} (n={row['n']})")
    print(f"saved {args.out}")
    return 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    from hematovision.adapt.tunings import TUNINGS  # metadata only

    adapt = command("adapt", "adapt a model to your laboratory's cells with a few labelled "
                    "examples",
                    "Adapt a model to your laboratory's microscope with a few labelled cells "
                    "per class (a folder of class folders): part of them adapt the model, the "
                    "rest score it before and after. The original model is not changed.")
    model_option(adapt, what="model to adapt")
    adapt.add_argument("--data", required=True, help="folder of class folders of your cells")
    adapt.add_argument("--out", help="new model folder, e.g. models/my-lab")
    adapt.add_argument("--overwrite", action="store_true",
                       help="replace a model already in --out")
    adapt.add_argument("--per-class", type=count(1), default=10,
                       help="cells per class to adapt on (at most half of each class; the "
                            "rest score the result)")
    adapt.add_argument("--seed", type=int, default=0, help="which cells are drawn")
    adapt.add_argument("--tuning", default="last-layer", choices=list(TUNINGS),
                       help="refit only the last layer (seconds) or also fine-tune the last "
                            "block (a few minutes; switches off the distance check)")
    adapt.add_argument("--study", action="store_true",
                       help="measure instead of adapting: adapt on --per-class-study cells "
                            "per class over --splits random splits, score on the rest; writes "
                            "the table into --model's folder and card, no new model")
    adapt.add_argument("--per-class-study", type=count(1), nargs="+", default=[5, 10, 20],
                       help="cells per class to try in --study")
    adapt.add_argument("--splits", type=count(1), default=5,
                       help="random splits per number of cells in --study")
    quiet_option(adapt)
    adapt.set_defaults(run=run)
