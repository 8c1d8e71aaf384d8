"""The ``hematovision`` command: train, evaluate and predict."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path

__all__ = ["main"]


@contextlib.contextmanager
def _new_model_folder(out: str, overwrite: bool, source: str | None = None):
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


def _class_list(text: str) -> tuple[str, ...]:
    """``"Monocyte, basophil,basophil"`` → ``("basophil", "monocyte")``: folder names match
    without regard to case, and a model's classes are in name order, as when found."""
    return tuple(sorted({name.strip().lower() for name in text.split(",") if name.strip()}))


def _writable(out: str) -> None:
    """Check an output file's place before the slow work, not after it."""
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder {path.parent} does not exist")


def _train(args) -> int:
    from hematovision.io.dataset import SplitFractions
    from hematovision.train.pipeline import CAMERA_AUGMENTATION
    from hematovision.train.training import TrainingConfig, train

    config = TrainingConfig(
        backbone=args.backbone, pretrained=not args.no_pretrained,
        head_epochs=args.head_epochs, fine_tune_epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, limit_per_class=args.limit_per_class,
        hidden_units=args.hidden_units, fine_tune_from=args.fine_tune_from,
        train_batchnorm=args.train_batchnorm, mix_style=args.mix_style,
        fractions=SplitFractions(*args.split),
        classes=_class_list(args.classes) if args.classes else None,
        init_from=args.init_from,
        fine_tune_learning_rate=args.learning_rate, review_catch=args.review_catch,
        **({"augmentation": CAMERA_AUGMENTATION} if args.camera_augmentation else {}),
    )
    with _new_model_folder(args.out, args.overwrite, args.init_from) as folder:
        card = train(args.data, folder, config, name=Path(args.out).name,
                     progress=not args.quiet)
    print(f"saved {args.out}/model.keras (temperature {card.temperature:.3f})")
    if args.no_evaluate:
        return 0
    if not sum(card.data["counts"]["test"].values()):
        print("no evaluation: the test split is empty (too few images per class)")
        return 0
    return _evaluate(argparse.Namespace(model=args.out, data=list(args.data), all=False,
                                        quiet=args.quiet, bootstrap=1000, explanations=False))


def _evaluate(args) -> int:
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


def _export(args) -> int:
    from hematovision.model.export import add_fast_runtime

    card = add_fast_runtime(args.model)
    print(f"wrote {args.model}/{card.runtime_file} (sha256 {card.runtime_sha256[:12]}…)")
    return 0


def _familiarity(args) -> int:
    from hematovision.train.finish import add_familiarity

    card = add_familiarity(args.model, args.data, progress=not args.quiet)
    print(f"wrote {args.model}/{card.familiarity_file} "
          f"(sha256 {card.familiarity_sha256[:12]}…)")
    return 0


def _review_threshold(args) -> int:
    from hematovision.train.finish import fit_review

    rule = fit_review(args.model, args.data, args.catch, progress=not args.quiet)
    print(f"review threshold {rule.threshold:.3f}: {rule.describe()}")
    print(f"wrote {args.model}/card.json")
    print("the card's measured Review shares still describe the old threshold until "
          f"'hematovision evaluate --model {args.model}' runs again")
    return 0


def _foreign(args) -> int:
    from dataclasses import replace

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
    save_card(args.model, replace(load_card(args.model), foreign=summary))
    for kind, row in result["kinds"].items():
        print(f"{kind:<16} {row['flagged']:>4}/{row['n']:<4} flagged Unfamiliar")
    print(f"{'all':<16} {result['flagged']:>4}/{result['n']:<4} "
          f"({100 * result['share_flagged']:.1f} %)")
    return 0


def _show_progress(fraction: float, message: str) -> None:
    print(f"[{100 * fraction:3.0f} %] {message}", flush=True)


