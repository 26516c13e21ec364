"""Data: pick a source, map its columns, split it, look at its stats, and save it to the workspace."""

import plotly.express as px
import streamlit as st

from bmcore import data as bdata
from bmcore.display import md, plot_texts
from bmcore.errors import BmcoreError
from bmcore.models import DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MODEL, hub_offline, hub_reachable
from pages._quality import show_label_quality
from pages._ui import require_frame, show_prepared_datasets, tokenizer

require_frame("pages/data.py")

SOURCES = ("Built-in: BBC News", "Upload a file", "Local file or folder", "Hugging Face Hub")
NONE = "(none)"


@st.cache_data(show_spinner="Reading the source...", max_entries=8)
def load(source: str, fingerprint: str, _data: bytes | None) -> bdata.RawData:
    # Uploaded bytes are keyed by their hash (fingerprint), so they are not hashed twice.
    return bdata.load_source(source, data=_data)


@st.cache_data(show_spinner="Preparing the splits and counting tokens...", max_entries=8)
def prepare(source: str, fingerprint: str, _data: bytes | None, text: tuple[str, ...], label: str,
            use_source_splits: bool, ratios: tuple[float, float, float], seed: int, max_seq_length: int,
            tokenizer_ref: str) -> bdata.PreparedDataset:
    ds = bdata.prepare(load(source, fingerprint, _data), columns=bdata.Columns(list(text), label),
                       use_source_splits=use_source_splits, ratios=ratios, seed=seed)
    bdata.compute_stats(ds, tokenizer(tokenizer_ref), max_seq_length, tokenizer_name=tokenizer_ref)
    return ds


def fail(exc: Exception) -> None:
    st.error(md(exc))
    st.stop()


st.title("Data")
st.markdown(
    "A classifier learns from texts paired with **labels** (the class names). The rows are split three ways: "
    "**train** to learn from, **validation** to tune on, and **test**, locked away and scored once at the end, "
    "so the final score is honest. Models read **tokens** (word pieces), and texts longer than "
    "`max_seq_length` tokens are cut off (truncated)."
)
show_label_quality()

# --- source -------------------------------------------------------------------------------
kind = st.radio("Source", SOURCES, horizontal=True, key="data_source_kind")
data: bytes | None = None
if kind == SOURCES[0]:
    source = bdata.DEFAULT_DATASET
    st.caption("2,225 BBC News articles in 5 topics (business, entertainment, politics, sports, tech), bundled offline.")
elif kind == SOURCES[1]:
    upload = st.file_uploader("CSV, TSV, JSON, JSONL, Parquet or Excel", key="data_upload",
                              type=["csv", "tsv", "txt", "json", "jsonl", "ndjson", "parquet", "pq", "xlsx", "xls"])
    if upload is None:
        st.stop()
    source, data = upload.name, upload.getvalue()
elif kind == SOURCES[2]:
    source = st.text_input("Path to a file, or to a folder with train / validation (val, dev) / test files",
                           key="data_path", placeholder="../shared/data/sst2").strip()
    if not source:
        st.stop()
else:
    if hub_offline() or not hub_reachable():
        st.warning("Offline: the Hugging Face Hub cannot be reached from this machine, so Hub datasets are unavailable. "
                   "Use the built-in BBC News set, upload a file, or give a local path.")
        st.stop()
    hub_name = st.text_input("Hub dataset, as NAME or NAME:CONFIG", key="data_hub", placeholder="glue:sst2").strip()
    if not hub_name:
        st.stop()
    source = hub_name if hub_name.startswith("hub:") else f"hub:{hub_name}"

try:
    fingerprint = bdata.source_fingerprint(source, data)
    raw = load(source, fingerprint, data)
except BmcoreError as exc:
    fail(exc)
for note in raw.notes:
    st.caption(md(note))

# --- preview and columns ------------------------------------------------------------------
st.subheader("Preview")
first = next(iter(raw.frames.values()))
st.caption("Rows per file: " + ", ".join(f"{s} {len(df):,}" for s, df in raw.frames.items()))
st.dataframe(first.head(50), hide_index=True, height=240)

columns = [str(c) for c in first.columns]
try:
    guess = bdata.detect_columns(first)
except BmcoreError as exc:
    st.error(md(exc))  # the columns can still be chosen by hand below
    guess = None
key = fingerprint[:8] or bdata.suggest_name(source)  # new source, new widgets, so the detected choice is preselected again
c1, c2, c3 = st.columns(3)
text_col = c1.selectbox("Text column", columns, key=f"data_text_{key}",
                        index=columns.index(guess.text[0]) if guess else None)
