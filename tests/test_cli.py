"""The ``hematovision`` command end to end: train a tiny model, evaluate it, predict."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hematovision.model.card import load_card

from .conftest import KAGGLE, PBC, SHIPPED_MODEL, ZHENG, strict_json

# Every test here runs the command in a new process, which loads TensorFlow (10-20 s on two
# shared cores); how main() turns errors into statuses is tested in-process in
# test_errors.py, inside the quick loop.
pytestmark = pytest.mark.slow


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hematovision", *args], capture_output=True,
                          text=True, timeout=900, cwd=cwd)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    result = run_cli("train", "--data", str(PBC), "--out", str(out),
                     "--classes", "eosinophil,lymphocyte,platelet", "--limit-per-class", "14",
                     "--head-epochs", "3", "--epochs", "1", "--train-batchnorm", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "test split" in result.stdout
    return out


def test_train_writes_a_complete_model_folder(tiny_model):
    for name in ("model.keras", "card.json", "MODEL_CARD.md", "split.json", "history.csv",
                 "evaluation.json"):
        assert (tiny_model / name).is_file(), name
    card = load_card(tiny_model)
    assert card.config.classes == ("eosinophil", "lymphocyte", "platelet")
    assert card.results.training["config"]["train_batchnorm"] is True
    assert card.results.metrics["n"] == 3 * 2  # 15 % of 14 per class
    history = list(csv.DictReader(open(tiny_model / "history.csv")))
    assert {row["phase"] for row in history} == {"1", "2"}
    # The Markdown card is for people: counts as a table whose totals are the split's.
    markdown = (tiny_model / "MODEL_CARD.md").read_text()
    split = json.loads((tiny_model / "split.json").read_text())
    totals = "| **all** | " + " | ".join(
        str(sum(card.results.data["counts"][name].values())) for name in ("train", "val", "test"))
    assert "| class | train | val | test |" in markdown and totals in markdown
    assert sum(card.results.data["counts"]["test"].values()) == sum(
        1 for entry in split["files"] if entry["split"] == "test")
    assert f"- hardware: {card.results.training['hardware']}" in markdown


def test_training_is_reproducible_in_its_split(tiny_model, tmp_path):
    again = tmp_path / "again"
    result = run_cli("train", "--data", str(PBC), "--out", str(again),
                     "--classes", "eosinophil,lymphocyte,platelet", "--limit-per-class", "14",
                     "--head-epochs", "1", "--epochs", "0", "--quiet", "--no-evaluate")
    assert result.returncode == 0, result.stderr
    first = json.loads((tiny_model / "split.json").read_text())
    second = json.loads((again / "split.json").read_text())
    assert first["fingerprint"] == second["fingerprint"]
    assert first["files"] == second["files"]


def test_continuing_a_model_builds_its_network_and_refuses_another(tiny_model, tmp_path):
    options = ("--data", str(PBC), "--classes", "eosinophil,lymphocyte,platelet",
               "--limit-per-class", "14", "--epochs", "0", "--quiet", "--no-evaluate")
    # Another backbone cannot take the model's weights: refused before any image is read,
    # naming the setting rather than a layer's weight shapes.
    refused = run_cli("train", *options, "--out", str(tmp_path / "other"),
                      "--init-from", str(tiny_model), "--backbone", "lite1")
    assert refused.returncode != 0
    assert "backbone lite1 (it has lite0)" in refused.stderr, refused.stderr
    assert not (tmp_path / "other").exists()
    # Without --backbone the continued run takes the model's own network and weights.
    continued = run_cli("train", *options, "--out", str(tmp_path / "again"),
                        "--init-from", str(tiny_model))
    assert continued.returncode == 0, continued.stderr
    card = load_card(tmp_path / "again")
    assert card.config.backbone == load_card(tiny_model).config.backbone
    assert card.results.training["config"]["init_from"] == str(tiny_model)


def test_averaging_models_starts_from_the_mean_of_their_weights(tiny_model, tmp_path):
    import keras

    options = ("--data", str(PBC), "--classes", "eosinophil,lymphocyte,platelet",
               "--limit-per-class", "14", "--quiet", "--no-evaluate")
    other = tmp_path / "other"
    trained = run_cli("train", *options, "--out", str(other), "--head-epochs", "1",
                      "--epochs", "0", "--seed", "7")
    assert trained.returncode == 0, trained.stderr
    soup = tmp_path / "soup"
    averaged = run_cli("train", *options, "--out", str(soup), "--epochs", "0",
                       "--init-from", str(tiny_model), "--average-with", str(other))
    assert averaged.returncode == 0, averaged.stderr
    assert load_card(soup).results.training["config"]["average_with"] == [str(other)]
    models = [keras.saving.load_model(folder / "model.keras", compile=False)
              for folder in (tiny_model, other, soup)]
    differ = 0
    for layer in models[2].layers:
        if layer.weights:  # the temperature (a rescaling) has none
            first, second = (m.get_layer(layer.name).get_weights() for m in models[:2])
            for a, b, mean in zip(first, second, layer.get_weights()):
                np.testing.assert_allclose(mean, (a + b) / 2, rtol=1e-6, atol=1e-6,
                                           err_msg=layer.name)
                differ += not np.array_equal(a, b)
    assert differ > 0  # the two members differ, so the mean is not either of them
    # A model split otherwise has learned from some of this run's test cells: refused
    # before any image is decoded, and nothing is written.
    leaked = run_cli("train", *options, "--split", "0.5", "0.2", "0.3", "--epochs", "0",
                     "--out", str(tmp_path / "leaky"), "--init-from", str(tiny_model))
    assert leaked.returncode != 0
    assert "of this run's test cells" in leaked.stderr, leaked.stderr
    assert not (tmp_path / "leaky").exists()


def test_saved_model_reloads_and_predicts_like_the_seam(tiny_model):
    import keras
    import numpy as np

    from hematovision.io.images import load_model_input
    from hematovision.model.classifier import Classifier

    classifier = Classifier(tiny_model)
    path = next((PBC / "platelet").iterdir())
    batch = load_model_input(path)[None]
    plain = keras.saving.load_model(tiny_model / "model.keras").predict(batch, verbose=0)
    assert np.abs(classifier.predict_proba(batch) - plain).max() <= 1e-4


def test_review_threshold_is_refitted_on_the_validation_cells_and_the_model_kept(
        tiny_model, tmp_path):
    from hematovision.io.dataset import split_files
    from hematovision.io.images import load_model_input
    from hematovision.model.classifier import Classifier

    model = tmp_path / "tiny"
    shutil.copytree(tiny_model, model)
    before = load_card(model)
    assert before.config.review_rule  # training fitted one
    result = run_cli("review-threshold", "--model", str(model), "--data", str(PBC),
                     "--catch", "1.0", "--quiet")
    assert result.returncode == 0, result.stderr
    card = load_card(model)
    assert card.config.model_sha256 == before.config.model_sha256
    assert card.config.review_rule in result.stdout and card.config.review_rule in (
        model / "MODEL_CARD.md").read_text()
    files = split_files(model, PBC, "val")
    classifier = Classifier(model)
    framing = classifier.card.config.framing
    probabilities = classifier.predict_proba(
        np.stack([load_model_input(path, framing=framing) for path, _ in files]))
    labels = np.array([classifier.classes.index(label) for _, label in files])
    wrong = probabilities.argmax(axis=1) != labels
    if wrong.any():  # --catch 1.0: every wrong validation answer is under the threshold
        assert probabilities.max(axis=1)[wrong].max() < card.config.review_threshold
        assert f"{wrong.sum()} of {wrong.sum()} fall under it" in card.config.review_rule
    else:
        assert "no wrong answers" in card.config.review_rule


def test_evaluate_on_an_external_folder_reports_restricted_classes(tiny_model):
    result = run_cli("evaluate", "--model", str(tiny_model), "--data", str(KAGGLE), "--quiet",
                     "--bootstrap", "50")
    assert result.returncode == 0, result.stderr
    # Strict JSON: a class with no cells has null recall, not NaN, which other tools reject.
    report = strict_json(tiny_model / "evaluation_kaggle_bloodcells_sample.json")
    strict_json(tiny_model / "card.json")
    assert report["kind"] == "external folder"
    assert set(report["ignored_classes"]) == {"monocyte", "neutrophil"}
    assert report["metrics"]["n"] == 80  # eosinophil and lymphocyte, TRAIN and TEST
    assert report["restricted"]["classes"] == ["eosinophil", "lymphocyte"]
    card = load_card(tiny_model)
    assert card.results.external[0]["name"] == "kaggle_bloodcells_sample"
    assert card.results.metrics["n"] == 6  # the test-split result survives the external one


def test_evaluate_from_inside_a_folder_names_the_set_after_the_folder(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    result = run_cli("evaluate", "--model", str(model), "--data", ".", "--quiet",
                     "--bootstrap", "20", cwd=KAGGLE)
    assert result.returncode == 0, result.stderr
    assert (model / "evaluation_kaggle_bloodcells_sample.json").is_file()
    names = [entry["name"] for entry in load_card(model).results.external]
    assert "kaggle_bloodcells_sample" in names and "" not in names


def test_evaluate_on_several_folders_prints_one_cross_lab_table(tiny_model):
    result = run_cli("evaluate", "--model", str(tiny_model), "--data", str(PBC), str(ZHENG),
                     "--quiet", "--bootstrap", "20")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines()
                  if line.startswith("data") and "Unfamiliar" in line and "Review" in line)
    table = result.stdout[result.stdout.index(header):]
    assert "pbc (test)" in table and "zheng2018_d2" in table
    assert "restricted" in table  # zheng has 2 of the tiny model's 3 classes
    report = json.loads((tiny_model / "evaluation_zheng2018_d2.json").read_text())
    assert 0.0 <= report["metrics"]["share_unfamiliar"] <= 1.0
    assert {p["status"] for p in report["predictions"]} <= {"Confident", "Review", "Unfamiliar"}


def test_evaluate_leaves_out_the_cells_the_model_learned_from(tiny_model, tmp_path):
    # A folder of training cells passed as "external" would flatter the model.
    split = json.loads((tiny_model / "split.json").read_text())
    learned = [entry for entry in split["files"]
               if entry["split"] in ("train", "val") and entry["label"] == "eosinophil"][:4]
    data = tmp_path / "mixed"
    (data / "eosinophil").mkdir(parents=True)
    for entry in learned:
        shutil.copy(PBC / entry["path"], data / "eosinophil" / Path(entry["path"]).name)
    for path in sorted((ZHENG / "images" / "eosinophil").glob("*.png"))[:3]:
        shutil.copy(path, data / "eosinophil" / path.name)
    result = run_cli("evaluate", "--model", str(tiny_model), "--data", str(data), "--quiet",
                     "--bootstrap", "20")
    assert result.returncode == 0, result.stderr
    assert "left out 4 of 7 images the model learned from" in result.stderr
    assert "left out, as the model learned from them: 4" in result.stdout
    report = json.loads((tiny_model / "evaluation_mixed.json").read_text())
    assert report["metrics"]["n"] == 3 and len(report["left_out_learned_from"]) == 4
    for path in list((data / "eosinophil").glob("*.png")):
        path.unlink()
    result = run_cli("evaluate", "--model", str(tiny_model), "--data", str(data), "--quiet")
    assert result.returncode != 0 and "learned from every one of these 4" in result.stderr


@pytest.fixture(scope="module")
def my_lab(tmp_path_factory) -> Path:
    """Eight eosinophils and eight lymphocytes from another laboratory."""
    data = tmp_path_factory.mktemp("labs") / "my-lab"
    for label in ("eosinophil", "lymphocyte"):
        (data / label).mkdir(parents=True)
        for path in sorted((ZHENG / "images" / label).glob("*.png"))[:8]:
            shutil.copy(path, data / label / path.name)
    return data


@pytest.mark.parametrize("tuning", ["last-block", "last-layer"])
def test_adapt_end_to_end_on_a_few_external_cells(tiny_model, my_lab, tmp_path, tuning):
    from hematovision.io.images import read_image
    from hematovision.model.classifier import Classifier

    before_sha = load_card(tiny_model).config.model_sha256
    out = tmp_path / "adapted"
    result = run_cli("adapt", "--model", str(tiny_model), "--data", str(my_lab), "--out", str(out),
                     "--per-class", "3", "--tuning", tuning, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "before: accuracy" in result.stdout and " after: accuracy" in result.stdout
    card = load_card(out)
    adaptation = card.results.training["adaptation"]
    assert adaptation["tuning"] == tuning
    assert adaptation["used"] == {"eosinophil": 3, "lymphocyte": 3, "platelet": 0}
    assert adaptation["held_out"] == {"eosinophil": 5, "lymphocyte": 5, "platelet": 0}
    assert card.config.classes == ("eosinophil", "lymphocyte", "platelet")
    original = load_card(tiny_model)
    assert card.config.review_threshold == original.config.review_threshold
    # The original's test results were measured on other weights: none travel.
    assert original.results.metrics and original.results.source_tests
    assert not (card.results.metrics or card.results.source_tests or card.results.source_benchmark)
    assert card.config.review_rule == f"kept from tiny, where it was {original.config.review_rule}"
    listing = json.loads((out / "adaptation.json").read_text())
    assert not set(listing["used"]) & set(listing["held_out"])
    adapted = Classifier(out)
    assert adapted.runtime == "litert" and adapted.familiarity is not None
    if tuning == "last-layer":  # the lab's two class centres join the familiarity check
        assert adaptation["remembered_per_class"] == 256
        assert adapted.familiarity.means.shape[0] == 3 + 2
        assert np.isfinite(adapted.familiarity.threshold)
        # Refitted on the home laboratory alone, the lab's centres would go without a word.
        kept = (out / "familiarity.npz").read_bytes()
        refit = run_cli("familiarity", "--model", str(out), "--data", str(PBC), "--quiet")
        assert refit.returncode == 1 and "was adapted to another laboratory" in refit.stderr
        assert (out / "familiarity.npz").read_bytes() == kept
    else:  # the tuned block's features no longer match the statistics: check off, said so
        assert adaptation["block"]["copies"] == 16
        assert adapted.familiarity.threshold == np.inf
        assert any("not checked for being far" in item for item in card.limitations)
    prediction = adapted.predict([read_image(next((my_lab / "lymphocyte").iterdir()))])[0]
    assert prediction.label in card.config.classes
    # Scored again on the lab's folder, the model is scored on the cells it did not adapt on.
    result = run_cli("evaluate", "--model", str(out), "--data", str(my_lab), "--quiet",
                     "--bootstrap", "20")
    assert result.returncode == 0, result.stderr
    assert "the cells it was adapted on" in result.stderr
    assert json.loads((out / "evaluation_my-lab.json").read_text())["metrics"]["n"] == 10
    assert load_card(tiny_model).config.model_sha256 == before_sha


def test_overwrite_replaces_a_model_only_once_the_new_one_is_complete(tiny_model, my_lab,
                                                                     tmp_path):
    model = tmp_path / "models" / "mine"
    shutil.copytree(tiny_model, model)
    before = {path.name: path.read_bytes() for path in model.iterdir()}
    too_few = tmp_path / "too-few"
    for label in ("eosinophil", "lymphocyte"):
        (too_few / label).mkdir(parents=True)
        shutil.copy(next((PBC / label).iterdir()), too_few / label)
    failed = run_cli("train", "--data", str(too_few), "--out", str(model), "--overwrite",
                     "--quiet")
    assert failed.returncode == 1 and "too few images" in failed.stderr
    assert {path.name: path.read_bytes() for path in model.iterdir()} == before
    replaced = run_cli("adapt", "--model", str(tiny_model), "--data", str(my_lab), "--out",
                       str(model), "--overwrite", "--per-class", "3", "--quiet")
    assert replaced.returncode == 0, replaced.stderr
    card = load_card(model)
    assert card.name == "mine" and card.results.training["adaptation"]["tuning"] == "last-layer"
    assert [path.name for path in model.parent.iterdir()] == ["mine"]  # nothing left behind


def test_adapt_study_reports_each_number_of_cells_and_keeps_the_model(tiny_model, my_lab,
                                                                       tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    before = load_card(model)
    for tuning in ("last-block", "last-layer"):
        result = run_cli("adapt", "--model", str(model), "--data", str(my_lab), "--study",
                         "--per-class-study", "2", "4", "--splits", "2", "--tuning", tuning,
                         "--quiet")
        assert result.returncode == 0, result.stderr
        assert "cells/class" in result.stdout
    # each depth keeps its own report...
    block = json.loads((model / "adaptation_my-lab_last-block.json").read_text())
    layer = json.loads((model / "adaptation_my-lab.json").read_text())
    assert (block["tuning"], layer["tuning"]) == ("last-block", "last-layer")
    for study in (block, layer):
        assert [row["per_class"] for row in study["rows"]] == [2, 4]
        for row in study["rows"]:
            # adapted on that many cells of each of the two classes, scored on the rest
            assert [run["used"] for run in row["runs"]] == [2 * row["per_class"]] * 2
            assert [run["held_out"] for run in row["runs"]] == [16 - 2 * row["per_class"]] * 2
            assert 0.0 <= row["after_balanced_accuracy"] <= 1.0
    card = load_card(model)
    # ... and so does the card: the later study does not replace the other depth's
    studies = card.results.adaptation
    assert set(studies) == {"last-block", "last-layer"}
    assert studies["last-layer"]["rows"][0]["per_class"] == layer["rows"][0]["per_class"]
    assert studies["last-block"]["counts"] == {"eosinophil": 8, "lymphocyte": 8,
                                               "platelet": 0}
    rendered = (model / "MODEL_CARD.md").read_text()
    assert "Adapting to another laboratory (my-lab): last layer only" in rendered
    assert "Adapting to another laboratory (my-lab): last block and layer" in rendered
    # a study saves no weights: the model file is the one the card was written for
    assert card.config.model_sha256 == before.config.model_sha256
    assert (model / "model.keras").read_bytes() == (tiny_model / "model.keras").read_bytes()


def test_train_on_the_kaggle_layout(tmp_path):
    out = tmp_path / "kaggle"
    result = run_cli("train", "--data", str(KAGGLE), "--out", str(out), "--head-epochs", "1",
                     "--epochs", "0", "--quiet")
    assert result.returncode == 0, result.stderr
    split = json.loads((out / "split.json").read_text())
    tests = [f for f in split["files"] if f["split"] == "test"]
    assert tests and all(f["path"].split("/")[-3] == "TEST" for f in tests)
    assert split["classes"] == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def test_predict_writes_a_row_per_file_and_flags_bad_ones(tmp_path):
    folder = tmp_path / "cells" / "nested"
    folder.mkdir(parents=True)
    for label in ("neutrophil", "eosinophil"):
        source = sorted((PBC / label).iterdir())[0]
        shutil.copy(source, folder / f"{label}.jpg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("I am not a picture")
    (folder / "=HYPERLINK(1).jpg").write_text("a spreadsheet formula as a file name")
    shutil.copy(folder / "neutrophil.jpg", folder / "again.jpg")  # the same cell, renamed
    (folder / "notes.txt").write_text("taken on the teaching microscope")  # skipped, named
    missing = tmp_path / "does-not-exist.png"
    out = tmp_path / "results.csv"
    # The neutrophil is named twice (its folder and itself): one row, not two.
    result = run_cli("predict", str(tmp_path / "cells"), str(missing),
                     str(folder / "neutrophil.jpg"), "--model", str(SHIPPED_MODEL),
                     "--out", str(out))
    assert result.returncode == 1  # some files failed
    assert "4 files could not be read" in result.stderr
    assert "1 file is byte-identical to another" in result.stderr
    assert "skipped 1 file without an image suffix" in result.stderr
    assert "notes.txt" in result.stderr
    rows = {Path(row["path"]).name: row
            for row in csv.DictReader(open(out, encoding="utf-8-sig"))}
    assert len(list(csv.DictReader(open(out, encoding="utf-8-sig")))) == len(rows) == 7
    assert set(rows) == {"neutrophil.jpg", "eosinophil.jpg", "empty.png", "text.jpg",
                         "does-not-exist.png", "=HYPERLINK(1).jpg", "again.jpg"}
    assert rows["again.jpg"]["sha256"] == rows["neutrophil.jpg"]["sha256"]
    header = next(csv.reader(open(out, encoding="utf-8-sig")))
    assert header[:4] == ["path", "label", "confidence", "status"] and header[-1] == "error"
    assert "neutrophil" in header and "platelet" in header
    assert rows["neutrophil.jpg"]["label"] == "neutrophil" and not rows["neutrophil.jpg"]["error"]
    assert rows["eosinophil.jpg"]["label"] == "eosinophil"
    for bad in ("empty.png", "text.jpg", "does-not-exist.png"):
        assert rows[bad]["error"] and not rows[bad]["label"]
    classes = list(load_card(SHIPPED_MODEL).config.classes)
    assert header[4:4 + len(classes)] == classes
    probabilities = [float(rows["neutrophil.jpg"][c]) for c in classes]
    assert abs(sum(probabilities) - 1) < 1e-3


def test_predict_follows_linked_folders_and_names_what_it_cannot_reach(tmp_path):
    cells, shared = tmp_path / "cells", tmp_path / "shared"
    cells.mkdir()
    shared.mkdir()
    monocyte, lymphocyte = (sorted((PBC / label).iterdir())[0] for label in
                            ("monocyte", "lymphocyte"))
    shutil.copy(monocyte, cells / "own.jpg")
    shutil.copy(lymphocyte, shared / "lent.jpg")
    (cells / "from the shared drive").symlink_to(shared, target_is_directory=True)
    (cells / "loop").symlink_to(cells, target_is_directory=True)  # must not run forever
    (cells / "moved away.jpg").symlink_to(tmp_path / "nowhere.jpg")
    too_long = str(tmp_path / ("b" * 300 + ".jpg"))
    out = tmp_path / "Zelle ä.csv"
    result = run_cli("predict", str(cells), too_long, "--out", str(out), "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = list(csv.DictReader(open(out, encoding="utf-8-sig")))
    by_name = {Path(row["path"]).name: row for row in rows}
    assert len(rows) == 4
    assert by_name["own.jpg"]["label"] == "monocyte"
    assert by_name["lent.jpg"]["label"] == "lymphocyte"
    assert "broken link" in by_name["moved away.jpg"]["error"]
    assert "too long" in by_name["b" * 300 + ".jpg"]["error"]
    # Excel takes a file without the byte-order mark for its own code page.
    assert out.read_bytes().startswith("\ufeffpath,".encode())


@pytest.mark.parametrize("damage,command,message", [
    (lambda m: (m / "card.json").write_text("[]"), "predict", "card.json is not a JSON object"),
    (lambda m: (m / "card.json").write_bytes(b"\xff\xfe{"), "predict", "card.json is not valid"),
    (lambda m: _edit_card(m, input_size="224"), "predict", "input_size has the wrong type"),
    (lambda m: _edit_card(m, familiarity_sha256=""), "predict",
     "familiarity.npz cannot be checked: its card records no sha256"),
    (lambda m: (m / "split.json").write_text("{"), "evaluate", "split.json is damaged"),
    (lambda m: (m / "split.json").write_text("{}"), "evaluate", "split.json is damaged"),
    (lambda m: (m / "split.json").unlink(), "evaluate", "split.json is missing"),
], ids=["card-list", "card-bytes", "card-field", "unchecked-file", "split-json", "split-empty",
        "split-missing"])
def test_a_damaged_model_folder_is_an_error_naming_the_file(tiny_model, tmp_path, damage,
                                                            command, message):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    damage(model)
    cell = sorted((PBC / "platelet").iterdir())[0]
    arguments = (["predict", str(cell), "--out", str(tmp_path / "x.csv")]
                 if command == "predict" else ["evaluate", "--data", str(PBC), "--bootstrap", "5"])
    result = run_cli(*arguments, "--model", str(model), "--quiet")
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and str(model) in result.stderr
    assert "Traceback" not in result.stderr


def _edit_card(model: Path, **config) -> None:
    """Change config fields in ``card.json`` by hand, as a user might."""
    card = json.loads((model / "card.json").read_text())
    card["config"].update(config)
    (model / "card.json").write_text(json.dumps(card))


def test_too_few_images_for_a_test_split_are_not_scored_as_another_lab(tmp_path):
    data = tmp_path / "few"
    for label in ("basophil", "monocyte"):
        (data / label).mkdir(parents=True)
        for path in sorted((PBC / label).iterdir())[:12]:
            shutil.copy(path, data / label / path.name)
    out = tmp_path / "trial"
    result = run_cli("train", "--data", str(data), "--out", str(out), "--limit-per-class", "3",
                     "--head-epochs", "1", "--epochs", "0", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "no evaluation: the test split is empty" in result.stdout
    assert load_card(out).results.external == []
    again = run_cli("evaluate", "--model", str(out), "--data", str(data), "--quiet")
    assert again.returncode == 1 and "is the data" in again.stderr
    assert "was trained on" in again.stderr and "--all" in again.stderr
    assert not list(out.glob("evaluation_*.json"))


def test_evaluate_on_a_folder_of_unreadable_images_says_so(tiny_model, tmp_path):
    data = tmp_path / "broken" / "platelet"
    data.mkdir(parents=True)
    whole = sorted((PBC / "platelet").iterdir())[0].read_bytes()
    (data / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    result = run_cli("evaluate", "--model", str(tiny_model), "--data", str(data.parent),
                     "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "none of its 1 images could be read" in result.stderr


def test_library_log_lines_show_only_with_verbose(tmp_path):
    cell = sorted((PBC / "ig").iterdir())[0]
    quiet = run_cli("predict", str(cell), "--out", str(tmp_path / "quiet.csv"))
    verbose = run_cli("predict", str(cell), "--out", str(tmp_path / "verbose.csv"), "--verbose")
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr + verbose.stderr
    # LiteRT's C++ logger ignores TensorFlow's log level; the CLI hides it all the same.
    assert "XNNPACK" not in quiet.stderr and "XNNPACK" in verbose.stderr
    assert (tmp_path / "quiet.csv").read_text() == (tmp_path / "verbose.csv").read_text()


def test_predict_with_a_missing_model_names_the_file(tmp_path):
    result = run_cli("predict", str(PBC / "neutrophil"), "--model", str(tmp_path / "nothing"),
                     "--out", str(tmp_path / "x.csv"))
    assert result.returncode == 1
    assert str(tmp_path / "nothing" / "card.json") in result.stderr


# Exit status 2: argparse refused the option; 1: the command refused the input.
@pytest.mark.parametrize("arguments,message,status", [
    (["predict", str(PBC / "neutrophil"), "--out", "x.csv", "--batch-size", "-5"],
     "--batch-size: must be 1 or more, got -5", 2),
    (["predict", str(PBC / "neutrophil"), "--out", "no/such/folder/x.csv"],
     "folder no/such/folder does not exist", 1),
    (["explain", "x.png", "--out", "x.png", "--opacity", "5"], "must lie between 0 and 1", 2),
    (["train", "--data", str(PBC), "--out", "x", "--classes", "basophil, Monocyte,blast",
      "--limit-per-class", "3", "--head-epochs", "0", "--epochs", "0"],
     "no training images for blast", 1),
    (["train", "--data", str(PBC), "--out", "x", "--classes", "basophil,monocyte",
      "--limit-per-class", "6", "--fine-tune-from", "Block4_"],
     "no layer of this network starts with 'Block4_'; its blocks: block0, block1, block2", 1),
    (["train", "--data", str(PBC), "--out", "x", "--review-catch", "0"],
     "--review-catch: must lie above 0 and at most 1, got 0.0", 2),
    (["explain", str(PBC / "ig" / "IG_101958.jpg"), "--out", "x.png",
      "--heatmap", "no/such/folder/h.npy"], "folder no/such/folder does not exist", 1),
    (["evaluate", "--model", str(SHIPPED_MODEL), "--data", str(ZHENG), "--bootstrap", "0"],
     "--bootstrap: must be 1 or more, got 0", 2),
    (["train", "--data", str(PBC), "--out", str(SHIPPED_MODEL)],
     "already holds a model; choose another --out, or pass --overwrite", 1),
    # No model is needed to refuse, and none is touched if the refusal ever goes.
    (["evaluate", "--model", "no/such/model", "--data", str(PBC), str(ZHENG / ".." / "pbc")],
     "two data folders are named pbc; their results would overwrite each other", 1),
])
def test_bad_options_are_refused_before_any_work(arguments, message, status):
    result = run_cli(*arguments)
    assert result.returncode == status and message in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_explains_its_options():
    for command in ("train", "evaluate", "predict", "explain", "report", "adapt", "foreign",
                    "familiarity", "review-threshold", "export"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        options = [line.split()[0] for line in result.stdout.splitlines()
                   if line.startswith("  --")]
        for line in result.stdout.split("options:")[1].split("\n  -")[1:]:
            assert len(line.split()) > 1 + line.split()[0].count("{"), (command, line)
        assert options, command
        # The README promises an example with every command's options.
        assert f"example: hematovision {command} " in result.stdout, command
    assert "(default: 8)" in run_cli("predict", "--help").stdout


def test_the_package_carries_every_module(tmp_path):
    # A wheel (pip install . rather than -e) must hold the explainers too.
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(Path(__file__).parents[1])], check=True,
                   capture_output=True)
    (wheel,) = tmp_path.glob("hematovision-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    source = Path(__file__).parents[1] / "hematovision"
    expected = {path.relative_to(source.parent).as_posix() for path in source.rglob("*.py")}
    assert expected <= names, sorted(expected - names)


def test_explain_saves_the_cell_beside_its_map_with_a_colour_key(tmp_path, pbc_examples):
    from PIL import Image

    from hematovision.io.images import read_image

    cell = pbc_examples[0][0]
    out, heatmap = tmp_path / "why.png", tmp_path / "map.npy"
    result = run_cli("explain", str(cell), "--method", "shap", "--class", "Monocyte",
                     "--out", str(out), "--heatmap", str(heatmap))
    assert result.returncode == 0, result.stderr
    assert "SHAP for monocyte (0.0 %; predicted " in result.stdout
    assert "Greyed" in result.stdout  # a basophil is no monocyte: the map says so
    assert any(status in result.stdout for status in ("Confident)", "Review)", "Unfamiliar)"))
    panel = Image.open(out)
    assert panel.size[0] == 8 + 2 * (384 + 8) and panel.size[1] > 384 + 44  # tiles and key
    saved = np.load(heatmap)
    assert saved.shape == read_image(cell).shape[:2] and 0 <= saved.min() <= saved.max() <= 1
    # Asked about a class the model does not know, it names the ones it does.
    result = run_cli("explain", str(cell), "--class", "macrophage", "--out", str(out))
    assert result.returncode == 1 and "the model knows: basophil" in result.stderr


@pytest.mark.parametrize("damage", ["delete", "append a byte"])
def test_familiarity_rebuilds_its_own_missing_or_damaged_file(tiny_model, tmp_path, damage):
    import re

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    statistics = model / "familiarity.npz"
    if damage == "delete":
        statistics.unlink()
    else:
        statistics.write_bytes(statistics.read_bytes() + b"x")
    result = run_cli("familiarity", "--model", str(model), "--data", str(PBC), "--quiet")
    assert result.returncode == 0, result.stderr
    # The share printed is the one measured on the model's 6 validation cells.
    share = float(re.search(r"Unfamiliar \(([\d.]+) % of validation cells", result.stdout)[1])
    cells = share * 6 / 100
    assert abs(cells - round(cells)) < 0.01, share
    cell = sorted((PBC / "platelet").iterdir())[0]
    predicted = run_cli("predict", str(cell), "--model", str(model),
                        "--out", str(tmp_path / "x.csv"), "--quiet")
    assert predicted.returncode == 0, predicted.stderr


def test_export_keeps_the_converter_s_native_log_lines_out_of_sight(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "model.tflite").unlink()
    quiet = run_cli("export", "--model", str(model))
    assert quiet.returncode == 0, quiet.stderr
    assert (model / "model.tflite").is_file()
    for line in ("absl::InitializeLog", "MLIR", "Ignored output_format"):
        assert line not in quiet.stderr
    # Any model folder gets the feature map and its head's weights: Grad-CAM in closed
    # form equals the Keras model's gradients on this tiny model too.
    from hematovision.explain.gradcam import activations_and_gradients, gradcam_from
    from hematovision.explain.gradcam_keras import keras_activations_and_gradients
    from hematovision.io.images import read_image
    from hematovision.model.classifier import Classifier

    card = load_card(model)
    assert card.config.head_weights_file == "head.npz" and card.config.head_weights_sha256
    classifier = Classifier(model)
    assert classifier.head is not None
    x = classifier.prepare(read_image(next((PBC / "platelet").iterdir())))
    for index in range(len(classifier.classes)):
        fast = activations_and_gradients(x, classifier, index)
        slow = keras_activations_and_gradients(x, classifier, index, card.config.gradcam_layer)
        assert np.allclose(fast[1], slow[1], atol=1e-6)
        cams = gradcam_from(*fast[:2]), gradcam_from(*slow[:2])
        assert np.abs(cams[0] - cams[1]).max() <= 1e-4 * max(cams[1].max(), 1e-6)