def _adapt(args) -> int:
    from hematovision.adapt.adaptation import adapt, adaptation_study

    if args.study:
        from dataclasses import replace

        from hematovision.io.files import write_json_atomic
        from hematovision.model.card import load_card, save_card
        from hematovision.model.classifier import Classifier

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
        name = Path(args.data).resolve().name
        # One file per depth, so a study of the other depth does not overwrite this one.
        suffix = "" if args.tuning == "last-layer" else f"_{args.tuning}"
        write_json_atomic(Path(args.model) / f"adaptation_{name}{suffix}.json", study)
        card = load_card(args.model)
        rows = [{k: v for k, v in row.items() if k != "runs"} for row in study["rows"]]
        # Each depth keeps its own study in the card, as in its own file.
        studies = {**card.adaptation, study["tuning"]: {
            "data": name, "n": study["n"], "tuning": study["tuning"], "counts": study["counts"],
            "rows": rows}}
        save_card(args.model, replace(card, adaptation=studies))
        return 0
    if not args.out:
        print("error: --out is required (or use --study)", file=sys.stderr)
        return 2
    with _new_model_folder(args.out, args.overwrite, args.model) as folder:
        result = adapt(args.model, args.data, folder, per_class=args.per_class,
                       seed=args.seed, name=Path(args.out).name, tuning=args.tuning,
                       progress=None if args.quiet else _show_progress)
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


def _explain(args) -> int:
    from hematovision.explain import explain, get_explainer
    from hematovision.explain.overlay import (
        colour_scale,
        compose_panel,
        greyed,
        overlay,
        overlay_signed,
        to_png,
    )
    from hematovision.io.images import read_image
    from hematovision.model.classifier import Classifier

    _writable(args.out)
    if args.heatmap:
        _writable(args.heatmap)
    classifier = Classifier(args.model)
    image = read_image(args.image)
    # Framed and classified once; the explainer reuses both instead of doing them again.
    box = classifier.frame(image)
    prediction = classifier.predict_inputs(classifier.prepare(image, box)[None], [box])[0]
    if args.class_name is None:
        class_index = classifier.classes.index(prediction.label)
    elif args.class_name.lower() in classifier.classes:
        class_index = classifier.classes.index(args.class_name.lower())
    else:
        raise ValueError(f"unknown class {args.class_name!r}; the model knows: "
                         f"{', '.join(classifier.classes)}")
    method = get_explainer(args.method)
    settings = {}
    if args.layer:
        if "layer" not in method.defaults:
            raise ValueError(f"--layer applies to gradcam and gradcampp, not {args.method}")
        settings["layer"] = args.layer
    result = explain(args.method, image, classifier, class_index, box=box, **settings)
    if result.signed is not None:
        shown = overlay_signed(image, result.signed, args.opacity, method.signed_colormap)
        key = (colour_scale(method.signed_colormap, signed=True),
               f"against  <  neutral  >  for {result.class_name}")
    else:
        shown = overlay(image, result.heatmap, args.opacity, args.colormap)
        key = (colour_scale(args.colormap), f"none  >  strong evidence for {result.class_name}")
    if result.faint:
        shown, key = greyed(shown), (greyed(key[0]), "greyed: too little probability")
    title = (f"{Path(args.image).name}: {method.title} for {result.class_name} "
             f"({100 * result.probability:.1f} %; predicted {prediction.answer}, "
             f"{prediction.status})")
    panel = compose_panel([("original", image), (method.title, shown)], title=title,
                          tile_size=384, keys=[None, key])
    Path(args.out).write_bytes(to_png(panel))
    if args.heatmap:
        import numpy as np

        np.save(args.heatmap, result.heatmap)
    print(f"{title}; {result.seconds:.2f} s → {args.out}")
    if result.faint:
        print(result.faint)
    if prediction.unfamiliar_reason:
        print(f"warning: Unfamiliar image ({prediction.unfamiliar_reason}); the answer and "
              "its map are not to be trusted", file=sys.stderr)
    return 0


def _classifier_and_sources(args):
    """The model and every input named on the command line; ``None`` when there is none."""
    from hematovision.model.classifier import Classifier
    from hematovision.report.batch import sources_from_paths

    _writable(args.out)
    classifier = Classifier(args.model)
    sources = sources_from_paths(args.paths)
    if not sources:
        print("no image files found", file=sys.stderr)
        return None
    return classifier, sources