pair_options = [NONE, *columns]
pair_col = c2.selectbox("Second text column (text pairs only)", pair_options, key=f"data_pair_{key}",
                        index=pair_options.index(guess.text[1]) if guess and len(guess.text) == 2 else 0)
label_col = c3.selectbox("Label column", columns, key=f"data_label_{key}",
                         index=columns.index(guess.label) if guess else None)
if text_col is None or label_col is None:
    st.info("Choose the text and label columns.")
    st.stop()
text_cols = (text_col,) if pair_col == NONE else (text_col, pair_col)

# --- splits and tokens --------------------------------------------------------------------
st.subheader("Splits and tokens")
c1, c2, c3, c4 = st.columns(4)
if raw.has_splits:
    use_source_splits = c1.toggle("Use the source's own splits", value=True, key="data_use_source_splits",
                                  help="Missing validation or test splits are carved out of train.")
else:
    use_source_splits = True  # nothing to use: every row is split anew
    c1.caption("The source has no splits of its own: new stratified ones are made.")
val_pct = c2.number_input("Validation %", 1, 45, 10, key="data_val_pct")
test_pct = c3.number_input("Test %", 1, 45, 10, key="data_test_pct")
seed = c4.number_input("Seed", 0, 2**31 - 1, 42, key="data_seed")
c1, c2 = st.columns(2)
max_seq_length = c1.number_input("max_seq_length (tokens)", 8, 8192, DEFAULT_MAX_SEQ_LENGTH, step=32, key="data_max_seq_length")
tokenizer_ref = c2.text_input("Tokenizer (model reference)", DEFAULT_MODEL, key="data_tokenizer").strip() or DEFAULT_MODEL
ratios = ((100 - val_pct - test_pct) / 100, val_pct / 100, test_pct / 100)

try:
    ds = prepare(source, fingerprint, data, text_cols, label_col, use_source_splits, ratios, int(seed),
                 int(max_seq_length), tokenizer_ref)
except BmcoreError as exc:
    fail(exc)
stats = ds.stats
for note in ds.notes:
    st.caption(md(note))

# --- stats --------------------------------------------------------------------------------
st.subheader("Stats")
m = st.columns(6)
m[0].metric("Rows", f"{stats['rows_total']:,}")
m[1].metric("Classes", stats["num_classes"])
for col, split in zip(m[2:5], bdata.SPLITS, strict=True):
    col.metric(split.capitalize(), f"{stats['rows'][split]:,}")
m[5].metric("Truncated", f"{stats['truncated_share']:.1%}", help=f"texts longer than {stats['max_seq_length']} tokens")

c1, c2 = st.columns(2)
balance = px.bar(bdata.class_balance_frame(stats).assign(label=lambda f: plot_texts(f["label"])), x="label", y="count", color="split", barmode="group",
                 title="Class balance per split")
c1.plotly_chart(balance, key="data_balance_chart")
lengths = px.histogram(bdata.token_length_frame(ds).assign(label=lambda f: plot_texts(f["label"])), x="n_tokens", color="label", barmode="overlay", opacity=0.6,
                       nbins=60, title=f"Token lengths per class: {stats['truncated_share']:.1%} truncated at "
                                       f"max_seq_length {stats['max_seq_length']}")
lengths.add_vline(x=stats["max_seq_length"], line_dash="dash", annotation_text="max_seq_length")
lengths.update_xaxes(range=[0, bdata.length_axis_max(stats)])  # a few very long texts would squash the rest
c2.plotly_chart(lengths, key="data_lengths_chart")

for warning in bdata.warnings_for(stats):
    st.warning(md(warning))
with st.expander(f"Suggested class weights (imbalance {stats['imbalance_ratio']}:1)"):
    st.dataframe(bdata.class_weights_frame(stats), hide_index=True)

# --- save ---------------------------------------------------------------------------------
st.subheader("Save to the workspace")
name = st.text_input("Name", bdata.suggest_name(source), key=f"data_name_{key}").strip()
if bdata.is_prepared(name):
    st.caption(md(f"A dataset named {name!r} exists; saving replaces it."))
if st.button("Save", type="primary", key="data_save"):
    try:
        ds.name = name
        path = bdata.save_prepared(ds)
    except BmcoreError as exc:
        fail(exc)
    st.success(md(f"Saved {name!r} to {path}"))
st.caption("The same from the command line:")
st.code(bdata.prepare_command(source, name or "NAME", text_columns=list(text_cols), label_column=label_col,
                              use_source_splits=use_source_splits, ratios=ratios, seed=int(seed),
                              max_seq_length=int(max_seq_length), tokenizer=tokenizer_ref), language="bash")

st.subheader("Datasets in the workspace")
show_prepared_datasets()
