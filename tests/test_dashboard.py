"""The Streamlit pages, driven through AppTest on the shipped model."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import make_cell
from hematovision.model.card import load_card

from .conftest import ROOT

TIMEOUT = 300


@pytest.fixture(autouse=True)
def _checked_against_pbc_lite0(monkeypatch):
    """These pages are checked against pbc-lite0's card and results; the default model,
    multi-lite0, has its own tests (test_default_model, and the audit's source table)."""
    from .conftest import SHIPPED_MODEL

    monkeypatch.setenv("HEMATOVISION_MODEL", str(SHIPPED_MODEL))


def _page(name: str) -> AppTest:
    """A page reached through the app's navigation, as a browser reaches it."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    if name != "streamlit_app.py":
        at.switch_page(name)
    return at


def _without_alt_text(at: AppTest) -> list[str]:
    """Captions (or "?") of the page's images that a screen reader could not describe."""
    return [image.caption or "?" for element in at.get("image") for image in element.proto.imgs
            if not image.HasField("alt") or not image.alt]


def _cells(examples) -> list:
    return [make_cell(path.name, path.read_bytes()) for path, _ in examples]


def test_home_page_shows_the_model_card(classifier):
    at = _page("streamlit_app.py").run()
    assert not at.exception
    labels = [metric.label for metric in at.metric]
    assert any("Balanced accuracy" in label for label in labels)
    text = " ".join(m.value for m in at.markdown)
    for name in classifier.classes:
        assert name in text
    assert classifier.card.config.review_rule in text  # why the Review threshold is where it is
    captions = " ".join(caption.value for caption in at.caption)
    assert "EfficientNet-Lite0" in captions  # the network's name, not the registry key


def test_classify_adds_an_example_and_shows_label_and_bars(pbc_examples):
    at = _page("pages/1_Classify.py").run()
    assert not at.exception
    at.selectbox(key="example_class").set_value("eosinophil")
    at.button(key="add_examples").click().run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1
    headline = " ".join(h.value for h in at.subheader)
    assert "eosinophil" in headline  # examples come from the held-out test split
    assert _without_alt_text(at) == []
    # Seeded by the session's count of examples: a fresh session shows the same first cell.
    again = _page("pages/1_Classify.py").run()
    again.selectbox(key="example_class").set_value("eosinophil")
    again.button(key="add_examples").click().run()
    first = [cell.name for cell in at.session_state["examples"]]
    assert [cell.name for cell in again.session_state["examples"]] == first


def test_review_threshold_starts_at_the_cards_and_moving_it_up_marks_the_cell(
        classifier, pbc_examples):
    at = _page("pages/1_Classify.py")
    at.session_state["examples"] = _cells(pbc_examples[:1])
    at.run()
    assert not at.exception
    slider = at.slider(key="threshold_widget")
    assert slider.value == pytest.approx(classifier.card.config.review_threshold)
    assert classifier.card.config.review_rule and classifier.card.config.review_rule in slider.help
    assert not any(w.value.startswith("Review") for w in at.warning)
    slider.set_value(1.0).run()
    assert any(w.value.startswith("Review: the top probability is below 100%")
               for w in at.warning)


def test_the_home_page_states_the_review_threshold_the_sidebar_holds(classifier):
    at = _page("streamlit_app.py").run()
    card = f"{classifier.card.config.review_threshold:.2f}"
    flags = next(m.value for m in at.markdown if "**Review**" in m.value)
    assert f"under\n  {card} ({classifier.card.config.review_rule})" in flags
    at.sidebar.slider(key="threshold_widget").set_value(0.5).run()
    flags = next(m.value for m in at.markdown if "**Review**" in m.value)
    assert f"0.50, as set in the sidebar (the model card's: {card})" in flags


def _linked_model(folder: Path, leave_out: str = "", name: str = "",
                  config: dict | None = None, results: dict | None = None) -> Path:
    """The shipped model's files linked into ``folder``; its card renamed, or its
    ``config`` and ``results`` fields changed, is written there instead. Files matching
    ``leave_out`` are left out."""
    from hematovision.model.card import CARD_FILE, CARD_MARKDOWN, load_card, save_card

    from .conftest import SHIPPED_MODEL

    folder.mkdir(parents=True)
    changed = name or config or results
    if changed:
        card = load_card(SHIPPED_MODEL)
        card = replace(card, name=name or card.name).with_config(**config or {})
        save_card(folder, card.with_results(**results or {}))
    for path in SHIPPED_MODEL.iterdir():
        if not (changed and path.name in (CARD_FILE, CARD_MARKDOWN)
                or leave_out and path.match(leave_out)):
            (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture
def two_models(tmp_path, monkeypatch):
    """A models folder with the shipped weights under two cards, "a-first" (Review below
    0.90) and "z-chosen" (0.60); $HEMATOVISION_MODEL names the second."""
    for name, threshold in (("a-first", 0.90), ("z-chosen", 0.60)):
        _linked_model(tmp_path / name, name=name, config={"review_threshold": threshold})
    monkeypatch.setenv("HEMATOVISION_MODELS", str(tmp_path))
    monkeypatch.setenv("HEMATOVISION_MODEL", str(tmp_path / "z-chosen"))
    return tmp_path


def test_the_sidebar_starts_on_the_chosen_model_and_a_switch_brings_its_threshold(
        two_models):
    at = _page("pages/1_Classify.py").run()
    assert not at.exception
    assert at.sidebar.selectbox(key="model_name").value == "z-chosen"
    slider = at.sidebar.slider(key="threshold_widget")
    assert slider.value == pytest.approx(0.60)
    slider.set_value(0.50).run()
    at.sidebar.selectbox(key="model_name").select("a-first").run()
    assert not at.exception
    # What the slider shows is what the pages use: the new model's own threshold.
    assert at.sidebar.slider(key="threshold_widget").value == pytest.approx(0.90)
    assert at.session_state["threshold"] == pytest.approx(0.90)


def test_a_bad_upload_shows_an_error_and_the_rest_are_classified(pbc_examples):
    at = _page("pages/1_Classify.py")
    good = _cells(pbc_examples[:3])
    at.session_state["examples"] = [good[0], make_cell("broken.png", b"\x89PNG garbage"),
                                    make_cell("empty.jpg", b""), *good[1:]]
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert any("broken.png" in e for e in errors) and any("empty.jpg" in e for e in errors)
    table = at.dataframe[0].value
    assert len(table) == 3
    expected = [label for _, label in pbc_examples[:3]]
    assert list(table["label"]) == expected


@pytest.mark.slow
def test_explain_renders_all_four_maps_for_a_chosen_class(pbc_examples, monkeypatch):
    import dashboard.results

    calls = []
    real = dashboard.results.explain

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(dashboard.results, "explain", counting)
    cell = _cells(pbc_examples[:1])[0]
    at = _page("pages/2_Explain.py")
    at.session_state["classified"] = {cell.sha256: cell}
    at.session_state["lime_samples"] = 50
    at.session_state["shap_evaluations"] = 50
    at.run()
    assert not at.exception
    captions = [image.caption for element in at.get("image") for image in element.proto.imgs]
    keys = [caption for caption in captions if caption.endswith("for the class")]
    assert len(keys) == 4 and sum(key.startswith("against") for key in keys) == 2  # LIME, SHAP
    _class_choice(at).set_value("monocyte").run()
    assert not at.exception
    captions = [image.caption for element in at.get("image") for image in element.proto.imgs]
    assert len(captions) == 1 + 4 + 4, captions  # the cell, four maps and their colour keys
    assert _without_alt_text(at) == []
    # The basophil is no monocyte (well under 2 %): no map may look like strong evidence.
    # Each is greyed, its own caption says why, and no colour key is offered.
    assert sum("Greyed" in caption and "monocyte" in caption for caption in captions) == 4
    assert not any(caption.endswith("for the class") for caption in captions)
    assert "monocyte" in " ".join(m.value for m in at.markdown)
    assert len(at.get("download_button")) == 1
    # The shipped model's audit found Grad-CAM++ following the picture more than the model;
    # its map carries that caution, and the maps that passed carry none.
    from hematovision.report.model_report import load_explanation_checks

    from .conftest import SHIPPED_MODEL

    scrambled = load_explanation_checks(SHIPPED_MODEL)["randomisation"]["gradcampp"]
    assert scrambled["spearman_mean"] > 0.5  # the audit's finding, not this page's
    assert [w.value for w in at.warning] == [
        "Model audit: it barely changed when the model's top layers were scrambled (rank "
        f"correlation {scrambled['spearman_mean']:.2f}), so it partly shows the image rather "
        "than the model. Read it with care."]
    computed = len(calls)
    at.slider(key="opacity").set_value(0.8).run()
    assert not at.exception
    at.radio(key="explain_view").set_value("whole").run()
    assert not at.exception
    assert at.get("image")[0].proto.imgs[0].caption == "the whole picture"
    assert len(calls) == computed  # moving the slider or the view recomputes nothing


def _class_choice(at: AppTest):
    return next(box for box in at.selectbox if box.label == "Explain the class")


@pytest.mark.slow
def test_explain_starts_again_from_the_new_model_s_answer_after_a_switch(two_models,
                                                                          pbc_examples):
    cell = _cells([e for e in pbc_examples if e[1] == "neutrophil"][:1])[0]
    at = _page("pages/2_Explain.py")
    at.session_state["classified"] = {cell.sha256: cell}
    at.session_state["lime_samples"] = 50
    at.session_state["shap_evaluations"] = 50
    at.run()
    _class_choice(at).set_value("monocyte").run()
    assert _class_choice(at).value == "monocyte"
    at.sidebar.selectbox(key="model_name").select("a-first").run()
    assert not at.exception
    assert _class_choice(at).value == "neutrophil"
    assert "explaining **neutrophil**" in " ".join(m.value for m in at.markdown)


def test_explain_without_cells_points_to_classify():
    at = _page("pages/2_Explain.py").run()
    assert not at.exception
    assert at.info and "Classify" in at.info[0].value


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "pages").glob("*.py")))
def test_every_page_runs(page):
    at = _page(f"pages/{page}").run()
    assert not at.exception


