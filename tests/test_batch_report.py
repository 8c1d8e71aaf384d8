"""Batch classification, the differential, CSV and PDF reports, the audit log."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image

from hematovision.io.images import read_image
from hematovision.model.prediction import CONFIDENT
from hematovision.report.audit import audit_csv, audit_entry
from hematovision.report.batch import (
    CellResult,
    classify_sources,
    differential,
    read_results_csv,
    results_csv,
    sources_from_paths,
    sources_from_upload,
)
from hematovision.report.pdf import build_report, gradcam_thumbnails


@pytest.fixture(scope="module")
def zip_upload(pbc_examples) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, label in pbc_examples[::5]:
            archive.writestr(f"{label}/{path.name}", path.read_bytes())
        archive.writestr("broken/cut.jpg", pbc_examples[0][0].read_bytes()[:300])
        archive.writestr("../../etc/evil.png", b"x")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def batch(classifier, zip_upload):
    sources = sources_from_upload("cells.zip", zip_upload)
    return sources, classify_sources(classifier, sources, threshold=0.5)


def test_every_member_gets_a_row_and_broken_ones_an_error(batch, pbc_examples):
    sources, results = batch
    assert len(results) == len(sources) == len(pbc_examples[::5]) + 2
    broken = {r.name: r.error for r in results if r.prediction is None}
    assert set(broken) == {"cells.zip/broken/cut.jpg", "cells.zip/../../etc/evil.png"}
    assert "truncated" in broken["cells.zip/broken/cut.jpg"].lower()
    assert "unsafe path" in broken["cells.zip/../../etc/evil.png"]
    right = sum(r.prediction.label == r.name.split("/")[1] for r in results if r.prediction)
    assert right >= 7


@pytest.mark.parametrize("batch_size, workers", [(3, 2), (4, 3), (100, None)])
def test_workers_on_their_own_networks_give_the_seam_s_answers_in_order(
        classifier, pbc_examples, batch_size, workers):
    # Several chunks run on single-threaded copies of the network, a single chunk on the
    # model's own: either way every answer is the one the seam gives the same cell, to the
    # last bit, and each row stays beside its file.
    sources = [(str(path), path.read_bytes(), "") for path, _ in pbc_examples[::3]]
    sources.insert(2, ("cut.jpg", sources[0][1][:300], ""))
    results = classify_sources(classifier, sources, batch_size=batch_size, workers=workers)
    assert [result.name for result in results] == [name for name, _, _ in sources]
    assert results[2].prediction is None and "truncated" in results[2].error.lower()
    readable = [source for source in sources if source[0] != "cut.jpg"]
    images = [read_image(data, shortest=2 * classifier.input_size) for _, data, _ in readable]
    expected = classifier.predict(images)
    assert [r.prediction for r in results if r.prediction is not None] == expected
    assert all(max(r.thumbnail.shape[:2]) == 96 for r in results if r.prediction is not None)


def test_the_differential_counts_confident_white_cells_only(batch, classifier):
    _, results = batch
    diff = differential(results, classifier.classes)
    assert diff.unreadable == 2 and diff.total == len(results)
    assert (diff.counted + sum(diff.others.values()) + diff.review + diff.unfamiliar
            + diff.unreadable) == diff.total
    # Platelets and erythroblasts are no white cells: beside the differential, not in it.
    assert diff.classes == tuple(c for c in classifier.classes
                                 if c not in ("erythroblast", "platelet"))
    confident = [r.prediction.label for r in results
                 if r.prediction is not None and r.prediction.status == CONFIDENT]
    assert "platelet" in confident, "the batch should hold a confidently seen platelet"
    assert diff.others == {name: confident.count(name) for name in ("erythroblast", "platelet")}
    assert diff.counts == {name: confident.count(name) for name in diff.classes}
    assert sum(diff.shares.values()) == pytest.approx(1.0)
    for name in diff.classes:
        low, high = diff.interval(name)
        assert 0.0 <= low <= diff.shares[name] <= high <= 1.0
    assert diff.per_100_white_cells("platelet") == pytest.approx(
        100 * diff.others["platelet"] / diff.counted)
    assert f"{diff.others['platelet']} platelet (" in diff.others_text()


def test_the_differential_interval_narrows_as_more_cells_are_counted():
    from hematovision.report.batch import Differential

    def share_of_ten_percent(counted: int) -> tuple[float, float]:
        counts = {"lymphocyte": counted // 10, "neutrophil": counted - counted // 10}
        shares = {name: count / counted for name, count in counts.items()}
        return Differential(("lymphocyte", "neutrophil"), counts, shares, 0, 0,
                            counted).interval("lymphocyte")

    widths = [high - low for low, high in map(share_of_ten_percent, (10, 100, 1000))]
    assert widths[0] > widths[1] > widths[2]
    # 10 of 100: the textbook Wilson interval, about 5.5 % to 17.4 %.
    assert share_of_ten_percent(100) == pytest.approx((0.0552, 0.1744), abs=5e-4)


def test_csv_round_trips(batch, classifier):
    _, results = batch
    rows = read_results_csv(results_csv(results, classifier))
    assert [row["path"] for row in rows] == [r.name for r in results]
    # Every row, an unreadable file's too, names the model that answered.
    assert {(row["model"], row["model_sha256"]) for row in rows} == {
        (classifier.name, classifier.model_sha256)}
    assert len(classifier.model_sha256) == 64
    for row, result in zip(rows, results):
        if result.prediction is None:
            assert row["error"] == result.error and row["label"] == ""
        else:
            assert row["label"] == result.prediction.label
            assert float(row[result.prediction.label]) == pytest.approx(
                result.prediction.confidence, abs=1e-6)


def test_a_name_a_spreadsheet_would_run_is_quoted_in_the_csv_and_read_back_as_it_was(
        classifier):
    results = [CellResult("=HYPERLINK(\"http://x\").jpg", "", error="=1+1: not an image"),
               CellResult("-cell.jpg", "", error="x"),
               CellResult("'=already quoted.jpg", "", error="x"),
               CellResult("'-1.jpg", "", error="x"), CellResult("'plain.jpg", "", error="x")]
    text = results_csv(results, classifier)
    assert all(not line.startswith(("=", "-", '"=')) for line in text.splitlines()[1:])
    rows = read_results_csv(text)
    assert [row["path"] for row in rows] == [r.name for r in results]
    assert rows[0]["error"] == "=1+1: not an image"


@pytest.mark.slow
def test_pdf_report_has_its_pages_and_text_and_renders(batch, classifier, tmp_path):
    from pypdf import PdfReader

    sources, results = batch
    diff = differential(results, classifier.classes)
    maps = gradcam_thumbnails(classifier, sources, results)
    assert len(maps) == diff.total - diff.unreadable
    pdf = build_report(results, diff, classifier.card, classifier.model_sha256, maps)
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) >= 3
    card = f"{100 * classifier.card.config.review_threshold:.0f} %"
    for expected in ("HematoVision differential report", classifier.name, "Review list",
                     "95 % interval", "White-cell differential",
                     f"Not white cells, not in the differential: {diff.others_text()}",
                     # The threshold it was classified under (0.5), not only the card's.
                     f"Review: top probability below 50 % (the model card's setting: {card})",
                     "Unreadable files", "broken/cut.jpg", "not a medical device"):
        assert expected in text
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    if not shutil.which("pdftoppm"):
        pytest.fail("pdftoppm is missing: apt-get install poppler-utils (make test does)")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / "page")],
                   check=True)
    assert len(list(tmp_path.glob("page-*.png"))) == len(reader.pages)


def test_pdf_report_keeps_each_picture_s_proportions(classifier, tmp_path):
    # A round cell in a 4:3 picture (Kaggle's 320 × 240) must stay round on paper.
    from PIL import ImageDraw

    picture = Image.new("RGB", (96, 72), (230, 220, 220))
    ImageDraw.Draw(picture).ellipse((30, 18, 66, 54), fill=(20, 20, 120))
    prediction = classifier.predict([np.asarray(picture)])[0]
    results = [CellResult("round.png", "0" * 64, prediction, np.asarray(picture))]
    pdf = build_report(results, differential(results, classifier.classes), classifier.card,
                       classifier.model_sha256)
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-f", "2", "-l", "2", "-r", "150", "-png",
                    str(tmp_path / "r.pdf"), str(tmp_path / "page")], check=True)
    page = np.asarray(Image.open(next(tmp_path.glob("page-*.png"))).convert("RGB")).astype(int)
    rows, columns = np.nonzero(page[..., 2] - page[..., 0] > 60)
    width, height = np.ptp(columns) + 1, np.ptp(rows) + 1
    assert abs(width - height) <= 2, (width, height)


@pytest.mark.slow
def test_report_command_line(tmp_path, pbc_examples):
    import sys

    folder = tmp_path / "cells"
    folder.mkdir()
    for path, _ in pbc_examples[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "empty.png").write_bytes(b"")
    shutil.copy(pbc_examples[0][0], folder / "again.jpg")  # the same cell, counted twice
    out = tmp_path / "r.pdf"
    result = subprocess.run([sys.executable, "-m", "hematovision", "report", str(folder),
                             "--out", str(out), "--no-gradcam"], capture_output=True, text=True)
    assert result.returncode == 1  # one file was unreadable
    assert out.stat().st_size > 1000 and "1 unreadable" in result.stdout
    # Whoever reads only the PDF learns of the copy too; no CSV is named that was not made.
    from pypdf import PdfReader

    first_page = PdfReader(out).pages[0].extract_text()
    assert "1 file is byte-identical to another" in first_page
    assert "1 file is byte-identical to another" in result.stderr and "CSV" not in result.stderr


def test_sources_from_paths_reads_folders_and_zips(tmp_path, zip_upload, pbc_examples):
    (tmp_path / "a.zip").write_bytes(zip_upload)
    shutil.copy(pbc_examples[0][0], tmp_path / "one.jpg")
    names = [name for name, _, _ in sources_from_paths([tmp_path])]
    # A zip's members are named by the zip's path as given, like the files beside it.
    assert any(name.startswith(f"{tmp_path / 'a.zip'}/") for name in names)
    assert str(tmp_path / "one.jpg") in names


def test_audit_log_holds_hashes_not_images(classifier, batch):
    _, results = batch
    entries = [audit_entry(classifier, r.sha256, r.prediction) for r in results if r.prediction]
    text = audit_csv(entries)
    header = text.splitlines()[0].split(",")
    assert header[:7] == ["time", "image_sha256", "model", "model_sha256", "label", "confidence",
                          "status"]
    assert header[7:] == list(classifier.classes)
    assert len(text.splitlines()) == len(entries) + 1
    assert classifier.model_sha256 in text


def test_audit_log_files_each_probability_under_its_own_class_across_models(
        classifier, batch):
    # A session may switch to a model with other classes (an adapted or a Kaggle model);
    # its probabilities must not slide under the first model's class names.
    import csv
    import io
    from dataclasses import replace

    _, results = batch
    prediction = next(r.prediction for r in results if r.prediction)
    four = ("neutrophil", "eosinophil", "lymphocyte", "monocyte")
    other = replace(prediction, label="neutrophil", confidence=0.97,
                    probabilities=(0.97, 0.01, 0.01, 0.01), classes=four)
    entries = [audit_entry(classifier, "a" * 64, prediction), audit_entry(classifier, "b" * 64,
                                                                         other)]
    rows = list(csv.DictReader(io.StringIO(audit_csv(entries))))
    assert rows[1]["neutrophil"] == "0.970000" and rows[1]["ig"] == ""
    assert rows[0]["ig"] == f"{prediction.probabilities[classifier.classes.index('ig')]:.6f}"


def test_a_large_jpeg_is_decoded_smaller_in_a_batch_with_the_same_answer(classifier,
                                                                        pbc_examples):
    # A camera's 4,000-pixel JPEG takes long to decode in full; a batch decodes it at
    # 1/2, 1/4 or 1/8 size (JPEG draft mode) as long as the shorter side keeps twice the
    # model's input side, so the network still gets a downscaled frame.
    path, _ = next((p, lab) for p, lab in pbc_examples if lab == "monocyte")
    cell = Image.open(path).convert("RGB")
    large = cell.resize((cell.width * 5, cell.height * 5), Image.BICUBIC)
    buffer = io.BytesIO()
    large.save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    shortest = 2 * classifier.input_size
    drafted = read_image(data, shortest=shortest)
    assert shortest <= min(drafted.shape[:2]) < min(large.size) // 2
    assert read_image(data).shape[:2] == (large.height, large.width)
    [result] = classify_sources(classifier, [("large.jpg", data, "")])
    [full] = classifier.predict([read_image(data)])
    assert result.prediction.label == full.label
    assert np.abs(np.subtract(result.prediction.probabilities, full.probabilities)).max() < 0.05
