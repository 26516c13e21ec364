"""Playground (stub until its issue lands): shows what exists, does not pretend to predict."""

import streamlit as st

from pages._ui import show_runs

st.title("Playground")
st.markdown("The playground runs a trained model on text you type and shows the class probabilities "
            "and which tokens pushed the prediction.")
show_runs()
st.info("The playground arrives in a later version of bmcore studio.")
