"""``hematovision predict``: classify images into a CSV file."""

from __future__ import annotations

import sys
from pathlib import Path

from hematovision.cli.options import count, model_option, quiet_option, writable

__all__ = ["add", "run", "classifier_and_sources", "warn_copies"]


def classifier_and_sources(args):
    """The model and every input named on the command line; ``None`` when there is none."""
    from hematovision.model.classifier import Classifier
    from hematovision.report.batch import sources_from_paths

    writable(args.out)
    classifier = Classifier(args.model)
    sources = sources_from_paths(args.paths)
    if not sources:
        print("no image files found", file=sys.stderr)
        return None
    return classifier, sources


def warn_copies(results) -> None:
    """Say on stderr when some files are byte-identical copies of others."""
    from hematovision.report.batch import copies_warning

    warning = copies_warning(results)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def run(args) -> int:
    """Classify every input into a CSV file; exit status 1 when a file failed."""
    from hematovision.report.batch import CSV_ENCODING, classify_sources, results_csv

    loaded = classifier_and_sources(args)
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
    warn_copies(results)
    Path(args.out).write_text(results_csv(results, classifier), encoding=CSV_ENCODING)
    failed = sum(result.prediction is None for result in results)
    print(f"classified {len(results) - failed} of {len(results)} files into {args.out}")
    if failed:
        print(f"{failed} file{'s' if failed > 1 else ''} could not be read; see the error "
              "column", file=sys.stderr)
    return 1 if failed else 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    predict = command("predict", "classify images into a CSV file",
                      "Classify images into a CSV file: one row per image with its label, "
                      "probability, status (Confident, Review, Unfamiliar), one column per "
                      "class and an error column for files that could not be read. The exit "
                      "code is 1 when any file failed.")
    predict.add_argument("paths", nargs="+",
                         help="image files, folders (searched recursively) and .zip files")
    model_option(predict)
    predict.add_argument("--out", required=True, help="CSV file to write")
    predict.add_argument("--batch-size", type=count(1), default=8,
                         help="images per model call, per worker thread (each thread runs "
                              "a copy of the network; above 8 a copy takes ~220 MiB, not ~90)")
    quiet_option(predict)
    predict.set_defaults(run=run)
