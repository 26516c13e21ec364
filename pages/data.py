"""Data: pick a source, map its columns, split it, look at its stats, and save it to the workspace."""

from typing import NamedTuple

import plotly.express as px
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from bmcore import data as bdata
from bmcore import images as bimg
from bmcore import limits
from bmcore import quality as bquality
from bmcore.config import MAX_SEQ_LENGTH_RANGE
from bmcore.display import md, plot_texts
from bmcore.errors import BmcoreError
from bmcore.labels import LABEL_DELIMITERS
from bmcore.modalities import get_modality
from bmcore.models import DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MODEL, hub_offline, hub_reachable
from bmcore.report import data as rdata
from bmcore.tasks import get_task
from pages import _images as img_ui
from pages._labelling import show_labelling
from pages._quality import show_label_quality
from pages._ui import require_frame, show_prepared_datasets, tokenizer

require_frame("pages/data.py")

MODES = ("Prepare a dataset", "Label texts")
SOURCES = ("Built-in: BBC News", "Built-in: Fashion-MNIST", "Upload a file", "Local file or folder", "Hugging Face Hub")
FILE_TYPES = ["csv", "tsv", "txt", "json", "jsonl", "ndjson", "parquet", "pq", "xlsx", "xls", "zip"]
NONE = "(none)"
# Streamlit forgets a widget's value when its page is left. What must survive a visit to another page is kept
# here, in this browser session only: the uploaded files (name and bytes; nothing reaches the workspace before
# Save), the source kind, the path, the typed names and the drop-duplicates choice.
KEPT = "data_kept"
UPLOADS = "data_uploads"
REFUSED = "data_upload_refused"  # the one-line reason the last upload was refused
GENERATIONS = "data_uploader_generation"  # {role: n}: a refused upload's uploader is replaced by a new one


class Recipe(NamedTuple):
    """Everything the splits depend on (uploaded bytes travel beside it, keyed by their fingerprints)."""

    source: str
    fingerprint: str
    test_source: str | None
    test_fingerprint: str
    text: tuple[str, ...]
    label: str
    label_columns: tuple[str, ...]  # multi-label: one 0/1 column per label
    label_delimiter: str | None  # multi-label: several labels in the label column
    scores: bool  # regression: one score per row in the label column
    use_source_splits: bool
    ratios: tuple[float, float, float]
    seed: int
    drop_duplicates: bool


@st.cache_data(show_spinner="Reading the source...", max_entries=8)
def load(source: str, fingerprint: str, _data: bytes | None) -> bdata.RawData:
    # Uploaded bytes are keyed by their hash (fingerprint), so they are not hashed twice.
    return bdata.load_source(source, data=_data)


@st.cache_data(show_spinner="Preparing the splits...", max_entries=8)
def split(recipe: Recipe, _data: bytes | None, _test_data: bytes | None) -> bdata.PreparedDataset:
    raw = load(recipe.source, recipe.fingerprint, _data)
    if recipe.test_source:
        raw = bdata.with_test_file(raw, load(recipe.test_source, recipe.test_fingerprint, _test_data))
    cols = bdata.Columns(list(recipe.text), recipe.label, list(recipe.label_columns) or None, recipe.label_delimiter,
                         recipe.scores)
    ds = bdata.prepare(raw, columns=cols,
                       use_source_splits=recipe.use_source_splits, ratios=recipe.ratios, seed=recipe.seed)
    if recipe.drop_duplicates:
        bdata.drop_duplicates(ds)
    bdata.compute_stats(ds)
    return ds


@st.cache_data(show_spinner="Counting tokens...", max_entries=8)
def count_tokens(recipe: Recipe, _data: bytes | None, _test_data: bytes | None, max_seq_length: int,
                 tokenizer_ref: str) -> bdata.PreparedDataset:
    # Apart from split() so that the counts and splits draw while the tokens (the slow part) are counted.
    ds = split(recipe, _data, _test_data)
    bdata.compute_stats(ds, tokenizer(tokenizer_ref), max_seq_length, tokenizer_name=tokenizer_ref)
    return ds


def fail(exc: Exception) -> None:
    st.error(md(exc))
    st.stop()


def kept(key: str, default=None):
    """The value a widget had when its page was last left (see KEPT)."""
    return st.session_state.get(KEPT, {}).get(key, default)


