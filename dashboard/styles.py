"""The few places where Streamlit's own layout gets in the way, fixed with a line of CSS
each. A style-only ``st.html`` takes no room on the page."""

from __future__ import annotations

import streamlit as st

__all__ = ["show_every_upload_chip", "thumbnail_captions", "THUMBNAIL_COLUMNS"]

# Streamlit's uploader keeps its file chips in a box 106 px high that scrolls: two and a
# half rows, so the 11th file's chip was cut in half at the box's edge. The box now grows
# to show every chip up to 60 % of the window, then scrolls.
_UPLOAD_CHIPS = ('<style>[data-testid="stFileChips"] { max-height: 60vh !important; }</style>')

# Thumbnail captions: the file name on its own line and never broken inside it (8 columns
# broke "BA_186830.jpg" into "BA_186830.jp" / "g: basophil"); a name too long for its
# column ends in "…" (the whole name is in the image's alt text and in the table).
_CAPTIONS = ('<style>.st-key-{key} [data-testid="stImageCaption"] {{ white-space: pre; '
             'overflow: hidden; text-overflow: ellipsis; font-size: 0.8rem; }}</style>')

# At 1,280 px wide a column then holds "erythroblast 100.0 %" on one line.
THUMBNAIL_COLUMNS = 5


def show_every_upload_chip() -> None:
    """Let every uploader on the page show its file chips whole (call once per page)."""
    st.html(_UPLOAD_CHIPS)


def thumbnail_captions(key: str) -> None:
    """Captions of the images inside ``st.container(key=key)`` one line per ``\\n``,
    unbroken; see :data:`THUMBNAIL_COLUMNS`."""
    st.html(_CAPTIONS.format(key=key))