def test_adapt_page_offers_both_tunings_with_the_last_layer_first():
    at = _page("pages/6_Adapt.py").run()
    assert not at.exception
    choice = at.radio(key="adapt_tuning")
    assert choice.options == ["Last layer only (seconds)", "Last block and layer (a few minutes)"]
    assert choice.value == "last-layer"


def test_adapt_page_states_what_adapting_bought_where_it_was_measured(classifier):
    at = _page("pages/6_Adapt.py").run()
    for tuning, words in (("last-layer", "last layer only"), ("last-block", "last block")):
        at.radio(key="adapt_tuning").set_value(tuning).run()
        captions = " ".join(caption.value for caption in at.caption)
        study = classifier.card.results.adaptation[tuning]  # each depth says what it bought
        assert study["data"] in captions and f"Measured ({words}" in captions
        for row in study["rows"]:
            assert (f"{row['per_class']} cells per class: "
                    f"{100 * row['before_balanced_accuracy']:.1f} % → "
                    f"{100 * row['after_balanced_accuracy']:.1f} %") in captions


@pytest.fixture
def local_server(monkeypatch):
    """The dashboard as `HEMATOVISION_LOCAL=1 make app` starts it, for one user."""
    monkeypatch.setenv("HEMATOVISION_LOCAL", "1")