def keep(key: str) -> None:
    """on_change: remember the value of the widget ``key`` for the next visit."""
    st.session_state.setdefault(KEPT, {})[key] = st.session_state[key]


def pick(col, label: str, widget_key: str, options: list[str], guessed: str | None, **kw):
    """A selectbox that preselects the detected column (or shape), or the one chosen before a visit to another page."""
    chosen = kept(widget_key, guessed)
    return col.selectbox(label, options, key=widget_key, index=options.index(chosen) if chosen in options else None,
                         on_change=keep, args=(widget_key,), **kw)


def _release(f) -> None:
    """Drop a refused upload's bytes from Streamlit's uploaded-file store now, not when the session ends (best effort:
    the store is Streamlit's internals)."""
    ctx = get_script_run_ctx()
    if ctx is not None and Runtime.exists():
        try:
            Runtime.instance().uploaded_file_mgr.remove_file(ctx.session_id, f.file_id)
        except Exception:  # noqa: BLE001 - internals may change; the file then goes with the session
            pass


def remember_upload(role: str, widget_key: str) -> None:
    """on_change of an uploader: keep the new file, or forget it when the uploader was cleared. A file over the upload
    limit is refused, released, and its uploader replaced by a fresh one (so no widget state holds it either)."""
    uploads = st.session_state.setdefault(UPLOADS, {})
    f = st.session_state.get(widget_key)
    if f is None:
        uploads.pop(role, None)
        return
    try:
        limits.check_upload(f.name, f.size)
    except BmcoreError as exc:
        uploads.pop(role, None)
        _release(f)
        del st.session_state[widget_key]  # the page stops early without a file, so Streamlit would not prune it
        st.session_state[REFUSED] = str(exc)
        gens = st.session_state.setdefault(GENERATIONS, {})
        gens[role] = gens.get(role, 0) + 1
        return
    uploads[role] = (f.name, f.getvalue())


def upload_box(role: str, label: str, widget_key: str) -> tuple[str | None, bytes | None]:
    """An uploader whose file outlives a visit to another page; returns the current file's name and bytes."""
    gen = st.session_state.get(GENERATIONS, {}).get(role, 0)
    widget_key = widget_key if not gen else f"{widget_key}_{gen}"
    # The browser refuses a file over the limit before sending it, so the server never holds its bytes.
    st.file_uploader(label, key=widget_key, type=FILE_TYPES, on_change=remember_upload, args=(role, widget_key),
                     max_upload_size=max(1, int(limits.current().max_upload_mb)))
    refused = st.session_state.pop(REFUSED, None)
    if refused:
        st.error(md(refused))
    uploads = st.session_state.get(UPLOADS, {})
    if role not in uploads:
        return None, None
    name, data = uploads[role]
    if st.session_state.get(widget_key) is None:  # the uploader is empty again after a visit to another page
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.caption(md(f"Current file: {name} ({len(data) / 1e6:.2f} MB), uploaded earlier in this session. "
                      "Upload another file above to replace it."))
        if c2.button("Clear", key=f"{widget_key}_clear", icon=":material/close:"):
            uploads.pop(role)
            st.rerun()
    return name, data


st.title("Data")
mode = st.radio("What to do", MODES, horizontal=True, key="data_mode", index=MODES.index(kept("data_mode", MODES[0])),
                on_change=keep, args=("data_mode",), label_visibility="collapsed")
if mode == MODES[1]:
    show_labelling()
    st.stop()
st.markdown(
    "A classifier learns from texts paired with **labels** (the class names). The rows are split three ways: "
    "**train** to learn from, **validation** to tune on, and **test**, locked away and scored once at the end, "
    "so the final score is honest. Models read **tokens** (word pieces), and texts longer than "
    "`max_seq_length` tokens are cut off (truncated). In **multi-label** data a text can have any number of "
    "labels at once (a comment both angry and annoyed, or none at all), and the model says yes or no to each label."
)
st.markdown(img_ui.INTRO)
show_label_quality()

# --- source -------------------------------------------------------------------------------
kind = st.radio("Source", SOURCES, horizontal=True, key="data_source_kind", index=SOURCES.index(kept("data_source_kind", SOURCES[0])),
                on_change=keep, args=("data_source_kind",))
data: bytes | None = None
test_source: str | None = None
test_data: bytes | None = None
if kind == SOURCES[0]:
    source = bdata.DEFAULT_DATASET
    st.caption("2,225 BBC News articles in 5 topics (business, entertainment, politics, sports, tech), bundled offline.")
