"""Evaluate (stub until its issue lands): shows what exists, does not pretend to evaluate."""

import streamlit as st

from pages._ui import show_prepared_datasets, show_runs

st.title("Evaluate")
st.markdown("Evaluation scores a trained model once on the locked test split: accuracy, per-class precision "
            "and recall, the confusion matrix, and the examples it gets wrong.")
show_runs()
st.subheader("Prepared datasets")
show_prepared_datasets()
st.info("Evaluation from the dashboard arrives in a later version of bmcore studio.")
