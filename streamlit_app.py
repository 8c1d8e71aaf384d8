"""HematoVision dashboard: `streamlit run streamlit_app.py`."""

import streamlit as st

st.set_page_config(page_title="HematoVision", page_icon="🩸", layout="wide")
navigation = st.navigation([
    st.Page("pages/0_Home.py", title="Home", icon="🩸", default=True),
    st.Page("pages/1_Classify.py", title="Classify", icon="🔬"),
    st.Page("pages/2_Explain.py", title="Explain", icon="🗺️"),
    st.Page("pages/3_Batch.py", title="Batch", icon="🧮"),
    st.Page("pages/4_Model_Audit.py", title="Model audit", icon="🔎"),
    st.Page("pages/5_Atlas.py", title="Atlas and quiz", icon="📖"),
])
navigation.run()
