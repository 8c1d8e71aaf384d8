"""Streamlit glue shared by the pages: cached loading, session state, the sidebar.

Kept apart from ``hematovision`` so that the package never imports Streamlit; kept apart
from the pages so that each page reads as layout only.
"""

import atexit
import gc

# A prompt stop. Once a page has run, the server holds about 200,000 objects from
# TensorFlow, Keras and SHAP; on SIGTERM Streamlit stops in well under a second, but then
# Python's last garbage collections at exit walk all of them again and again while the
# modules are torn down: 3–13 s on a busy two-core machine. Frozen objects are skipped,
# and the operating system takes the memory back when the process ends anyway.
atexit.register(gc.freeze)
