"""``hematovision familiarity``: fit the statistics that flag images unlike the training cells."""

from __future__ import annotations

from hematovision.cli.options import model_option, quiet_option

__all__ = ["add", "run"]


def run(args) -> int:
    """Fit the familiarity statistics on the model's own splits."""
    from hematovision.train.finish import add_familiarity

    card = add_familiarity(args.model, args.data, progress=not args.quiet)
    print(f"wrote {args.model}/{card.config.familiarity_file} "
          f"(sha256 {card.config.familiarity_sha256[:12]}…)")
    return 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    familiar = command("familiarity",
                       "fit the statistics that flag images unlike the training cells")
    model_option(familiar, required=True)
    familiar.add_argument("--data", required=True, nargs="+",
                          help="the data folder(s) it was trained on, one per source")
    quiet_option(familiar)
    familiar.set_defaults(run=run)
