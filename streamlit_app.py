"""HematoVision dashboard: `streamlit run streamlit_app.py`.

The pages live in pages/; they are listed here so that the sidebar names the first one
"Home" rather than after this file."""

import streamlit as st

PAGES = [
    st.Page("pages/0_Home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Classify.py", title="Classify", icon=":material/biotech:"),
    st.Page("pages/2_Explain.py", title="Explain", icon=":material/map:"),
    st.Page("pages/3_Batch.py", title="Batch", icon=":material/table_chart:"),
    st.Page("pages/4_Model_Audit.py", title="Model audit", icon=":material/fact_check:"),
    st.Page("pages/5_Atlas.py", title="Atlas and quiz", icon=":material/menu_book:"),
    st.Page("pages/6_Adapt.py", title="Adapt to your lab", icon=":material/tune:"),
]
st.navigation(PAGES).run()