elif kind == SOURCES[1]:
    source = bimg.FASHION_MNIST
    st.caption("70,000 Fashion-MNIST images (28x28 grayscale photos of clothing, 10 classes, MIT licence) from Debian's "
               "dataset-fashion-mnist package, with their own train and test splits.")
elif kind == SOURCES[2]:
    source, data = upload_box("main", "CSV, TSV, JSON, JSONL, Parquet, Excel, or a .zip of image class folders", "data_upload")
    if data is None:
        st.stop()
    with st.expander("Upload a test file too (optional)", expanded="test" in st.session_state.get(UPLOADS, {})):
        st.caption("Without one, a test split is cut from the file above. With one, the file above is train "
                   "(validation is cut from it) and this file is the test split, scored once at the end.")
        test_source, test_data = upload_box("test", "Test file, with the same columns", "data_upload_test")
elif kind == SOURCES[3]:
    source = st.text_input("Path to a file, a folder with train / validation (val, dev) / test files, or a folder of "
                           "image class folders",
                           kept("data_path", ""), key="data_path", placeholder="../shared/data/sst2",
                           on_change=keep, args=("data_path",)).strip()
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
    test_fingerprint = bdata.source_fingerprint(test_source, test_data) if test_source else ""
    if test_source:
        raw = bdata.with_test_file(raw, load(test_source, test_fingerprint, test_data))
except BmcoreError as exc:
    fail(exc)
key = fingerprint[:8] or bdata.suggest_name(source)  # new source, new widgets, so the detected choice is preselected again
modality = get_modality(raw.modality)
views = modality.data_views  # what this page shows of these inputs
if "image_source" in views:
    img_ui.show_source(raw)
if "columns" not in views:  # the classes come from the folders (or the detected label column): no columns to choose
    text_cols, label_col, label_cols, delimiter = tuple(bdata.IMAGE_COLUMNS.text), bdata.IMAGE_COLUMNS.label, (), None
    shape = guessed_shape = "single"
else:  # --- preview and columns ---------------------------------------------------------------
    for note in raw.notes:
        st.caption(md(note))
    st.subheader("Preview")
    first = next(iter(raw.frames.values()))
    st.caption("Rows per file: " + ", ".join(f"{s} {len(df):,}" for s, df in raw.frames.items()))
    st.dataframe(first.head(50), hide_index=True, height=240)

    columns = [str(c) for c in first.columns]
    detected: list[str] = []
    try:
        guess = bdata.detect_columns(first, detected)
    except BmcoreError as exc:
        st.error(md(exc))  # the columns can still be chosen by hand below
        guess = None
    c1, c2, c3 = st.columns(3)
    text_col = pick(c1, "Text column", f"data_text_{key}", columns, guess.text[0] if guess else None)
    pair_col = pick(c2, "Second text column (text pairs only)", f"data_pair_{key}", [NONE, *columns],
                    guess.text[1] if guess and len(guess.text) == 2 else NONE)
    guessed_shape = bdata.label_shape(guess) if guess else "single"
    shape = pick(c3, "Labels per row", f"data_shape_{key}", list(rdata.LABEL_SHAPES), guessed_shape,
                 format_func=rdata.LABEL_SHAPES.get)
    for note in detected:
        st.caption(md(note))
    c1, c2 = st.columns(2)
    label_col, label_cols, delimiter = "", (), None
    if shape == "columns":
        label_cols = tuple(c1.multiselect("0/1 label columns, one per label", [c for c in columns if c != text_col],
                                          kept(f"data_labelcols_{key}", (guess.label_columns if guess else None)
                                               or bdata.binary_columns(first)),
                                          key=f"data_labelcols_{key}", on_change=keep, args=(f"data_labelcols_{key}",)))
    else:
        label_col = pick(c1, "Label column", f"data_label_{key}", columns, (guess.label or None) if guess else None)
    if shape == "delimited":
        delimiter = pick(c2, "Labels separated by", f"data_delim_{key}", list(LABEL_DELIMITERS),
                         guess.label_delimiter if guess and guess.label_delimiter else ",",
                         format_func=lambda d: "JSON lists" if d == "json" else repr(d))
    if text_col is None or label_col is None or (shape == "columns" and len(label_cols) < 2):
        st.info("Choose the text column and the label column (or at least two 0/1 label columns).")
        st.stop()
    text_cols = (text_col,) if pair_col == NONE else (text_col, pair_col)

