"""``hematovision report``: a PDF differential report of many cells."""

from __future__ import annotations

from pathlib import Path

from hematovision.cli.options import model_option
from hematovision.cli.predict import classifier_and_sources, warn_copies

__all__ = ["add", "run"]


def run(args) -> int:
    """Classify every input into a PDF differential report."""
    from hematovision.report.batch import classify_sources, differential
    from hematovision.report.pdf import build_report, gradcam_thumbnails

    loaded = classifier_and_sources(args)
    if loaded is None:
        return 1
    classifier, sources = loaded
    results = classify_sources(classifier, sources)
    warn_copies(results)
    diff = differential(results, classifier.classes)
    maps = {} if args.no_gradcam else gradcam_thumbnails(classifier, sources, results)
    Path(args.out).write_bytes(build_report(results, diff, classifier.card,
                                            classifier.model_sha256, maps))
    others = f" (besides them: {diff.others_text()})" if diff.others else ""
    print(f"{diff.total} files: {diff.counted} white cells counted{others}, {diff.review} to "
          f"review, {diff.unfamiliar} unfamiliar, {diff.unreadable} unreadable → {args.out}")
    return 1 if diff.unreadable else 0


def add(command) -> None:
    """Add the command and its options; ``command`` makes the sub-parser."""
    report = command("report", "a PDF differential report of many cells")
    report.add_argument("paths", nargs="+", help="image files, folders and .zip files")
    model_option(report)
    report.add_argument("--out", required=True, help="PDF file to write")
    report.add_argument("--no-gradcam", action="store_true", help="leave out the Grad-CAM maps")
    report.set_defaults(run=run)