def _warn_copies(results) -> None:
    from hematovision.report.batch import copies_warning

    warning = copies_warning(results)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _report(args) -> int:
    from hematovision.report.batch import classify_sources, differential
    from hematovision.report.pdf import build_report, gradcam_thumbnails

    loaded = _classifier_and_sources(args)
    if loaded is None:
        return 1
    classifier, sources = loaded
    results = classify_sources(classifier, sources)
    _warn_copies(results)
    diff = differential(results, classifier.classes)
    maps = {} if args.no_gradcam else gradcam_thumbnails(classifier, sources, results)
    Path(args.out).write_bytes(build_report(results, diff, classifier.card,
                                            classifier.model_sha256, maps))
    others = f" (besides them: {diff.others_text()})" if diff.others else ""
    print(f"{diff.total} files: {diff.counted} white cells counted{others}, {diff.review} to "
          f"review, {diff.unfamiliar} unfamiliar, {diff.unreadable} unreadable → {args.out}")
    return 1 if diff.unreadable else 0


def _predict(args) -> int:
    from hematovision.report.batch import CSV_ENCODING, classify_sources, results_csv

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
    _warn_copies(results)
    Path(args.out).write_text(results_csv(results, classifier), encoding=CSV_ENCODING)
    failed = sum(result.prediction is None for result in results)
    print(f"classified {len(results) - failed} of {len(results)} files into {args.out}")
    if failed:
        print(f"{failed} file{'s' if failed > 1 else ''} could not be read; see the error "
              "column", file=sys.stderr)
    return 1 if failed else 0


def _count(minimum: int):
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value
    parse.__name__ = "whole number"  # what argparse names in its error
    return parse


def _share(zero: bool = True):
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