@pytest.fixture
def shared_server(monkeypatch):
    """The dashboard as a shared server runs it: local mode off."""
    monkeypatch.delenv("HEMATOVISION_LOCAL", raising=False)


@pytest.mark.slow
def test_batch_page_classifies_a_folder_and_lists_the_broken_file(pbc_examples, tmp_path,
                                                                  local_server):
    import shutil

    for path, _ in pbc_examples[:4]:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "cut.jpg").write_bytes(pbc_examples[0][0].read_bytes()[:400])
    at = _page("pages/3_Batch.py").run()
    assert not at.exception
    at.text_input(key="batch_folder").input(str(tmp_path))
    at.button(key="run_batch").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 5
    assert (table["status"] == "unreadable").sum() == 1
    assert table["thumbnail"].notna().sum() == 4  # a thumbnail for every readable cell
    assert "truncated" in table.loc[table["status"] == "unreadable", "error"].iloc[0].lower()
    assert len(at.get("plotly_chart")) == 1
    # Every shown prediction is in the audit log, and the sidebar counts them in this run.
    logged = len(at.session_state["audit"])
    assert logged == 4
    labels = [button.proto.label for button in at.sidebar.get("download_button")]
    assert labels == [f"Audit log ({logged} predictions, CSV)"]
    at.button(key="make_pdf").click().run()
    assert not at.exception
    assert at.session_state["batch_pdf"][:4] == b"%PDF"
    # A threshold above every probability: the same files are answered again, all Review,
    # and the PDF made for the earlier answers is no longer offered.
    at.sidebar.slider(key="threshold_widget").set_value(1.0).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert (table["status"] == "Review").sum() == 4
    assert "batch_pdf" not in at.session_state