# --- splits and tokens --------------------------------------------------------------------
st.subheader("Splits and tokens" if "tokens" in views else "Splits")
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
max_seq_length, tokenizer_ref = DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MODEL
if "tokens" in views:
    c1, c2 = st.columns(2)
    max_seq_length = c1.number_input("max_seq_length (tokens)", *MAX_SEQ_LENGTH_RANGE, DEFAULT_MAX_SEQ_LENGTH, step=32,
                                     key="data_max_seq_length")
    tokenizer_ref = c2.text_input("Tokenizer (model reference)", DEFAULT_MODEL, key="data_tokenizer").strip() or DEFAULT_MODEL
ratios = ((100 - val_pct - test_pct) / 100, val_pct / 100, test_pct / 100)
dedupe_key = f"drop_duplicates_{key}"
recipe = Recipe(source, fingerprint, test_source, test_fingerprint, text_cols, label_col, label_cols, delimiter,
                shape == "score", use_source_splits, ratios, int(seed), bool(kept(dedupe_key, False)))

try:
    ds = split(recipe, data, test_data)
except BmcoreError as exc:
    fail(exc)
stats = ds.stats
for note in ds.notes:
    if note not in raw.notes:  # those are shown under the source
        st.caption(md(note))

# --- stats: the counts first, then the token lengths (counting them is the slow part) -------
st.subheader("Stats")
task = get_task(ds.problem_type, ds.modality)
m = st.columns(6)
m[0].metric(modality.example_noun.capitalize(), f"{stats['rows_total']:,}")
if "score_summary" in stats:
    m[1].metric("Mean score (train)", f"{stats['score_summary']['train'].get('mean', float('nan')):.3g}")
else:
    m[1].metric(task.label_nouns[1].capitalize(), stats["num_classes"])
for col, split_name in zip(m[2:5], bdata.SPLITS, strict=True):
    col.metric(split_name.capitalize(), f"{stats['rows'][split_name]:,}")

balance_col, lengths_col = st.columns(2)
if "score_histogram" in stats:  # a score per row: its distribution in each split, not classes
    balance = px.bar(rdata.score_histogram_frame(stats), x="score", y="rows", color="split", barmode="group",
                     title=f"Scores per split<br><sup>{rdata.score_summary_text(stats)}</sup>")
else:
    balance = px.bar(rdata.class_balance_frame(stats).assign(label=lambda f: plot_texts(f["label"])), x="label", y="count",
                     color="split", barmode="group",
                     title=f"{modality.example_noun.capitalize()} per {task.label_nouns[0]} and split")
balance_col.plotly_chart(balance, key="data_balance_chart")
if "image_sizes" in views:
    img_ui.show_sizes(ds, m[5], lengths_col)
if "label_cardinality" in stats:  # labels per row: a row may have any number of them
    c = st.columns(3)
    c[0].metric("Labels per row (mean)", f"{stats['label_cardinality']:.2f}")
    c[1].metric("Rows with no label", f"{sum(stats['no_label_rows'].values()):,}")
    c[2].metric("Rare labels", len(stats["rare_labels"]), help=f"fewer than {bdata.MIN_CLASS_EXAMPLES} rows in all")
    card_col, co_col = st.columns(2)
    card_col.plotly_chart(px.bar(rdata.labels_per_row_frame(stats), x="labels", y="rows", color="split", barmode="group",
                                 title="Labels per row"), key="data_cardinality_chart")
    co = rdata.cooccurrence_frame(stats, ds.label_names, diagonal=False)
    if not co.empty:
        names = plot_texts(co.columns)
        co_col.plotly_chart(px.imshow(co.to_numpy(), x=names, y=names, color_continuous_scale="Blues",
                                      title="Rows with both labels (co-occurrence)"), key="data_cooccurrence_chart")

shown = bdata.warnings_for(stats)
for warning in shown:
    st.warning(md(warning))
if recipe.drop_duplicates:
    said, undo = st.columns([5, 1], vertical_alignment="center")
    before = split(recipe._replace(drop_duplicates=False), data, test_data)  # cached: the page drew it before the click
    gone = {s: before.stats["rows"][s] - stats["rows"][s] for s in bdata.SPLITS}
    said.success(f"Dropped {sum(gone.values()):,} duplicate rows (" + ", ".join(f"{s} {n:,}" for s, n in gone.items())
                 + "); Save keeps them out.")
    if undo.button("Keep them", key="data_keep_duplicates", help="Undo: keep every row"):
        st.session_state[KEPT][dedupe_key] = False
        st.rerun()
