"""Cached resources and per-session state."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from hematovision.classifier import Classifier, ModelFileError
from hematovision.images import IMAGE_SUFFIXES, ImageError, ImageLimits, read_image
from hematovision.models import available_models, default_model_dir

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLES = ROOT.parent / "shared" / "datasets" / "pbc"
LIMITS = ImageLimits(
    max_bytes=int(float(os.environ.get("HEMATOVISION_MAX_UPLOAD_MB", "20")) * 1024 * 1024),
    max_pixels=int(os.environ.get("HEMATOVISION_MAX_PIXELS", "40000000")),
)
# The uploaders take what the command line takes from a folder: a textbook figure saved
# from the web is often WebP or GIF.
IMAGE_TYPES = [suffix.lstrip(".") for suffix in IMAGE_SUFFIXES]


@dataclass(frozen=True)
class Cell:
    """One image the user brought: its name, bytes and content hash (never written to disk)."""

    name: str
    data: bytes
    sha256: str


@st.cache_resource(show_spinner="Loading the model…")
def load_classifier(model_dir: str) -> Classifier:
    """One classifier per model folder per server process, shared by all sessions."""
    return Classifier(model_dir)


@st.cache_resource(show_spinner=False)
def warm_up_explanations(model_dir: str, _classifier: Classifier) -> threading.Thread:
    """Once per model and process, after the first result is on screen: run Grad-CAM and
    LIME/SHAP's batch interpreter once in the background (no TensorFlow: both run on the
    fast runtime), so the first Explain page is quick without slowing the first
    classification down."""
    thread = threading.Thread(target=_warm_up, args=(_classifier,), daemon=True)
    thread.start()
    return thread


def _warm_up(classifier: Classifier) -> None:
    from hematovision.explainers import explain

    blank = np.full((64, 64, 3), 200, np.uint8)
    explain("gradcam", blank, classifier, 0)
    explain("shap", blank, classifier, 0, evaluations=50)


def model_choices() -> list[Path]:
    """The models the sidebar offers, the default first ($HEMATOVISION_MODEL or the shipped
    one): whoever set it, or opens the dashboard for the first time, gets that model."""
    default = default_model_dir()
    others = [path for path in available_models() if path.resolve() != default.resolve()]
    return [default, *others]


def current_classifier() -> Classifier:
    """The model chosen in the sidebar; stops the page with an error if it cannot load."""
    choice = st.session_state.get("model_dir") or str(default_model_dir())
    try:
        return load_classifier(choice)
    except ModelFileError as error:
        st.error(f"The model could not be loaded: {error}")
        st.stop()


def examples_folder() -> Path | None:
    folder = Path(os.environ.get("HEMATOVISION_EXAMPLES", DEFAULT_EXAMPLES))
    return folder if folder.is_dir() else None


def make_cell(name: str, data: bytes) -> Cell:
    return Cell(name, data, hashlib.sha256(data).hexdigest())


def _identities(cells: list[Cell]) -> set[tuple[str, str]]:
    return {(cell.name, cell.sha256) for cell in cells}


def _take_in_uploads(key: str) -> None:
    """``on_change`` of the uploader ``key``: keep what the user added, drop what they
    took out with the uploader's ×."""
    now = [make_cell(f.name, f.getvalue()) for f in st.session_state.get(key) or []]
    removed = _identities(st.session_state.get(f"{key}.seen", [])) - _identities(now)
    kept = [c for c in st.session_state.get(f"{key}.kept", [])
            if (c.name, c.sha256) not in removed]
    held = _identities(kept)
    st.session_state[f"{key}.kept"] = kept + [c for c in now if (c.name, c.sha256) not in held]
    st.session_state[f"{key}.seen"] = now


def remembered_uploads(label: str, key: str, note: Callable[[list[Cell]], str],
                       **options) -> list[Cell]:
    """A multiple-file uploader whose cells outlive a visit to another page; returns them.

    Streamlit empties an uploader whenever the user opens another page; a teacher going
    back and forth between Classify and Explain would lose the cells. They are kept in the
    session instead, and leave it only when the user removes them: with the uploader's ×,
    or, once the uploader no longer shows them, with a "Remove them" button beside
    ``note(kept cells)``.
    """
    st.file_uploader(label, accept_multiple_files=True, key=key, on_change=_take_in_uploads,
                     args=(key,), **options)
    if not st.session_state.get(key):
        # Emptied by leaving the page: what × removes from now on is only what the user
        # uploads again.
        st.session_state[f"{key}.seen"] = []
    kept = st.session_state.get(f"{key}.kept", [])
    shown = _identities(st.session_state.get(f"{key}.seen", []))
    if any((cell.name, cell.sha256) not in shown for cell in kept):
        note_column, button_column = st.columns([4, 1])
        note_column.caption(note(kept))
        if button_column.button("Remove them", key=f"forget_{key}"):
            st.session_state[f"{key}.kept"] = [c for c in kept
                                               if (c.name, c.sha256) in shown]
            st.rerun()
    return kept


def distinct_cells(cells: list[Cell]) -> tuple[list[Cell], list[tuple[Cell, Cell]]]:
    """Each image once, by content, and ``(copy, original)`` for the ones left out: a page
    keys its widgets by content hash, and the same cell twice is one cell."""
    first: dict[str, Cell] = {}
    copies = []
    for cell in cells:
        if cell.sha256 in first:
            copies.append((cell, first[cell.sha256]))
        else:
            first[cell.sha256] = cell
    return list(first.values()), copies


@st.cache_data(max_entries=512, show_spinner=False)
def decode(data: bytes, name: str) -> np.ndarray:
    """Decode once per content; raises ImageError for bad files (errors are not cached)."""
    return read_image(data, name=name, limits=LIMITS)


def try_decode(cell: Cell) -> tuple[np.ndarray | None, str | None]:
    try:
        return decode(cell.data, cell.name), None
    except ImageError as error:
        return None, str(error)