@pytest.mark.data  # the gallery's cells come from the datasets
def test_audit_page_reads_the_evaluation_and_shows_the_gallery(classifier):
    at = _page("pages/4_Model_Audit.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 6  # confusion, reliability, coverage, 2 curves, deletion
    assert len(at.get("image")) >= 6  # the gallery, with Grad-CAM overlays
    gallery = [image.caption for element in at.get("image") for image in element.proto.imgs
               if image.caption.startswith("true ")]
    # The least confident right answers are flagged cells; the caption says which flag.
    assert any(caption.endswith(("(Review)", "(Unfamiliar)")) for caption in gallery)
    assert _without_alt_text(at) == []
    checks = [t.value for t in at.table if "method" in t.value.columns]
    # Named as the Explain page names them, the baseline said to be one.
    assert checks and {"Grad-CAM", "Grad-CAM++", "LIME", "SHAP", "random map (baseline)"} == set(
        checks[0]["method"])
    assert any(m.value.startswith("**Grad-CAM**") for m in at.markdown)  # a sentence per method
    # The card's data as a table a reviewer can read, totals those the test split reports.
    test_cells = sum(classifier.card.results.data["counts"]["test"].values())
    assert any("| class | train | val | test |" in m.value and f"| {test_cells} |" in m.value
               for m in at.markdown)
    # The restricted figure says what it is: not what a user of the dashboard will see.
    labs = next(t.value for t in at.table if "laboratory" in t.value.columns)
    assert len(labs) == len(classifier.card.results.external)
    assert any("*Its classes only*" in c.value and "all of its classes" in c.value
               for c in at.caption)
    assert any("continued fine-tuning an earlier model" in c.value for c in at.caption)
    at.toggle(key="normalise_confusion").set_value(True).run()
    assert not at.exception


@pytest.mark.data  # the quiz draws its cells from the datasets
def test_quiz_answer_path_scores_and_reveals_the_model(classifier):
    from hematovision.report.atlas import common_name

    at = _page("pages/5_Atlas.py").run()
    assert not at.exception
    cell, truth, _ = at.session_state["quiz_cell"]
    at.radio(key=f"quiz_guess_{cell.sha256}").set_value(truth).run()
    at.button(key="quiz_check").click().run()
    assert not at.exception
    assert at.session_state["quiz_score"] == {"right": 1, "asked": 1}
    assert any(common_name(truth).lower() in s.value for s in at.success)
    assert any("The model said" in m.value for m in at.markdown)
    assert _without_alt_text(at) == []
    # The answer stands: no second Check, the choice locked until the next cell.
    assert at.radio(key=f"quiz_guess_{cell.sha256}").disabled
    assert not [b for b in at.button if b.key == "quiz_check"]
    at.button(key="quiz_next").click().run()
    assert not at.exception
    assert at.session_state["quiz_answered"] is None
    following, _, _ = at.session_state["quiz_cell"]
    assert not at.radio(key=f"quiz_guess_{following.sha256}").disabled
    assert at.session_state["quiz_score"] == {"right": 1, "asked": 1}


def test_atlas_and_quiz_with_another_lab_s_folder_that_lacks_some_classes(monkeypatch):
    from .conftest import ZHENG

    monkeypatch.setenv("HEMATOVISION_EXAMPLES", str(ZHENG / "images"))  # no ig, platelet…
    at = _page("pages/5_Atlas.py").run()
    assert not at.exception
    at.selectbox(key="atlas_class").set_value("platelet").run()
    assert not at.exception
    assert any("no example cells of platelet" in c.value for c in at.caption)
    for _ in range(6):  # every question is a class the folder has cells of
        assert at.session_state["quiz_cell"][1] in ("basophil", "eosinophil", "lymphocyte",
                                                    "monocyte", "neutrophil")
        at.button(key="quiz_next").click().run()
        assert not at.exception


@pytest.mark.data  # the quiz draws its cells from the datasets
def test_a_quiz_question_is_asked_again_under_a_newly_chosen_model(two_models):
    at = _page("pages/5_Atlas.py").run()
    first = at.session_state["quiz_cell"]
    assert first[2].startswith("z-chosen:")
    at.sidebar.selectbox(key="model_name").select("a-first").run()
    assert not at.exception
    assert at.session_state["quiz_cell"][2].startswith("a-first:")


def test_an_unfamiliar_image_is_flagged_and_its_answer_shown_only_on_request():
    import io

    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(picture).text((20, 140), "not a blood cell", fill="black")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    at = _page("pages/1_Classify.py")
    at.session_state["examples"] = [make_cell("text.png", buffer.getvalue())]
    at.run()
    assert not at.exception
    assert any("Unfamiliar" in e.value and "no cell found" in e.value for e in at.error)
    assert "Unfamiliar" in [h.value for h in at.subheader]  # no class named in the heading
    assert len(at.get("plotly_chart")) == 0  # no bars until asked for
    at.toggle(key="show_single").set_value(True).run()
    assert len(at.get("plotly_chart")) == 1
    assert any("Unreliable" in c.value for c in at.caption)


def test_a_picture_without_a_cell_is_not_called_familiar_by_its_distance():
    # A plain grey picture lies close to the training cells in feature space; beside
    # "no cell found", a bare "familiar up to" would tell the reader the opposite.
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (180, 180, 180)).save(buffer, format="PNG")
    at = _page("pages/1_Classify.py")
    at.session_state["examples"] = [make_cell("grey.png", buffer.getvalue())]
    at.run()
    assert not at.exception
    assert any("no cell found" in e.value for e in at.error)
    distance = next(c.value for c in at.caption if c.value.startswith("Familiarity distance"))
    value, limit = (float(x) for x in re.findall(r"\d+\.\d+", distance)[:2])
    assert value <= limit  # the case in point: close by distance, Unfamiliar all the same
    assert "Unfamiliar for the reason above" in distance