elif any(stats["duplicates_within"].values()) or any(stats["leakage"].values()):
    if st.button("Drop duplicates and overlaps", key="data_drop_duplicates", icon=":material/cleaning_services:",
                 help=f"Drops {modality.input_noun} repeated within a split, and train or "
                      f"validation {modality.input_noun} that also occur in a later "
                      "split (test keeps its rows). Saved datasets keep the choice; the command below includes it."):
        st.session_state.setdefault(KEPT, {})[dedupe_key] = True
        st.rerun()
if stats.get("class_weights"):
    with st.expander(f"Suggested class weights (imbalance {stats['imbalance_ratio']}:1)"):
        st.dataframe(rdata.class_weights_frame(stats), hide_index=True)
if "image_samples" in views:
    img_ui.show_duplicates(ds)
    img_ui.show_samples(ds)
if "tokens" in views:
    with lengths_col:
        try:
            ds = count_tokens(recipe, data, test_data, int(max_seq_length), tokenizer_ref)
        except BmcoreError as exc:
            fail(exc)
    stats = ds.stats
    m[5].metric("Truncated", f"{stats['truncated_share']:.1%}", help=f"texts longer than {stats['max_seq_length']} tokens")
    # The detail goes on a second, smaller title line: one long line is cut off in a half-width chart.
    lengths = px.histogram(rdata.token_length_frame(ds).assign(label=lambda f: plot_texts(f["label"])), x="n_tokens",
                           color="label" if task.rows_by_label else "split", barmode="overlay", opacity=0.6,
                           nbins=60, title=f"Token lengths per {'class' if task.rows_by_label else 'split'}<br><sup>{stats['truncated_share']:.1%} truncated at "
                                           f"max_seq_length {stats['max_seq_length']}</sup>")
    lengths.add_vline(x=stats["max_seq_length"], line_dash="dash", annotation_text="max_seq_length")
    lengths.update_xaxes(range=[0, rdata.length_axis_max(stats)])  # a few very long texts would squash the rest
    lengths_col.plotly_chart(lengths, key="data_lengths_chart")
    for warning in bdata.warnings_for(stats):
        if warning not in shown:
            st.warning(md(warning))

# --- save ---------------------------------------------------------------------------------
st.subheader("Save to the workspace")
name_key = f"data_name_{key}"
name = st.text_input("Name", kept(name_key, bdata.suggest_name(source, fingerprint if data is not None else "")), key=name_key,
                     on_change=keep, args=(name_key,)).strip()
used = False
if bdata.is_prepared(name):
    try:  # the engine's own check: the page never replaces a dataset that runs were trained on
        bdata.check_replace(name, hint=f"save it under another name, such as {bquality.next_version_name(name)!r}")
        st.caption(md(f"A dataset named {name!r} exists; saving replaces it (no run was trained on it)."))
    except BmcoreError as exc:
        st.error(md(exc))
        used = True
saved = st.session_state.pop("data_saved", None)
if saved:
    st.success(md(f"Saved {saved[0]!r} to {saved[1]}"))
if st.button("Save", type="primary", key="data_save", disabled=used):
    try:
        ds.name = name
        path = bdata.save_prepared(ds)  # never in place of a dataset that runs were trained on
    except BmcoreError as exc:
        fail(exc)
    st.session_state["data_saved"] = (name, str(path))
    st.rerun()  # the label-quality picker at the top lists the new dataset
st.caption("The same from the command line:")
columns_used = {} if "columns" not in views else {"text_columns": list(text_cols), "label_column": label_col or None,
                                  "label_columns": list(label_cols), "label_delimiter": delimiter,
                                  "single_label": shape == "single" and guessed_shape != "single",
                                  "scores": shape == "score" and guessed_shape != "score"}
st.code(rdata.prepare_command(source, name or "NAME", **columns_used, use_source_splits=use_source_splits, ratios=ratios,
                              seed=int(seed), max_seq_length=int(max_seq_length), tokenizer=tokenizer_ref,
                              test_file=test_source, drop_duplicates=recipe.drop_duplicates), language="bash")

st.subheader("Datasets in the workspace")
show_prepared_datasets()
