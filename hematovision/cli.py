"""The ``hematovision`` command: train, evaluate and predict."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def _train(args) -> int:
    from hematovision.dataset import SplitFractions
    from hematovision.training import TrainingConfig, train

    config = TrainingConfig(
        backbone=args.backbone, pretrained=not args.no_pretrained,
        head_epochs=args.head_epochs, fine_tune_epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, limit_per_class=args.limit_per_class,
        hidden_units=args.hidden_units, fine_tune_from=args.fine_tune_from,
        fractions=SplitFractions(*args.split),
        classes=tuple(args.classes.split(",")) if args.classes else None,
        init_from=args.init_from,
        fine_tune_learning_rate=args.learning_rate, review_catch=args.review_catch,
    )
    card = train(args.data, args.out, config, progress=not args.quiet)
    print(f"saved {args.out}/model.keras (temperature {card.temperature:.3f})")
    if not args.no_evaluate:
        return _evaluate(argparse.Namespace(model=args.out, data=[args.data], all=False,
                                            quiet=args.quiet, bootstrap=1000,
                                            explanations=False))
    return 0


def _evaluate(args) -> int:
    from hematovision.classifier import Classifier
    from hematovision.evaluation import evaluate, format_report, format_table

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

    from hematovision.dataset import test_split_files
    from hematovision.explanation_checks import run_checks, save_checks

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


def _export(args) -> int:
    from hematovision.training import add_fast_runtime

    card = add_fast_runtime(args.model)
    print(f"wrote {args.model}/{card.runtime_file} (sha256 {card.runtime_sha256[:12]}…)")
    return 0


def _familiarity(args) -> int:
    from hematovision.training import add_familiarity

    card = add_familiarity(args.model, args.data, progress=not args.quiet)
    print(f"wrote {args.model}/{card.familiarity_file} "
          f"(sha256 {card.familiarity_sha256[:12]}…)")
    return 0


def _review_threshold(args) -> int:
    from hematovision.training import fit_review

    rule = fit_review(args.model, args.data, args.catch, progress=not args.quiet)
    print(f"review threshold {rule.threshold:.3f}: {rule.describe()}")
    print(f"wrote {args.model}/card.json")
    return 0


def _foreign(args) -> int:
    import json
    from dataclasses import replace

    from hematovision.classifier import Classifier
    from hematovision.dataset import test_split_files
    from hematovision.foreign import measure_foreign
    from hematovision.model_card import load_card, save_card

    classifier = Classifier(args.model)
    files = test_split_files(args.model, args.data)
    if files is None:
        print(f"error: {args.data} does not hold {args.model}'s test split", file=sys.stderr)
        return 2
    result = measure_foreign(classifier, [path for path, _ in files])
    (Path(args.model) / "foreign.json").write_text(json.dumps(result, indent=1) + "\n")
    summary = {key: value for key, value in result.items() if key != "images"}
    save_card(args.model, replace(load_card(args.model), foreign=summary))
    for kind, row in result["kinds"].items():
        print(f"{kind:<16} {row['flagged']:>4}/{row['n']:<4} flagged Unfamiliar")
    print(f"{'all':<16} {result['flagged']:>4}/{result['n']:<4} "
          f"({100 * result['share_flagged']:.1f} %)")
    return 0


def _show_progress(fraction: float, message: str) -> None:
    print(f"[{100 * fraction:3.0f} %] {message}", flush=True)


def _adapt(args) -> int:
    from hematovision.adaptation import adapt, adaptation_study

    if args.study:
        import json
        from dataclasses import replace

        from hematovision.classifier import Classifier
        from hematovision.model_card import load_card, save_card

        study = adaptation_study(Classifier(args.model), args.data,
                                 tuple(args.per_class_study), args.splits, tuning=args.tuning,
                                 progress=None if args.quiet else _show_progress)
        print(f"{'cells/class':>11}  {'before: balanced':>17}  {'after: balanced':>16}  "
              f"{'after: accuracy':>16}  {'ECE after':>9}")
        for row in study["rows"]:
            spread = row["after_balanced_accuracy_sd"]
            print(f"{row['per_class']:>11}  {row['before_balanced_accuracy']:>17.3f}  "
                  f"{row['after_balanced_accuracy']:>10.3f} ± {spread:.3f}"
                  f"  {row['after_accuracy']:>16.3f}  {row['after_ece']:>9.3f}")
        name = Path(args.data).name
        # One file per depth, so a study of the other depth does not overwrite this one.
        suffix = "" if args.tuning == "last-layer" else f"_{args.tuning}"
        (Path(args.model) / f"adaptation_{name}{suffix}.json").write_text(
            json.dumps(study, indent=1) + "\n")
        card = load_card(args.model)
        rows = [{k: v for k, v in row.items() if k != "runs"} for row in study["rows"]]
        save_card(args.model, replace(card, adaptation={"data": name, "n": study["n"],
                                                        "tuning": study["tuning"],
                                                        "counts": study["counts"],
                                                        "rows": rows}))
        return 0
    if not args.out:
        print("error: --out is required (or use --study)", file=sys.stderr)
        return 2

    result = adapt(args.model, args.data, args.out, per_class=args.per_class, seed=args.seed,
                   tuning=args.tuning, progress=None if args.quiet else _show_progress)
    print(f"adapted on {sum(result.used.values())} cells, scored on "
          f"{sum(result.held_out.values())} held-out cells")
    for when, row in (("before", result.before), ("after", result.after)):
        print(f"{when:>6}: accuracy {row['accuracy']:.3f}, balanced accuracy "
              f"{row['balanced_accuracy']:.3f}, ECE {row['ece']:.3f} (n={row['n']})")
    print(f"saved {result.out_dir}")
    return 0


def _explain(args) -> int:
    from hematovision.classifier import Classifier
    from hematovision.explainers import explain, get_explainer
    from hematovision.images import read_image
    from hematovision.overlay import compose_panel, overlay, overlay_signed, to_png

    classifier = Classifier(args.model)
    image = read_image(args.image)
    if args.class_name is None:
        class_index = None
    elif args.class_name.lower() in classifier.classes:
        class_index = classifier.classes.index(args.class_name.lower())
    else:
        raise ValueError(f"unknown class {args.class_name!r}; the model knows: "
                         f"{', '.join(classifier.classes)}")
    method = get_explainer(args.method)
    result = explain(args.method, image, classifier, class_index)
    prediction = classifier.predict([image])[0]
    if result.signed is not None:
        shown = overlay_signed(image, result.signed, args.opacity, method.signed_colormap)
    else:
        shown = overlay(image, result.heatmap, args.opacity, args.colormap)
    title = (f"{Path(args.image).name}: {method.title} for {result.class_name} "
             f"(predicted {prediction.answer})")
    Path(args.out).write_bytes(to_png(compose_panel([("original", image), (method.title, shown)],
                                                    title=title)))
    if args.heatmap:
        import numpy as np

        np.save(args.heatmap, result.heatmap)
    print(f"{title}; {result.seconds:.2f} s → {args.out}")
    return 0


def _classifier_and_sources(args):
    """The model and every input named on the command line; ``None`` when there is none."""
    from hematovision.batch import sources_from_paths
    from hematovision.classifier import Classifier

    classifier = Classifier(args.model)
    sources = sources_from_paths(args.paths)
    if not sources:
        print("no image files found", file=sys.stderr)
        return None
    return classifier, sources


def _report(args) -> int:
    from hematovision.batch import classify_sources, differential
    from hematovision.report import build_report, gradcam_thumbnails

    loaded = _classifier_and_sources(args)
    if loaded is None:
        return 1
    classifier, sources = loaded
    results = classify_sources(classifier, sources)
    diff = differential(results, classifier.classes)
    maps = {} if args.no_gradcam else gradcam_thumbnails(classifier, sources, results)
    Path(args.out).write_bytes(build_report(results, diff, classifier.card,
                                            classifier.model_sha256, maps))
    print(f"{diff.total} files: {diff.counted} counted, {diff.review} to review, "
          f"{diff.unreadable} unreadable → {args.out}")
    return 1 if diff.unreadable else 0


def _predict(args) -> int:
    from hematovision.batch import classify_sources, results_csv

    loaded = _classifier_and_sources(args)
    if loaded is None:
        return 1
    classifier, sources = loaded
    bar = None
    if sys.stderr.isatty() and not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(sources), unit="img", desc="classifying")
    results = classify_sources(
        classifier, sources, batch_size=args.batch_size,
        progress=None if bar is None else lambda f: bar.update(round(f * len(sources)) - bar.n))
    if bar is not None:
        bar.close()
    Path(args.out).write_text(results_csv(results, classifier.classes), encoding="utf-8")
    failed = sum(result.prediction is None for result in results)
    print(f"classified {len(results) - failed} of {len(results)} files into {args.out}")
    if failed:
        print(f"{failed} files could not be read; see the error column", file=sys.stderr)
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    from hematovision.calibration import REVIEW_CATCH  # numpy and scipy only

    parser = argparse.ArgumentParser(
        prog="hematovision", description="Classify white blood cells and explain why.")
    parser.add_argument("--verbose", action="store_true", help="show library log messages")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on a folder of class folders")
    train.add_argument("--data", required=True, help="folder of class folders (PBC, Kaggle, …)")
    train.add_argument("--out", required=True, help="model folder to create, e.g. models/mine")
    train.add_argument("--backbone", default="lite0", choices=["lite0", "b0", "mobilenetv2"])
    train.add_argument("--no-pretrained", action="store_true",
                       help="random backbone weights (b0/mobilenetv2 need internet otherwise)")
    train.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs (phase 2)")
    train.add_argument("--head-epochs", type=int, default=40, help="head epochs (phase 1)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--hidden-units", type=int, default=0, help="hidden dense layer in the head")
    train.add_argument("--fine-tune-from", default=None, help="first unfrozen layer prefix")
    train.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                       metavar=("TRAIN", "VAL", "TEST"))
    train.add_argument("--classes", help="comma-separated classes to use (default: all found)")
    train.add_argument("--limit-per-class", type=int, help="use at most N images per class")
    train.add_argument("--seed", type=int, default=1234)
    train.add_argument("--learning-rate", type=float, default=3e-4,
                       help="peak fine-tuning learning rate (cosine decay)")
    train.add_argument("--review-catch", type=float, default=REVIEW_CATCH,
                       help="share of validation errors the Review threshold must catch")
    train.add_argument("--init-from", help="continue fine-tuning this trained model folder")
    train.add_argument("--no-evaluate", action="store_true", help="skip the test-split evaluation")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="measure a model on held-out data")
    evaluate.add_argument("--model", required=True, help="model folder")
    evaluate.add_argument("--data", required=True, nargs="+", help="one or more data folders")
    evaluate.add_argument("--all", action="store_true",
                          help="use the whole folder even if it holds the model's test split")
    evaluate.add_argument("--bootstrap", type=int, default=1000)
    evaluate.add_argument("--explanations", action="store_true",
                          help="also check every explainer (faithfulness, pointing game, "
                               "randomisation) and store the results in the model folder")
    evaluate.add_argument("--explain-cells", type=int, default=100,
                          help="test cells for the explanation checks")
    evaluate.add_argument("--mask-cells", type=int, default=100,
                          help="masked cells for the pointing game")
    evaluate.add_argument("--masks", help="folder with labels.csv (image,label,mask) for "
                                          "the pointing game, e.g. zheng2018_d2")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser("export", help="add the fast LiteRT runtime to a model folder")
    export.add_argument("--model", required=True, help="model folder")
    export.set_defaults(run=_export)

    familiar = commands.add_parser(
        "familiarity", help="fit the statistics that flag images unlike the training cells")
    familiar.add_argument("--model", required=True, help="model folder")
    familiar.add_argument("--data", required=True, help="the data folder it was trained on")
    familiar.add_argument("--quiet", action="store_true")
    familiar.set_defaults(run=_familiarity)

    review = commands.add_parser(
        "review-threshold",
        help="refit the confidence under which cells are marked Review, on validation cells")
    review.add_argument("--model", required=True, help="model folder")
    review.add_argument("--data", required=True, help="the data folder it was trained on")
    review.add_argument("--catch", type=float, default=REVIEW_CATCH,
                        help="share of the validation cells the model gets wrong that should "
                             "fall under the threshold (default %(default)s)")
    review.add_argument("--quiet", action="store_true")
    review.set_defaults(run=_review_threshold)

    foreign = commands.add_parser(
        "foreign", help="measure how many clearly foreign images the model flags Unfamiliar")
    foreign.add_argument("--model", default=str(default_model_dir()))
    foreign.add_argument("--data", required=True,
                         help="the data folder the model was trained on (its test split)")
    foreign.set_defaults(run=_foreign)

    adapt = commands.add_parser(
        "adapt", help="adapt a model to your laboratory's cells with a few labelled examples")
    adapt.add_argument("--model", default=str(default_model_dir()))
    adapt.add_argument("--data", required=True, help="folder of class folders of your cells")
    adapt.add_argument("--out", help="new model folder, e.g. models/my-lab")
    adapt.add_argument("--per-class", type=int, default=10,
                       help="cells per class to adapt on (at most half of each class; the "
                            "rest score the result)")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--tuning", default="last-layer", choices=["last-layer", "last-block"],
                       help="refit only the last layer (default, seconds) or also fine-tune "
                            "the last block (a few minutes; switches off the distance check)")
    adapt.add_argument("--study", action="store_true",
                       help="measure instead: adapt on 5, 10, 20 cells per class over "
                            "several random splits, score on the rest; saves nothing but "
                            "the table")
    adapt.add_argument("--per-class-study", type=int, nargs="+", default=[5, 10, 20])
    adapt.add_argument("--splits", type=int, default=5)
    adapt.add_argument("--quiet", action="store_true")
    adapt.set_defaults(run=_adapt)

    explain = commands.add_parser("explain", help="save a map of why the model chose a class")
    explain.add_argument("image", help="one image file")
    explain.add_argument("--method", default="gradcam",
                         choices=["gradcam", "gradcampp", "lime", "shap"])
    explain.add_argument("--class", dest="class_name", help="class to explain (default: predicted)")
    explain.add_argument("--out", required=True, help="PNG file to write")
    explain.add_argument("--model", default=str(default_model_dir()))
    explain.add_argument("--opacity", type=float, default=0.5)
    explain.add_argument("--colormap", default="jet")
    explain.add_argument("--heatmap", help="also save the raw [0, 1] heatmap as .npy")
    explain.set_defaults(run=_explain)

    report = commands.add_parser("report", help="a PDF differential report of many cells")
    report.add_argument("paths", nargs="+", help="image files, folders and .zip files")
    report.add_argument("--model", default=str(default_model_dir()))
    report.add_argument("--out", required=True, help="PDF file to write")
    report.add_argument("--no-gradcam", action="store_true", help="leave out the Grad-CAM maps")
    report.set_defaults(run=_report)

    predict = commands.add_parser("predict", help="classify images into a CSV file")
    predict.add_argument("paths", nargs="+",
                         help="image files, folders (searched recursively) and .zip files")
    predict.add_argument("--model", default=str(default_model_dir()))
    predict.add_argument("--out", required=True, help="CSV file to write")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--quiet", action="store_true")
    predict.set_defaults(run=_predict)
    return parser


def default_model_dir() -> Path:
    from hematovision.models import default_model_dir as find

    return find()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from hematovision.classifier import ModelFileError
    from hematovision.images import ImageError

    try:
        return args.run(args)
    except (ModelFileError, ImageError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
