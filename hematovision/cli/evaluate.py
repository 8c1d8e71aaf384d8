"""``hematovision evaluate``: measure a model on held-out data."""

from __future__ import annotations

from pathlib import Path

from hematovision.cli.options import count, model_option, quiet_option

__all__ = ["add", "run"]


def run(args) -> int:
    """Evaluate the model on each data folder (and, if asked, check its explainers)."""
    from hematovision.measure.evaluation import evaluate, format_report, format_table
    from hematovision.model.classifier import Classifier

    names = [Path(data).resolve().name for data in args.data]
    twins = sorted({name for name in names if names.count(name) > 1})
    if twins:
        # The card and evaluation_<name>.json know a set by its folder's name.
        raise ValueError(f"two data folders are named {', '.join(twins)}; their results "
                         "would overwrite each other: rename one, or evaluate them one at "
                         "a time")
    classifier = Classifier(args.model)
    reports = []
    for data in args.data:
        report = evaluate(classifier, data, whole_folder=args.all, progress=not args.quiet,
                          bootstrap=args.bootstrap)
        reports.append(report)
        print(format_report(report))
        print()
    if len(reports) > 1:
        print(format_table(reports))
        print()
    if getattr(args, "explanations", False):
        return _explanation_checks(classifier, args)
    return 0


def _explanation_checks(classifier, args) -> int:
    import csv

    from hematovision.io.dataset import test_split_files
    from hematovision.measure.explanation_checks import run_checks, save_checks

    files = test_split_files(classifier.model_dir, args.data[0])
    if files is None:
        raise ValueError(f"--explanations needs the model's test split under {args.data[0]}")
    step = max(1, len(files) // args.explain_cells)
    cells = [path for path, _ in files[::step]][: args.explain_cells]
    masked = []
    if args.masks:
        root = Path(args.masks)
        with open(root / "labels.csv", newline="") as handle:
            masked = [(root / row["image"], root / row["mask"]) for row in csv.DictReader(handle)
                      if row.get("mask")][: args.mask_cells]
    checks = run_checks(classifier, cells, masked,
                        progress=None if args.quiet else lambda m: print(m, flush=True))
    path = save_checks(classifier.model_dir, checks)
    for name, row in checks["faithfulness"].items():
        print(f"{name:<10} deletion AUC {row['deletion_auc']:.3f}  "
              f"insertion AUC {row['insertion_auc']:.3f}")
    print(f"wrote {path}")
    return 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    evaluate = command("evaluate", "measure a model on held-out data",
                       "Measure a model on its held-out test split (when --data is the folder "
                       "it was trained on) or on a whole other folder, leaving out any cell "
                       "the model learned from. Prints the metrics and writes them as JSON "
                       "into the model folder and its card.")
    model_option(evaluate, required=True)
    evaluate.add_argument("--data", required=True, nargs="+", help="one or more data folders")
    evaluate.add_argument("--all", action="store_true",
                          help="use the whole folder even if it holds the model's test split")
    evaluate.add_argument("--bootstrap", type=count(1), default=1000,
                          help="bootstrap resamples for the 95 %% intervals")
    evaluate.add_argument("--explanations", action="store_true",
                          help="also check every explainer (faithfulness, pointing game, "
                               "randomisation) and store the results in the model folder")
    evaluate.add_argument("--explain-cells", type=count(1), default=100,
                          help="test cells for the explanation checks")
    evaluate.add_argument("--mask-cells", type=count(1), default=100,
                          help="masked cells for the pointing game")
    evaluate.add_argument("--masks", help="folder with labels.csv (image,label,mask) for "
                                          "the pointing game, e.g. zheng2018_d2")
    quiet_option(evaluate)
    evaluate.set_defaults(run=run)
