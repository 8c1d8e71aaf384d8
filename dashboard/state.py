"""Cached resources and per-session state."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from dashboard.styles import show_every_upload_chip
from hematovision.errors import HematoVisionError
from hematovision.io.data_home import datasets_dir
from hematovision.io.folders import FolderLimits
from hematovision.io.images import IMAGE_SUFFIXES, ImageError, ImageLimits, read_image
from hematovision.model.classifier import Classifier
from hematovision.model.store import available_models, default_model_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SETS = ("pbc", "raabin_wbc")
LIMITS = ImageLimits(
    max_bytes=int(float(os.environ.get("HEMATOVISION_MAX_UPLOAD_MB", "20")) * 1024 * 1024),
    max_pixels=int(os.environ.get("HEMATOVISION_MAX_PIXELS", "40000000")),
)
# A folder typed on Batch (local mode only) is read into memory: a typo of "/" must stop.
FOLDER_LIMITS = FolderLimits(
    max_files=int(os.environ.get("HEMATOVISION_MAX_FOLDER_FILES", "10000")),
    max_bytes=int(float(os.environ.get("HEMATOVISION_MAX_FOLDER_MB", "2000")) * 1024 * 1024),
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
    from hematovision.explain import explain
    from hematovision.explain.overlay import COLORMAPS, colour_scale

    blank = np.full((64, 64, 3), 200, np.uint8)
    explain("gradcam", blank, classifier, 0)
    # The Explain page's first Grad-CAM also builds matplotlib's colormap (its import and
    # table): from the page's title to that map, 1.76 s on the first cell after launch
    # before, 0.21 s with the colormap made here (benchmarks/explain_browser.py, one run
    # each, load ≈ 5; docs/speed.md).
    colour_scale(COLORMAPS[0])
    explain("shap", blank, classifier, 0, evaluations=50)


def local_mode() -> bool:
    """Whether the server runs for one user on their own computer (``HEMATOVISION_LOCAL=1``).

    Only then may a page read a folder the visitor types, or save a model where every
    visitor's sidebar lists it. Off by default: a shared server works from uploads alone,
    as ``st.file_uploader`` hands the app bytes, never a path on the server.
    """
    return os.environ.get("HEMATOVISION_LOCAL", "").strip().lower() in ("1", "true", "yes")


def model_choices() -> list[Path]:
    """The models the sidebar offers, the default first ($HEMATOVISION_MODEL or the shipped
    one): whoever set it, or opens the dashboard for the first time, gets that model. This
    session's own models (adapted on a shared server) come last; no other session sees
    them."""
    default = default_model_dir()
    others = [path for path in available_models() if path.resolve() != default.resolve()]
    return [default, *others, *own_models()]


def new_own_model_folder(name: str) -> Path:
    """A folder, private to this session, for a model only this visitor will see.

    It lives in a temporary folder that is removed when the session ends (the session
    holds the only reference to it).
    """
    holder = tempfile.TemporaryDirectory(prefix="hematovision-session-model-")
    st.session_state.setdefault("own_model_holders", []).append(holder)
    return Path(holder.name) / name


def keep_own_model(model_dir: Path) -> None:
    """Offer ``model_dir`` (made in :func:`new_own_model_folder`) in this session's sidebar."""
    st.session_state.setdefault("own_models", {})[str(model_dir)] = None


def own_models() -> list[Path]:
    return [Path(path) for path in st.session_state.get("own_models", {})]


def _own_classifier(model_dir: str) -> Classifier:
    """A model of this session's own, loaded once per session, not in the shared cache:
    a server-wide cache would keep every visitor's model for the life of the process."""
    kept = st.session_state["own_models"]
    if kept[model_dir] is None:
        kept[model_dir] = Classifier(model_dir)
    return kept[model_dir]


def current_classifier() -> Classifier:
    """The model chosen in the sidebar; stops the page with an error if it cannot load."""
    choice = st.session_state.get("model_dir") or str(default_model_dir())
    try:
        if choice in st.session_state.get("own_models", {}):
            return _own_classifier(choice)
        return load_classifier(choice)
    except HematoVisionError as error:  # a damaged model file or card
        st.error(f"The model could not be loaded: {error}")
        st.stop()


def examples_folders() -> list[Path]:
    """The dataset folders example cells come from: ``$HEMATOVISION_EXAMPLES`` (folders
    separated by ``os.pathsep``), else PBC and Raabin-WBC in the datasets folder
    (:func:`hematovision.io.data_home.datasets_dir`)."""
    setting = os.environ.get("HEMATOVISION_EXAMPLES")
    folders = ([Path(part) for part in setting.split(os.pathsep) if part] if setting
               else [datasets_dir() / name for name in EXAMPLE_SETS])
    return [folder for folder in folders if folder.is_dir()]


def examples_folder() -> Path | None:
    """The first examples folder: the one the model's own test results come from."""
    folders = examples_folders()
    return folders[0] if folders else None


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
    show_every_upload_chip()
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
