"""The model card fails closed and is written in one step."""

from __future__ import annotations

import json
import os
from dataclasses import fields, replace

import pytest

from hematovision.errors import CardError, HematoVisionError, MissingFileError
from hematovision.io.files import write_json_atomic
from hematovision.model.card import CARD_FILE, CARD_MARKDOWN, ModelCard, load_card, save_card
from hematovision.model.card_markdown import render_markdown

from .conftest import SHIPPED_MODEL


def _shipped() -> dict:
    return json.loads((SHIPPED_MODEL / CARD_FILE).read_text())


def test_every_key_of_the_shipped_card_is_a_field_and_it_loads():
    known = {f.name for f in fields(ModelCard)}
    assert set(_shipped()) <= known
    card = load_card(SHIPPED_MODEL)
    assert card.familiarity_file  # the Unfamiliar checks are on for the shipped model


def _without(key: str) -> dict:
    raw = _shipped()
    del raw[key]
    return raw


@pytest.mark.parametrize("change, named", [
    # A misspelt key once switched the Unfamiliar checks off without a word.
    (lambda raw: {**raw, "familiarity_fle": raw.pop("familiarity_file")},
     ["'familiarity_fle'", "did you mean 'familiarity_file'"]),
    (lambda raw: {**raw, "notes": "mine", "colour": 1}, ["'notes'", "'colour'"]),
    (lambda raw: _without("classes"), ["lacks the required key 'classes'"]),
    (lambda raw: _without("temperature"), ["'temperature'"]),
    (lambda raw: {**raw, "input_size": "224"}, ["input_size"]),
    (lambda raw: {**raw, "review_threshold": 1.5}, ["review_threshold"]),
    (lambda raw: {**raw, "metrics": "good"}, ["metrics has the wrong type"]),
    (lambda raw: {**raw, "familiarity_file": None}, ["familiarity_file has the wrong type"]),
    # One string is not a list of limitations (it would read as one per letter).
    (lambda raw: {**raw, "limitations": "not validated"}, ["limitations"]),
    (lambda raw: ["not", "a", "card"], ["not a JSON object"]),
])
def test_a_card_with_an_unknown_missing_or_bad_key_is_refused_by_name(tmp_path, change, named):
    (tmp_path / CARD_FILE).write_text(json.dumps(change(_shipped())))
    with pytest.raises(CardError) as caught:
        load_card(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / CARD_FILE) in message
    for part in named:
        assert part in message
    assert isinstance(caught.value, ValueError)  # callers that caught ValueError still do


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
