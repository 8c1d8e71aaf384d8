"""The naive dashboard the startup benchmark compares against: TensorFlow imported at
start, the Keras model loaded on first use, ``model.predict`` per upload."""

import os

import numpy as np
import plotly.express as px
import streamlit as st
from PIL import Image

st.title("Classify cells")


@st.cache_resource
def load():
    import keras

    from hematovision.model.card import load_card

    folder = os.environ["HEMATOVISION_MODEL"]
    return keras.saving.load_model(os.path.join(folder, "model.keras")), load_card(folder)


upload = st.file_uploader("Cell image", key="uploads")
if upload is not None:
    model, card = load()
    image = Image.open(upload).convert("RGB").resize((224, 224))
    probabilities = model.predict(np.asarray(image, np.float32)[None], verbose=0)[0]
    label = card.config.classes[int(np.argmax(probabilities))]
    st.subheader(f"{label} — {100 * probabilities.max():.1f} %")
    st.plotly_chart(px.bar(x=probabilities, y=list(card.config.classes), orientation="h"))