class _Help(argparse.HelpFormatter):
    """Help that states an option's default where it has one worth stating."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or not action.option_strings or default is None
                or default is False or default is argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


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


def _parser() -> argparse.ArgumentParser:
    from hematovision.explain.overlay import COLORMAPS
    from hematovision.model.backbones import BACKBONES  # metadata only, no TensorFlow
    from hematovision.model.calibration import REVIEW_CATCH  # numpy and scipy only

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
            parents=[common], formatter_class=_Help,
            epilog=f"example: {example}" if example else None)

    def model_option(sub, required: bool = False, what: str = "model folder") -> None:
        if required:
            sub.add_argument("--model", required=True, help=what)
        else:
            sub.add_argument("--model", default=str(default_model_dir()),
                             help=f"{what} ($HEMATOVISION_MODEL if set, else the shipped model)")

    def quiet_option(sub) -> None:
        sub.add_argument("--quiet", action="store_true", help="no progress bar")

    # Listed in --help in this order: what a user does most comes first.
    predict = command("predict", "classify images into a CSV file",
                      "Classify images into a CSV file: one row per image with its label, "
                      "probability, status (Confident, Review, Unfamiliar), one column per "
                      "class and an error column for files that could not be read. The exit "
                      "code is 1 when any file failed.")
    predict.add_argument("paths", nargs="+",
                         help="image files, folders (searched recursively) and .zip files")
    model_option(predict)
    predict.add_argument("--out", required=True, help="CSV file to write")
    predict.add_argument("--batch-size", type=_count(1), default=32,
                         help="images per model call")
    quiet_option(predict)
    predict.set_defaults(run=_predict)
    explain = command("explain", "save a map of why the model chose a class",
                      "Save a picture of the cell beside a map of what made the model lean "
                      "towards a class: gradcam and gradcampp (Grad-CAM++) follow the "
                      "network's gradients and take a fraction of a second; lime and shap "
                      "hide patches of the cell and take seconds.")
    explain.add_argument("image", help="one image file")
    explain.add_argument("--method", default="gradcam",
                         choices=["gradcam", "gradcampp", "lime", "shap"],
                         help="explanation method")
    explain.add_argument("--class", dest="class_name", help="class to explain (default: predicted)")
    explain.add_argument("--out", required=True, help="PNG file to write")
    model_option(explain)
    explain.add_argument("--opacity", type=_share(), default=0.5,
                         help="how strongly the map covers the cell (0 to 1)")
    explain.add_argument("--colormap", default="jet", choices=COLORMAPS,
                         help="colours of the Grad-CAM maps (LIME always uses green for, "
                              "pink against; SHAP red for, blue against)")
    explain.add_argument("--heatmap", help="also save the raw [0, 1] heatmap as .npy")
    explain.add_argument("--layer", help="Grad-CAM on another layer of the network (slow: "
                         "loads TensorFlow); default: the model card's layer")
    explain.set_defaults(run=_explain)

    report = command("report", "a PDF differential report of many cells")
    report.add_argument("paths", nargs="+", help="image files, folders and .zip files")
    model_option(report)
    report.add_argument("--out", required=True, help="PDF file to write")
    report.add_argument("--no-gradcam", action="store_true", help="leave out the Grad-CAM maps")
    report.set_defaults(run=_report)

    train = command("train", "train a model on a folder of class folders",
                    "Train a classifier on a folder of class folders (PBC, the Kaggle "
                    "blood-cells layout, or your own): backbone frozen first, then its top "
                    "blocks fine-tuned. Writes the model, its card, split and logs to --out.")
    train.add_argument("--data", required=True, nargs="+",
                       help="one or more folders of class folders (PBC, Kaggle, …), each a "
                            "source: split on its own, and with several, batches balanced "
                            "over classes and then sources; a source may lack classes")
    train.add_argument("--camera-augmentation", action="store_true",
                       help="also imitate other cameras in phase two: resolution loss, "
                            "white balance and vignetting")
    train.add_argument("--mix-style", action="store_true",
                       help="mix feature statistics between pictures of a batch after early "
                            "stages while training (MixStyle, Zhou et al. 2021; Lite backbones)")
    train.add_argument("--out", required=True, help="model folder to create, e.g. models/mine")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a model already in --out")
    offline = [b for b in BACKBONES.values() if b.offline]
    online = [b for b in BACKBONES.values() if not b.offline]
    train.add_argument("--backbone", default="lite0", choices=list(BACKBONES),
                       help="network: " + ", ".join(f"{b.name} ({b.title})" for b in offline)
                            + " with ImageNet weights that ship with HematoVision; "
                            + ", ".join(f"{b.name} ({b.title})" for b in online)
                            + " with weights downloaded on first use")
    train.add_argument("--no-pretrained", action="store_true",
                       help="random backbone weights (otherwise "
                            + ", ".join(b.name for b in online) + " downloads them)")
    train.add_argument("--epochs", type=_count(0), default=6,
                       help="fine-tuning epochs (phase 2)")
    train.add_argument("--head-epochs", type=_count(0), default=40,
                       help="epochs of the head alone, backbone frozen (phase 1)")
    train.add_argument("--batch-size", type=_count(1), default=32, help="images per step")
    train.add_argument("--hidden-units", type=_count(0), default=0,
                       help="units of a hidden dense layer in the head (0: none)")
    train.add_argument("--fine-tune-from", default=None,
                       help="name prefix of the first backbone layer to unfreeze, e.g. "
                            "block4_ (default: the backbone's top blocks)")
    train.add_argument("--train-batchnorm", action="store_true",
                       help="let the unfrozen blocks' BatchNorm layers learn the cells' "
                            "statistics in phase two (default: frozen at ImageNet's)")
    train.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                       metavar=("TRAIN", "VAL", "TEST"), help="shares of the three splits")
    train.add_argument("--classes", help="comma-separated classes to use (default: all found)")
    train.add_argument("--limit-per-class", type=_count(1),
                       help="use at most N images per class (for quick trials)")
    train.add_argument("--seed", type=int, default=1234, help="random seed")
    train.add_argument("--learning-rate", type=float, default=3e-4,
                       help="peak fine-tuning learning rate (cosine decay)")
    train.add_argument("--review-catch", type=_share(zero=False), default=REVIEW_CATCH,
                       help="share of validation errors the Review threshold must catch")
    train.add_argument("--init-from", help="continue fine-tuning this trained model folder")
    train.add_argument("--no-evaluate", action="store_true", help="skip the test-split evaluation")
    quiet_option(train)
    train.set_defaults(run=_train)

    evaluate = command("evaluate", "measure a model on held-out data",
                       "Measure a model on its held-out test split (when --data is the folder "
                       "it was trained on) or on a whole other folder, leaving out any cell "
                       "the model learned from. Prints the metrics and writes them as JSON "
                       "into the model folder and its card.")
    model_option(evaluate, required=True)
    evaluate.add_argument("--data", required=True, nargs="+", help="one or more data folders")
    evaluate.add_argument("--all", action="store_true",
                          help="use the whole folder even if it holds the model's test split")
    evaluate.add_argument("--bootstrap", type=_count(1), default=1000,
                          help="bootstrap resamples for the 95 %% intervals")
    evaluate.add_argument("--explanations", action="store_true",
                          help="also check every explainer (faithfulness, pointing game, "
                               "randomisation) and store the results in the model folder")
    evaluate.add_argument("--explain-cells", type=_count(1), default=100,
                          help="test cells for the explanation checks")
    evaluate.add_argument("--mask-cells", type=_count(1), default=100,
                          help="masked cells for the pointing game")
    evaluate.add_argument("--masks", help="folder with labels.csv (image,label,mask) for "
                                          "the pointing game, e.g. zheng2018_d2")
    quiet_option(evaluate)
    evaluate.set_defaults(run=_evaluate)

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
    adapt.add_argument("--per-class", type=_count(1), default=10,
                       help="cells per class to adapt on (at most half of each class; the "
                            "rest score the result)")
    adapt.add_argument("--seed", type=int, default=0, help="which cells are drawn")
    adapt.add_argument("--tuning", default="last-layer", choices=["last-layer", "last-block"],
                       help="refit only the last layer (seconds) or also fine-tune the last "
                            "block (a few minutes; switches off the distance check)")
    adapt.add_argument("--study", action="store_true",
                       help="measure instead of adapting: adapt on --per-class-study cells "
                            "per class over --splits random splits, score on the rest; writes "
                            "the table into --model's folder and card, no new model")
    adapt.add_argument("--per-class-study", type=_count(1), nargs="+", default=[5, 10, 20],
                       help="cells per class to try in --study")
    adapt.add_argument("--splits", type=_count(1), default=5,
                       help="random splits per number of cells in --study")
    quiet_option(adapt)
    adapt.set_defaults(run=_adapt)

    export = command("export", "add the fast LiteRT runtime to a model folder")
    model_option(export, required=True)
    export.set_defaults(run=_export)

    familiar = command("familiarity",
                       "fit the statistics that flag images unlike the training cells")
    model_option(familiar, required=True)
    familiar.add_argument("--data", required=True, nargs="+",
                          help="the data folder(s) it was trained on, one per source")
    quiet_option(familiar)
    familiar.set_defaults(run=_familiarity)

    review = command("review-threshold",
                     "refit the confidence under which cells are marked Review, on "
                     "validation cells")
    model_option(review, required=True)
    review.add_argument("--data", required=True, nargs="+",
                        help="the data folder(s) it was trained on, one per source")
    review.add_argument("--catch", type=_share(zero=False), default=REVIEW_CATCH,
                        help="share of the validation cells the model gets wrong that should "
                             "fall under the threshold")
    quiet_option(review)
    review.set_defaults(run=_review_threshold)

    foreign = command("foreign",
                      "measure how many clearly foreign images the model flags Unfamiliar")
    model_option(foreign)
    foreign.add_argument("--data", required=True,
                         help="the data folder the model was trained on (its test split)")
    foreign.set_defaults(run=_foreign)


    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hematovision")
    except PackageNotFoundError:
        return "(not installed)"


def default_model_dir() -> Path:
    from hematovision.model.store import default_model_dir as find

    return find()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
