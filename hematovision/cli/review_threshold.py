"""``hematovision review-threshold``: refit the confidence under which cells are marked Review."""

from __future__ import annotations

from hematovision.cli.options import model_option, quiet_option, share

__all__ = ["add", "run"]


def run(args) -> int:
    """Refit the Review threshold on the model's validation split."""
    from hematovision.train.finish import fit_review

    rule = fit_review(args.model, args.data, args.catch, progress=not args.quiet)
    print(f"review threshold {rule.threshold:.3f}: {rule.describe()}")
    print(f"wrote {args.model}/card.json")
    print("the card's measured Review shares still describe the old threshold until "
          f"'hematovision evaluate --model {args.model}' runs again")
    return 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    from hematovision.model.calibration import REVIEW_CATCH  # numpy and scipy only

    review = command("review-threshold",
                     "refit the confidence under which cells are marked Review, on "
                     "validation cells")
    model_option(review, required=True)
    review.add_argument("--data", required=True, nargs="+",
                        help="the data folder(s) it was trained on, one per source")
    review.add_argument("--catch", type=share(zero=False), default=REVIEW_CATCH,
                        help="share of the validation cells the model gets wrong that should "
                             "fall under the threshold")
    quiet_option(review)
    review.set_defaults(run=run)
