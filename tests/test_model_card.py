"""The model card fails closed and is written in one step."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import fields, replace

import pytest

from hematovision.errors import CardError, HematoVisionError, MissingFileError
from hematovision.io.files import write_json_atomic
from hematovision.model.card import (
    CARD_FILE,
    CARD_MARKDOWN,
    ModelConfig,
    ModelResults,
    load_card,
    save_card,
)
from hematovision.model.card_markdown import render_markdown

from .conftest import SHIPPED_MODEL


def _shipped() -> dict:
    return json.loads((SHIPPED_MODEL / CARD_FILE).read_text())


def _flat(raw: dict) -> dict:
    """A card as versions before the split wrote it: every field at the top level."""
    return {"name": raw["name"], **raw["config"], **raw["results"],
            **{key: raw[key] for key in ("intended_use", "out_of_scope", "limitations")}}


def test_the_shipped_card_is_in_two_parts_whose_keys_are_all_fields():
    raw = _shipped()
    assert set(raw) == {"name", "config", "results", "intended_use", "out_of_scope",
                        "limitations"}
    assert set(raw["config"]) <= {f.name for f in fields(ModelConfig)}
    assert set(raw["results"]) <= {f.name for f in fields(ModelResults)}
    card = load_card(SHIPPED_MODEL)
    assert card.config.familiarity_file  # the Unfamiliar checks are on for the shipped model
    assert card.results.metrics["n"] > 0


GONE = object()


def _edited(part: str, **changes) -> Callable[[dict], dict]:
    """The card with ``changes`` made in ``part`` ("" for the top level); a key set to
    ``GONE`` is removed."""
    def change(raw: dict) -> dict:
        where = raw[part] if part else raw
        for key, value in changes.items():
            where[key] = value
            if value is GONE:
                del where[key]
        return raw
    return change


def _renamed(part: str, old: str, new: str) -> Callable[[dict], dict]:
    def change(raw: dict) -> dict:
        where = raw[part] if part else raw
        where[new] = where.pop(old)
        return raw
    return change


def _moved(key: str, source: str, target: str) -> Callable[[dict], dict]:
    def change(raw: dict) -> dict:
        raw[target][key] = raw[source].pop(key)
        return raw
    return change


@pytest.mark.parametrize("change, named", [
    # A misspelt key once switched the Unfamiliar checks off without a word.
    (_renamed("config", "familiarity_file", "familiarity_fle"),
     ["'config.familiarity_fle'", "did you mean 'config.familiarity_file'"]),
    (_edited("results", notes="mine"), ["'results.notes'", "results holds only: training"]),
    (_edited("", colour=1), ["'colour'", "a card holds only: name"]),
    # A key in the wrong part is shown where it belongs.
    (_moved("metrics", "results", "config"),
     ["'config.metrics'", "did you mean 'results.metrics'"]),
    (_moved("temperature", "config", "results"),
     ["'results.temperature'", "did you mean 'config.temperature'"]),
    (_edited("config", classes=GONE), ["lacks the required key 'config.classes'"]),
    (_edited("config", temperature=GONE), ["'config.temperature'"]),
    (_edited("", name=GONE), ["lacks the required key 'name'"]),
    (_edited("", config=GONE), ["'config.classes'", "'config.temperature'"]),
    (_edited("config", input_size="224"), ["config.input_size has the wrong type"]),
    (_edited("config", review_threshold=1.5), ["config.review_threshold"]),
    (_edited("config", framing="smear"), ["config.framing"]),
    (_edited("config", classes=[]), ["config.classes"]),
    (_edited("results", metrics="good"), ["results.metrics has the wrong type"]),
    (_edited("config", familiarity_file=None), ["config.familiarity_file has the wrong type"]),
    # One string is not a list of limitations (it would read as one per letter).
    (_edited("", limitations="not validated"), ["limitations has the wrong type"]),
    (_edited("", config=["classes"]), ["config must be a JSON object"]),
    (_edited("", results="good"), ["results must be a JSON object"]),
    (lambda raw: ["not", "a", "card"], ["not a JSON object"]),
], ids=["misspelt", "unknown-result", "unknown-top", "result-in-config", "config-in-results",
        "no-classes", "no-temperature", "no-name", "no-config", "input-size-text",
        "threshold-above-one", "framing", "no-class-names", "metrics-text", "file-null",
        "limitations-text", "config-list", "results-text", "list"])
def test_a_card_with_an_unknown_missing_or_bad_key_is_refused_by_name(tmp_path, change, named):
    (tmp_path / CARD_FILE).write_text(json.dumps(change(_shipped())))
    with pytest.raises(CardError) as caught:
        load_card(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / CARD_FILE) in message
    for part in named:
        assert part in message
    assert isinstance(caught.value, ValueError)  # callers that caught ValueError still do


def test_a_card_of_an_earlier_version_reads_as_before(tmp_path):
    """A model trained before the split keeps working: its flat card is sorted into the
    parts, and the next save writes the split layout."""
    (tmp_path / CARD_FILE).write_text(json.dumps(_flat(_shipped())))
    card = load_card(tmp_path)
    assert card == load_card(SHIPPED_MODEL)
    assert render_markdown(card) == (SHIPPED_MODEL / CARD_MARKDOWN).read_text()
    save_card(tmp_path, card.with_results(foreign={}))
    assert set(json.loads((tmp_path / CARD_FILE).read_text())) == set(_shipped())


@pytest.mark.parametrize("change, named", [
    (lambda raw: {**raw, "familiarity_fle": raw.pop("familiarity_file")},
     ["'familiarity_fle'", "did you mean 'familiarity_file'"]),
    (lambda raw: {key: value for key, value in raw.items() if key != "classes"},
     ["lacks the required key 'classes'"]),
    (lambda raw: {**raw, "input_size": "224"}, ["input_size has the wrong type"]),
], ids=["misspelt", "no-classes", "input-size-text"])
def test_a_card_of_an_earlier_version_still_fails_closed(tmp_path, change, named):
    (tmp_path / CARD_FILE).write_text(json.dumps(change(_flat(_shipped()))))
    with pytest.raises(CardError) as caught:
        load_card(tmp_path)
    for part in [str(tmp_path / CARD_FILE), *named]:
        assert part in str(caught.value)


def test_one_adaptation_study_of_an_older_card_reads_as_one_depth(tmp_path):
    raw = _flat(_shipped())
    raw["adaptation"] = raw["adaptation"]["last-layer"]  # as cards held it before depths
    (tmp_path / CARD_FILE).write_text(json.dumps(raw))
    assert load_card(tmp_path).results.adaptation == {"last-layer": raw["adaptation"]}


def test_a_changed_copy_leaves_the_card_it_came_from_alone():
    card = load_card(SHIPPED_MODEL)
    warmer = card.with_config(temperature=2.0).with_results(foreign={})
    assert (warmer.config.temperature, warmer.results.foreign) == (2.0, {})
    assert warmer.config.classes == card.config.classes and warmer.name == card.name
    assert card.config.temperature != 2.0 and card.results.foreign
    with pytest.raises(ValueError, match="temperature"):
        card.with_config(temperature=0.0)


@pytest.mark.parametrize("write, error", [
    (None, MissingFileError),
    ("{ not json", CardError),
])
def test_a_missing_or_unreadable_card_is_an_error_of_the_family(tmp_path, write, error):
    if write is not None:
        (tmp_path / CARD_FILE).write_text(write)
    with pytest.raises(error) as caught:
        load_card(tmp_path)
    assert isinstance(caught.value, HematoVisionError)
    assert CARD_FILE in str(caught.value)
    if error is MissingFileError:
        assert isinstance(caught.value, FileNotFoundError)


def test_a_saved_card_loads_as_it_was_and_is_rendered_beside_it(tmp_path):
    card = replace(load_card(SHIPPED_MODEL), name="copy")
    save_card(tmp_path, card)
    assert load_card(tmp_path) == card
    assert (tmp_path / CARD_MARKDOWN).read_text() == render_markdown(card)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CARD_FILE, CARD_MARKDOWN])


@pytest.mark.parametrize("model", ["pbc-lite0", "multi-lite0"])
def test_a_shipped_card_saved_again_is_the_same_file(tmp_path, model):
    shipped = SHIPPED_MODEL.parent / model
    save_card(tmp_path, load_card(shipped))
    for name in (CARD_FILE, CARD_MARKDOWN):
        assert (tmp_path / name).read_text() == (shipped / name).read_text(), name


def test_a_write_cut_short_leaves_the_old_card_whole(tmp_path, monkeypatch):
    save_card(tmp_path, load_card(SHIPPED_MODEL))
    before = (tmp_path / CARD_FILE).read_bytes()

    def crash(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_card(tmp_path, replace(load_card(SHIPPED_MODEL), name="half"))
    assert (tmp_path / CARD_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CARD_FILE, CARD_MARKDOWN])


def test_an_atomic_write_keeps_the_file_s_mode(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a server under another user
    os.chmod(path, 0o600)
    write_json_atomic(path, {"a": 2})
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"a": 2}
