"""Streamlit glue shared by the pages: cached loading, session state, the sidebar.

Kept apart from ``hematovision`` so that the package never imports Streamlit; kept apart
from the pages so that each page reads as layout only.
"""