def test_among_several_cells_the_table_leaves_out_an_unfamiliar_answer(pbc_examples):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), "white").save(buffer, format="PNG")
    at = _page("pages/1_Classify.py")
    at.session_state["examples"] = [make_cell("blank.png", buffer.getvalue()),
                                    *_cells(pbc_examples[:1])]
    at.run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("cell")
    assert table.loc["blank.png", "status"] == "Unfamiliar"
    assert table.loc["blank.png", "label"] == "" and table["probability"].isna()["blank.png"]
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert "**Unfamiliar**" in cards
    assert any(card.startswith(f"**{pbc_examples[0][1]} ") and " %" in card for card in cards)
    cell = pbc_examples[0][0].name
    assert table.loc[cell, "label"] == pbc_examples[0][1]
    assert 0 < table.loc[cell, "probability"] <= 100  # a percentage, as the cards show it


def test_adapt_page_shows_its_button_waiting_for_a_zip():
    at = _page("pages/6_Adapt.py").run()
    assert not at.exception
    assert at.button(key="adapt_run").disabled  # enabled once a .zip is uploaded


@pytest.mark.slow
def test_adapt_from_an_uploaded_zip_saves_a_new_model_and_reports_unused_files(tmp_path):
    import io
    import zipfile

    from hematovision.adapt.adaptation import adapt_from_zip
    from hematovision.model.classifier import Classifier

    from .conftest import SHIPPED_MODEL, ZHENG

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("neutrophil", "lymphocyte"):
            for path in sorted((ZHENG / "images" / label).glob("*.png"))[:6]:
                archive.write(path, f"my-lab/{label.upper()}/{path.name}")
        archive.writestr("my-lab/notes.txt", "not an image")
        archive.writestr("my-lab/NEUTROPHIL/cut.png", b"\x89PNG\r\n\x1a\n cut short")
        archive.writestr("../escape/neutrophil/x.png", b"\x89PNG")
        archive.writestr("my-lab/unknown-class/y.png", (ZHENG / "images" / "neutrophil" /
                                                        "003.png").read_bytes())
    steps = []
    result, skipped = adapt_from_zip(SHIPPED_MODEL, buffer.getvalue(), tmp_path / "my-lab",
                                     per_class=3, progress=lambda f, m: steps.append(f))
    assert steps[-1] == 1.0 and steps == sorted(steps)
    assert result.used["neutrophil"] == 3 and result.held_out["lymphocyte"] == 3
    assert len(skipped) == 4
    assert any(why.startswith("my-lab/NEUTROPHIL/cut.png") for why in skipped)
    assert any("unsafe path" in why for why in skipped)
    assert any("not an image" in why for why in skipped)
    assert any("not inside a folder named after" in why for why in skipped)
    card = load_card(tmp_path / "my-lab")
    assert card.results.training["adaptation"]["after"]["n"] == 6
    # The original's adaptation study measured the original, like its test metrics.
    assert load_card(SHIPPED_MODEL).results.adaptation
    assert card.results.adaptation == {}
    assert Classifier(tmp_path / "my-lab").familiarity.means.shape[0] == 8 + 2


