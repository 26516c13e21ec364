"""Train (stub until its issue lands): shows what exists, does not pretend to train."""

import streamlit as st

from pages._ui import show_prepared_datasets, show_runs

st.title("Train")
st.markdown("Fine-tuning starts from a pretrained model (default `builtin:minilm`), adds a classification head "
            "for your labels, and trains it on the train split while watching the validation split.")
st.subheader("Prepared datasets")
show_prepared_datasets()
show_runs()
st.info("Training from the dashboard arrives in a later version of bmcore studio.")