def test_the_same_cell_twice_is_shown_once_and_more_examples_are_new_ones(pbc_examples):
    at = _page("pages/1_Classify.py")
    first = _cells(pbc_examples[:1])[0]
    renamed = make_cell("the same cell, renamed.jpg", first.data)
    at.session_state["examples"] = [first, renamed]
    at.run()
    assert not at.exception  # widgets are keyed by content: two copies used to collide
    assert any("is the same image as" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1
    fresh = _page("pages/1_Classify.py").run()
    fresh.selectbox(key="example_class").set_value("basophil")
    fresh.number_input(key="example_count").set_value(24)
    for _ in range(2):
        fresh.button(key="add_examples").click().run()
        assert not fresh.exception
    names = [cell.name for cell in fresh.session_state["examples"]]
    assert len(names) == len(set(names)) == 48


def test_examples_of_a_class_the_model_was_not_tested_on_get_a_message(tmp_path, monkeypatch):
    from .conftest import training_folder_with_a_class_of_its_own

    # A class the model lacks offers its cells but those the model learned from: here none.
    training_folder_with_a_class_of_its_own(tmp_path, copied_from="train")
    monkeypatch.setenv("HEMATOVISION_EXAMPLES", str(tmp_path))
    at = _page("pages/1_Classify.py").run()
    at.selectbox(key="example_class").set_value("smudge")
    at.button(key="add_examples").click().run()
    assert not at.exception
    assert any("No examples added" in w.value and "smudge" in w.value for w in at.warning)
    monkeypatch.setenv("HEMATOVISION_EXAMPLES", str(tmp_path / "smudge"))  # no class folders
    at = _page("pages/1_Classify.py").run()
    assert not at.exception
    assert any("no class folders" in c.value for c in at.caption)
    assert at.button(key="add_examples").disabled


def test_explain_forgets_cells_removed_from_classify(pbc_examples):
    at = _page("pages/1_Classify.py")
    at.session_state["examples"] = _cells(pbc_examples[:2])
    at.run()
    assert len(at.session_state["classified"]) == 2
    at.button(key="clear_examples").click().run()
    assert not at.exception
    assert at.session_state["classified"] == {}


def test_batch_page_warns_when_the_same_cell_is_counted_twice(pbc_examples, tmp_path,
                                                              local_server):
    source = pbc_examples[0][0]
    for name in ("one.jpg", "copy of one.jpg"):
        (tmp_path / name).write_bytes(source.read_bytes())
    at = _page("pages/3_Batch.py").run()
    at.text_input(key="batch_folder").input(str(tmp_path))
    at.button(key="run_batch").click().run()
    assert not at.exception
    assert any("1 file is byte-identical to another" in w.value for w in at.warning)


def _zip_of_labelled_cells(per_class: int = 6) -> bytes:
    import io
    import zipfile

    from .conftest import ZHENG

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("neutrophil", "lymphocyte"):
            for path in sorted((ZHENG / "images" / label).glob("*.png"))[:per_class]:
                archive.write(path, f"{label}/{path.name}")
        archive.writestr("neutrophil/broken.png", b"\x89PNG\r\n\x1a\n garbage")
    return buffer.getvalue()


def test_a_shared_server_offers_no_server_folder_and_refuses_a_typed_one(pbc_examples,
                                                                         shared_server):
    from .conftest import PBC

    at = _page("pages/3_Batch.py").run()
    assert not at.exception
    assert not [box for box in at.text_input if box.key == "batch_folder"]
    # A path put into the session by hand (no widget draws it) is not read either.
    at.session_state["batch_folder"] = str(PBC)
    at.button(key="run_batch").click().run()
    assert not at.exception
    assert "batch_sources" not in at.session_state
    assert any("Nothing to classify" in w.value for w in at.warning)


def test_a_folder_beyond_the_walker_s_limits_is_refused_by_name(pbc_examples, tmp_path,
                                                                 local_server, monkeypatch):
    from hematovision.io.folders import FolderLimits

    for path, _ in pbc_examples[:3]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr("dashboard.state.FOLDER_LIMITS", FolderLimits(max_files=2))
    at = _page("pages/3_Batch.py").run()
    at.text_input(key="batch_folder").input(str(tmp_path))
    at.button(key="run_batch").click().run()
    assert not at.exception
    assert any(str(tmp_path) in error.value and "more than 2 files" in error.value
               for error in at.error)
    assert "batch_sources" not in at.session_state


@pytest.mark.slow
def test_on_a_shared_server_an_adapted_model_stays_in_its_visitor_s_session(
        tmp_path, monkeypatch, shared_server):
    models = tmp_path / "models"
    _linked_model(models / "pbc-lite0")
    _linked_model(models / "other", name="other")
    monkeypatch.setenv("HEMATOVISION_MODELS", str(models))
    monkeypatch.setenv("HEMATOVISION_MODEL", str(models / "pbc-lite0"))
    visitor = _page("pages/6_Adapt.py").run()
    visitor.get("file_uploader")[0].set_value(
        ("lab.zip", _zip_of_labelled_cells(), "application/zip"))
    visitor.number_input(key="adapt_per_class").set_value(3)
    visitor.text_input(key="adapt_name").set_value("my-lab")
    visitor.run()
    visitor.button(key="adapt_run").click().run()
    assert not visitor.exception
    assert sorted(path.name for path in models.iterdir()) == ["other", "pbc-lite0"]
    options = visitor.sidebar.selectbox(key="model_name").options
    mine = next(option for option in options if option.startswith("my-lab"))
    download = [b for b in visitor.get("download_button") if b.proto.label.endswith("(.zip)")]
    assert len(download) == 1
    # A second model of that name would be a second "my-lab" in the sidebar.
    visitor.button(key="adapt_run").click().run()
    assert any("already exists" in error.value for error in visitor.error)
    visitor.sidebar.selectbox(key="model_name").set_value(mine).run()
    assert not visitor.exception
    assert any("it is the model in use now" in s.value for s in visitor.success)
    # Another visitor's sidebar lists the shared models only.
    other = _page("pages/1_Classify.py").run()
    assert not other.exception
    assert not any(o.startswith("my-lab") for o in other.sidebar.selectbox(key="model_name")
                   .options)


@pytest.mark.slow
def test_adapting_on_the_page_offers_the_new_model_in_the_sidebar(tmp_path, monkeypatch,
                                                                  local_server):
    models = tmp_path / "models"
    _linked_model(models / "pbc-lite0")
    monkeypatch.setenv("HEMATOVISION_MODELS", str(models))
    monkeypatch.setenv("HEMATOVISION_MODEL", str(models / "pbc-lite0"))
    at = _page("pages/6_Adapt.py").run()
    at.get("file_uploader")[0].set_value(("lab.zip", _zip_of_labelled_cells(),
                                          "application/zip"))
    at.number_input(key="adapt_per_class").set_value(3)
    at.text_input(key="adapt_name").set_value("my-lab")
    at.run()
    at.button(key="adapt_run").click().run()
    assert not at.exception
    assert any("Saved the adapted model as **my-lab**" in s.value for s in at.success)
    assert "my-lab" in at.sidebar.selectbox(key="model_name").options
    not_used = " ".join(m.value for m in at.markdown)
    assert "neutrophil/broken.png" in not_used  # named as in the zip, not a temporary file
    assert not any("in use" in s.value for s in at.success)
    at.sidebar.selectbox(key="model_name").set_value("my-lab").run()
    assert not at.exception
    assert any("**my-lab**; it is the model in use now" in s.value for s in at.success)


def test_atlas_says_where_its_examples_come_from_and_logs_what_it_shows(monkeypatch):
    from .conftest import KAGGLE

    at = _page("pages/5_Atlas.py").run()
    assert not at.exception
    assert any("held-out test split" in m.value for m in at.markdown)
    assert len(at.session_state["audit"]) >= 4  # the examples the model answered
    monkeypatch.setenv("HEMATOVISION_EXAMPLES", str(KAGGLE / "dataset2-master" / "images"
                                                    / "TEST"))
    at = _page("pages/5_Atlas.py").run()
    at.selectbox(key="atlas_class").set_value("neutrophil").run()
    assert not at.exception
    assert any("not the model's own test split" in m.value for m in at.markdown)


def test_the_audit_gallery_says_when_its_cells_are_not_in_the_folder(monkeypatch):
    from .conftest import ZHENG

    monkeypatch.setenv("HEMATOVISION_EXAMPLES", str(ZHENG / "images"))
    at = _page("pages/4_Model_Audit.py").run()
    assert not at.exception
    assert any("are not in" in i.value for i in at.info)


def test_adapting_on_a_zip_of_unreadable_cells_names_the_zip_not_a_temporary_folder(tmp_path):
    import io
    import zipfile

    from hematovision.adapt.adaptation import adapt_from_zip

    from .conftest import SHIPPED_MODEL

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("neutrophil/a.png", "lymphocyte/b.png"):
            archive.writestr(name, b"\x89PNG\r\n\x1a\n cut short")
    with pytest.raises(ValueError, match="the zip holds no readable images") as caught:
        adapt_from_zip(SHIPPED_MODEL, buffer.getvalue(), tmp_path / "out")
    assert "/tmp" not in str(caught.value)


def test_adapt_proposes_a_name_after_the_model_chosen_in_the_sidebar(tmp_path, monkeypatch):
    models = tmp_path / "models"
    _linked_model(models / "pbc-lite0")
    _linked_model(models / "mine", name="mine")
    monkeypatch.setenv("HEMATOVISION_MODELS", str(models))
    monkeypatch.setenv("HEMATOVISION_MODEL", str(models / "pbc-lite0"))
    at = _page("pages/6_Adapt.py").run()
    assert at.text_input(key="adapt_name").value == "pbc-lite0-adapted"
    at.sidebar.selectbox(key="model_name").set_value("mine").run()
    assert not at.exception
    # The old proposal saved an adapted "mine" under the name of the model it is not.
    assert at.text_input(key="adapt_name").value == "mine-adapted"
    at.text_input(key="adapt_name").set_value("my own name").run()
    assert at.text_input(key="adapt_name").value == "my own name"  # a typed name stays


def test_two_model_folders_of_one_name_are_told_apart_in_the_sidebar(tmp_path, monkeypatch):
    models = tmp_path / "models"
    other = _linked_model(models / "pbc-lite0", name="elsewhere")
    monkeypatch.setenv("HEMATOVISION_MODELS", str(models))
    monkeypatch.delenv("HEMATOVISION_MODEL", raising=False)
    at = _page("pages/1_Classify.py").run()
    options = at.sidebar.selectbox(key="model_name").options
    assert len(options) == len(set(options)) == 2
    at.sidebar.selectbox(key="model_name").set_value(options[1]).run()
    assert not at.exception
    assert at.session_state["model_dir"] == str(other)
    assert any("elsewhere" in c.value for c in at.sidebar.caption)


def test_audit_says_when_no_other_laboratory_was_measured(tmp_path, monkeypatch):
    model = _linked_model(tmp_path / "models" / "home-only", leave_out="evaluation_*.json")
    monkeypatch.setenv("HEMATOVISION_MODEL", str(model))
    at = _page("pages/4_Model_Audit.py").run()
    assert not at.exception
    assert any("not been measured on another laboratory" in i.value for i in at.info)
    assert not any("The drop below" in m.value for m in at.markdown)


def test_uploaded_cells_stay_through_a_visit_to_another_page_until_removed(pbc_examples):
    # Streamlit empties an uploader when its page is left; the cells must not go with it.
    files = [(path.name, path.read_bytes(), "image/jpeg") for path, _ in pbc_examples[:3]]
    at = _page("pages/1_Classify.py").run()
    at.file_uploader(key="uploads").set_value(files[:2]).run()
    assert not at.exception and len(at.session_state["classified"]) == 2
    at.switch_page("pages/2_Explain.py").run()
    at.switch_page("pages/1_Classify.py").run()
    assert not at.exception
    assert at.file_uploader(key="uploads").value == []
    assert len(at.session_state["classified"]) == 2
    assert any("kept here" in caption.value for caption in at.caption)
    # A new upload adds to them; taking it out again with × leaves the earlier two.
    at.file_uploader(key="uploads").set_value(files[2:]).run()
    assert len(at.session_state["classified"]) == 3
    assert len(at.get("image")) == 3 and _without_alt_text(at) == []
    at.file_uploader(key="uploads").set_value(None).run()
    assert len(at.session_state["classified"]) == 2
    at.button(key="forget_uploads").click().run()
    assert not at.exception and at.session_state["classified"] == {}
    assert at.info and "Upload one or more cell images" in at.info[0].value


def test_batch_lists_a_file_of_any_type_counts_white_cells_only_and_keeps_uploads(
        pbc_examples):
    platelet = next(path for path, label in pbc_examples if label == "platelet")
    files = [(path.name, path.read_bytes(), "image/jpeg") for path, _ in pbc_examples[:2]]
    files += [(platelet.name, platelet.read_bytes(), "image/jpeg"),
              ("notes.txt", b"a note, not a cell", "text/plain")]
    at = _page("pages/3_Batch.py").run()
    at.file_uploader(key="batch_uploads").set_value(files).run()
    at.button(key="run_batch").click().run()
    assert not at.exception
    assert len(at.get("image")) == 3 and _without_alt_text(at) == []  # the thumbnails
    table = at.dataframe[0].value
    assert list(table["file"]) == [name for name, _, _ in files]
    assert table.loc[table["file"] == "notes.txt", "status"].item() == "unreadable"
    assert [m.value for m in at.metric] == ["2"]  # the two basophils, not the platelet
    others = [m.value for m in at.markdown if m.value.startswith("Not white cells")]
    assert others == ["Not white cells, so not in the differential: 0 erythroblast, "
                      "1 platelet (50.0 per 100 white cells)."]
    at.switch_page("pages/1_Classify.py").run()
    at.switch_page("pages/3_Batch.py").run()
    at.button(key="run_batch").click().run()
    assert not at.exception and len(at.dataframe[0].value) == 4


@pytest.mark.slow
def test_the_small_grad_cam_views_cover_the_model_s_square_only(classifier, pbc_examples):
    # Over the whole picture a map ends at the edge of the model's square: a hard line that
    # the Atlas, quiz and audit gallery showed as if it were evidence.
    from dashboard.results import gradcam_view
    from dashboard.state import try_decode

    path, label = pbc_examples[0]
    cell = make_cell(path.name, path.read_bytes())
    image, _ = try_decode(cell)
    view = gradcam_view(classifier, cell.sha256, image, classifier.classes.index(label))
    assert image.shape[:2] != view.shape[:2] == (classifier.input_size, classifier.input_size)
