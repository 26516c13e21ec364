"""Playground: one text through a model (prediction, attention maps, token attributions), or a batch of texts; for an
image model, one image (probabilities and an explanation overlaid on it) or a zip of images (pages/_image_playground.py).

Hand-over from other pages (the Evaluate page sends misclassified examples this way):
    st.session_state["playground_text"] = text            # prefills the text box
    st.session_state["playground_text_pair"] = text_pair  # optional, for text-pair models
    st.session_state["playground_model"] = model_ref      # a model folder (<run>/model or the run folder), or builtin:minilm
    st.session_state["playground_gold"] = label           # optional: the example's true label, shown beside the prediction
    st.switch_page("pages/playground.py")
The Playground reads these once, selects that model, prefills the boxes, and removes the keys.
"""

import math

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from bmcore import batch_files
from bmcore import explain as bx
from bmcore.display import csv_frame, md, plot_texts
from bmcore.errors import BmcoreError
from bmcore.inference import ImageClassifier, load_for_inference, predict
from bmcore.report import evaluation as rev
from bmcore.report import playground as view
from bmcore.report import serving
from pages._image_playground import IMAGE_INTRO, show_image_playground
from pages._ui import keep, require_frame

require_frame("pages/playground.py")

CUSTOM = "(another local folder)"
PREDICTED = "\x00predicted"  # the "explain the predicted class" choice; no class name holds a NUL
WINDOW = 40  # tokens shown at once in attention charts; longer inputs get a window slider
GRID_COLS = 4  # heads per row in the all-heads grid


@st.cache_resource(show_spinner="Loading the model...", max_entries=3)
def classifier(key: tuple[str, float], precision: str):
    # Keyed by folder AND mtime, so a retrained run is never served stale. Shared by all sessions: read-only.
    return load_for_inference(key[0], precision=precision)


@st.cache_data(show_spinner="Explaining: attention maps and Integrated Gradients...", max_entries=8)
def explained(key: tuple[str, float], precision: str, text: str, pair: str | None, target: str, n_steps: int):
    # Cached so that moving a layer or head slider does not rerun Integrated Gradients.
    return bx.explain(classifier(key, precision), text, pair, target=target, n_steps=n_steps)


@st.cache_data(max_entries=8)
def score_range(dataset: str):
    return view.score_range(dataset)  # reads the training split once per dataset, not on every rerun


@st.cache_data(show_spinner="Predicting...", max_entries=4)
def predicted(key: tuple[str, float], precision: str, texts: tuple[str, ...], pairs: tuple[str, ...] | None):
    return predict(classifier(key, precision), list(texts), list(pairs) if pairs else None)


def fail(exc: Exception | str) -> None:
    st.error(md(str(exc).strip().splitlines()[0]) if str(exc).strip() else exc.__class__.__name__)
    st.stop()


def use_example(example: dict[str, str]) -> None:
    st.session_state["playground_input"] = example["text"]
    st.session_state["playground_pair"] = example.get("text_pair", "")
    st.session_state["playground_true"] = (example["text"], example.get("text_pair", ""), example["label"])


def heatmap(matrix, labels: list[str], lo: int, hi: int, title: str) -> go.Figure:
    idx = list(range(lo, hi))
    names = [[(labels[i], labels[j]) for j in idx] for i in idx]
    fig = go.Figure(go.Heatmap(z=matrix[lo:hi, lo:hi], x=idx, y=idx, customdata=names, colorscale="Blues", zmin=0,
                               hovertemplate="%{customdata[0]} → %{customdata[1]}: %{z:.3f}<extra></extra>"))
    ticks = dict(tickvals=idx, ticktext=labels[lo:hi], tickfont_size=11)
    fig.update_xaxes(**ticks, tickangle=-60, title="looks at (key)")
    fig.update_yaxes(**ticks, autorange="reversed", title="token (query)")
    side = min(760, 260 + 16 * len(idx))  # about square in the page's width, so cells and labels stay legible
    fig.update_layout(title=title, height=side, width=side + 160, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def head_grid(att, labels: list[str], lo: int, hi: int, layer: int) -> go.Figure:
    heads = att.shape[1]
    cols = min(GRID_COLS, heads)
    rows = math.ceil(heads / cols)
    idx = list(range(lo, hi))
    names = [[(labels[i], labels[j]) for j in idx] for i in idx]
    fig = make_subplots(rows, cols, subplot_titles=[f"head {h + 1}" for h in range(heads)],
                        horizontal_spacing=0.02, vertical_spacing=0.05)
    for h in range(heads):
        fig.add_trace(go.Heatmap(z=att[layer, h, lo:hi, lo:hi], x=idx, y=idx, customdata=names, coloraxis="coloraxis",
                                 hovertemplate=f"head {h + 1}: " + "%{customdata[0]} → %{customdata[1]}: %{z:.3f}<extra></extra>"),
                      row=h // cols + 1, col=h % cols + 1)
    fig.update_xaxes(showticklabels=False, ticks="")
    fig.update_yaxes(showticklabels=False, ticks="", autorange="reversed")
    fig.update_layout(coloraxis=dict(colorscale="Blues", cmin=0), height=230 * rows + 60,
                      title=f"Every head of layer {layer + 1} (hover for tokens)", margin=dict(l=10, r=10, t=70, b=10))
    return fig


def threshold_chart(frame) -> go.Figure:
    """A multi-label model's decision for one text: each label's probability as a bar, its threshold as a red mark."""
    y = plot_texts(frame["label"])
    yes = frame["predicted"] == "yes"
    fig = go.Figure(go.Bar(x=frame["probability"], y=y, orientation="h", name="probability",
                           marker_color=["#4F46E5" if v else "#CBD5E1" for v in yes],
                           text=[f"{p:.1%}" for p in frame["probability"]], textposition="outside",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=frame["threshold"], y=y, mode="markers", name="threshold",
                             marker=dict(symbol="line-ns", size=18, line=dict(width=3, color="#DC2626")),
                             hovertemplate="threshold of %{y}: %{x:.2f}<extra></extra>"))
    fig.update_layout(title="Probability of each label against its threshold (predicted labels in blue)",
                      height=max(240, 24 * len(frame) + 110), xaxis=dict(range=[0, 1.1], title="probability"),
                      yaxis=dict(autorange="reversed", title=""), margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))
    return fig


def draw_probabilities(probs: dict[str, float], calibrated: dict[str, float] | None, meta: dict) -> None:
    bars = px.bar(view.probability_frame(probs, calibrated).assign(**{"class": lambda f: plot_texts(f["class"])}), x="probability", y="class", color="kind", orientation="h",
                  barmode="group", range_x=[0, 1], text_auto=".1%", title="Probability of each class",
                  color_discrete_sequence=["#4F46E5", "#F59E0B"])
    bars.update_layout(height=max(220, 36 * len(probs) * (2 if calibrated else 1) + 110), legend_title_text="",
                       yaxis=dict(autorange="reversed", title=""), margin=dict(l=10, r=10, t=50, b=10))
    st.plotly_chart(bars, key="playground_probs_chart")
    if calibrated is None and (note := rev.model_temperature_note(meta)):
        st.caption(note)


st.title("Playground")
TEXT_INTRO = (
    "A **prediction** is a probability for each class; the label is the most probable one (a multi-label model predicts "
    "every label whose probability reaches its threshold; a regression model predicts one number, a score). "
    "**Attention** shows how much "
    "each token looks at each other token in one layer and head: it shows where information flows, but it is not an "
    "explanation by itself. **Rollout** combines the attention of all layers. **Token attributions** (Integrated "
    "Gradients) say how much each token pushed the chosen class's probability (or the score) up (green) or down (red), "
    "compared with the same input made of [PAD] tokens."
)
intro = st.empty()  # a text model's intro, replaced by an image model's once the model is known
intro.markdown(TEXT_INTRO)

# --- hand-over from the Evaluate page (see the docstring) -----------------------------------
handed_model = st.session_state.pop("playground_model", None)
handed_over = "playground_text" in st.session_state
if handed_over:
    st.session_state["playground_input"] = str(st.session_state.pop("playground_text"))
    st.session_state["playground_pair"] = str(st.session_state.pop("playground_text_pair", "") or "")
    gold = st.session_state.pop("playground_gold", None)
    # Shown while the text is the one handed over: an edited text has no known label.
    st.session_state["playground_true"] = (st.session_state["playground_input"], st.session_state["playground_pair"],
                                           str(gold)) if gold is not None else None

# --- model --------------------------------------------------------------------------------
try:
    choices = view.playground_models()
except BmcoreError as exc:
    fail(exc)
by_ref = {c.ref: c for c in choices}
if handed_model:
    match = view.find_choice(choices, str(handed_model))
    st.session_state["playground_model_choice"] = match.ref if match else CUSTOM
    if match is None:
        st.session_state["playground_path"] = str(handed_model)
keep("playground_model_choice", "playground_path", "playground_input", "playground_pair", "playground_batch_source",
     "playground_batch_lines")  # the text and its result are still there after a visit to another page
choice = st.selectbox("Model", [*by_ref, CUSTOM], key="playground_model_choice",
                      format_func=lambda r: by_ref[r].label if r in by_ref else r,
                      help="Completed runs in the workspace, the untrained base model, or any local save_pretrained folder.")
ref = choice
if choice == CUSTOM:
    ref = st.text_input("Model folder (a save_pretrained folder, or a run folder)", key="playground_path").strip()
    if not ref:
        st.info("Give the path of a model folder.")
        st.stop()
precision = st.session_state.get("precision", "auto")
try:
    info = view.model_info(ref)
    clf = classifier(info.cache_key, precision)
except (BmcoreError, OSError, ValueError) as exc:
    fail(exc)
if info.base:
    st.warning("This is an untrained base model: its classification head is random, so its predictions are meaningless "
               "until it is fine-tuned on the Train page. Attention maps still show what the pretrained encoder does.")
if isinstance(clf, ImageClassifier):  # an image model: its own layout (pages/_image_playground.py)
    intro.markdown(IMAGE_INTRO)
    show_image_playground(info, clf, precision, classifier, draw_probabilities, fail)
    st.stop()
names = clf.label_names

one, many = st.tabs(["One text", "Batch"])

# --- batch (drawn first: the one-text tab below stops early while its box is empty) --------
with many:
    st.markdown("One text per line, or a `.txt` file (one text per line) or `.csv` file with a `text` column "
                "(or a pair of columns such as `premise`/`hypothesis`).")
    source = st.radio("Input", ("Paste lines", "Upload a file"), horizontal=True, key="playground_batch_source")
    texts: list[str] = []
    pairs: list[str] | None = None
    gold: list[str | None] | None = None  # the file's own labels, when it has a label column
    if source == "Paste lines":
        lines = st.text_area("Texts, one per line", key="playground_batch_lines", height=160)
        texts = [line for line in lines.splitlines() if line.strip()]
    else:
        upload = st.file_uploader("A .txt or .csv file", type=["txt", "csv"], key="playground_batch_file")
        if upload is not None:
            try:
                texts, pairs = batch_files.read_batch(upload.name, upload.getvalue())
                gold = batch_files.read_batch_labels(upload.name, upload.getvalue())
            except BmcoreError as exc:
                st.error(md(exc))
    if texts:
        try:
            records = predicted(info.cache_key, precision, tuple(texts), tuple(pairs) if pairs else None)
        except BmcoreError as exc:
            st.error(md(exc))
        else:
            table = view.predictions_frame(texts, records, pairs)
            if gold is not None:
                scores = batch_files.batch_scores(gold, records, names)
                table.insert(view.gold_column_at(table), "gold", gold)
                if tiles := view.batch_tiles(scores):
                    for col, t in zip(st.columns(len(tiles)), tiles, strict=True):
                        col.metric(**t)
                elif scores["unknown"]:
                    st.caption(md("No accuracy: the file's labels (" + ", ".join(scores["unknown"][:5])
                                  + ") are not classes of this model (" + ", ".join(names) + ")."))
            st.dataframe(table, hide_index=True, column_config={
                "confidence": st.column_config.ProgressColumn("confidence", format="%.3f", min_value=0, max_value=1)})
            st.download_button("Download as CSV", csv_frame(table).to_csv(index=False).encode("utf-8"), "predictions.csv",
                               "text/csv", key="playground_batch_download", icon=":material/download:")
            st.caption(view.batch_caption(table, records))

# --- one text -----------------------------------------------------------------------------
with one:
    examples = view.playground_examples(info.dataset) if info.dataset else []
    if examples:
        st.caption(f"Examples from the test split of `{info.dataset}` (true label first):")
        cols = st.columns(min(GRID_COLS, len(examples)))
        for i, example in enumerate(examples):
            cols[i % len(cols)].button(view.example_label(example), key=f"playground_example_{i}", on_click=use_example,
                                       args=(example,), width="stretch")
    if handed_over:
        st.caption("Prefilled from the Evaluate page.")
    text = st.text_area("Text", key="playground_input", height=110, placeholder="Type a sentence, then Ctrl+Enter")
    if view.dataset_is_pair(info.dataset):
        pair = st.text_area("Second text (this model reads text pairs)", key="playground_pair", height=80)
    else:
        with st.expander("Second text, for text-pair models"):
            pair = st.text_area("Second text", key="playground_pair", height=80)
    pair = pair if pair and pair.strip() else None
    st.caption("The same from the command line:")
    st.code(view.predict_command(info.location, text or "TEXT", pair), language="bash", wrap_lines=True)
    with st.expander("Serve it over HTTP", icon=":material/api:"):
        st.markdown(serving.SERVE_NOTE)
        st.code(serving.serve_snippet(info.location, pictures=False), language="bash", wrap_lines=True)
    if not text:
        st.info("Type a text, or pick an example.")
        st.stop()
    if not text.strip():
        fail("the text is empty; type a sentence")

    pred = clf.predict_proba([text], [pair] if pair else None)
    task = clf.task  # it says what one prediction is: a class, a set of labels, a score
    record = task.record(pred.labels[0], pred.probs[0], names, clf.meta)
    label, probs = pred.labels[0], dict(zip(names, pred.probs[0].tolist(), strict=True))
    calibrated = dict(zip(names, pred.calibrated_probs[0].tolist(), strict=True)) if pred.calibrated_probs is not None else None
    known = st.session_state.get("playground_true")
    tiles, truth = task.prediction_tiles(record, known[2] if known and known[:2] == (text, pair or "") else None)
    tiles += [{"label": "Latency", "value": f"{pred.seconds * 1000:.1f} ms",
               "help": "One forward pass on the cached model, tokenising included."}] + ([truth] if truth else [])
    for col, t in zip(st.columns(len(tiles)), tiles, strict=True):
        col.metric(**t)
    if pred.truncated[0]:
        st.warning(f"The input is longer than max_seq_length ({clf.max_seq_length} tokens): only its first "
                   f"{clf.max_seq_length} tokens were read.")
    if task.playground_view == "thresholds":
        st.markdown("**Predicted labels:** " + (md(", ".join(label)) if label else "none (no label reaches its threshold)"))
        st.caption("A multi-label model asks one yes/no question per label: each label gets its own probability (they "
                   "need not add up to 1), and a label is predicted when its probability reaches that label's threshold, "
                   + ("tuned on the validation split to give the label its best F1." if clf.meta.get("thresholds") else
                      "0.5 for every label here, as this model has no tuned thresholds."))
        frame = view.threshold_frame(probs, pred.thresholds, label)
        st.plotly_chart(threshold_chart(frame), key="playground_thresholds_chart")
        with st.expander("As a table"):
            st.dataframe(frame, hide_index=True, column_config={
                "probability": st.column_config.ProgressColumn("probability", format="%.3f", min_value=0, max_value=1)})
    elif task.playground_view == "probabilities":
        draw_probabilities(probs, calibrated, clf.meta)
    else:  # a score: the number, and the range of the scores it was trained on
        st.caption(view.score_range_note(info.dataset, score_range(info.dataset)))

    # --- attributions ---------------------------------------------------------------------
    st.subheader("Token attributions")
    c1, c2 = st.columns([3, 1])
    # A class picked for one text is not carried over to the next: a new text explains its own prediction.
    if st.session_state.get("playground_target_text") != (text, pair):
        st.session_state["playground_target_text"] = (text, pair)
        st.session_state["playground_target"] = PREDICTED
    keep("playground_target")
    target = PREDICTED
    if len(names) > 1:  # one output (a score) has nothing to choose
        multi = task.playground_view == "thresholds"
        # A sentinel, not None: a selectbox whose value is None shows "Choose an option" in the browser.
        target = c1.selectbox("Explain the label" if multi else "Explain the class", [PREDICTED, *names],
                              key="playground_target", format_func=lambda c: ("the top predicted label" if multi else
                                                                              "the predicted class") if c == PREDICTED else c)
    n_steps = c2.select_slider("Integrated Gradients steps", [8, 16, 32, 64, 128], 64, key="playground_n_steps",
                               help="More steps: a smaller convergence delta, and a slower explanation.")
    try:
        ex = explained(info.cache_key, precision, text, pair, task.explain_target(record) if target == PREDICTED else target,
                       int(n_steps))
    except BmcoreError as exc:
        fail(exc)
    st.html(bx.attributions_html(ex.tokens, ex.attributions, target=ex.target))
    st.caption(f"Attributions of {md(task.explained_output(ex.target))} sum to {ex.output_diff:+.4f}, the change from "
               f"the [PAD] baseline to the text. Convergence delta {ex.delta:+.2e} ({ex.n_steps} steps): near 0 means the "
               f"steps were enough. Explained in {ex.seconds:.2f} s.")

    # --- attention ------------------------------------------------------------------------
    st.subheader("Attention")
    att, n_tok = ex.attentions, len(ex.tokens)
    n_layers, n_heads = att.shape[:2]
    labels = view.token_labels(ex.tokens)
    c1, c2, c3 = st.columns(3)
    layer = c1.slider("Layer", 1, n_layers, n_layers, key=f"playground_layer_{n_layers}") - 1
    head = c2.slider("Head", 1, n_heads, 1, key=f"playground_head_{n_heads}") - 1
    start = 0
    if n_tok > WINDOW:
        start = c3.slider(f"First token shown ({WINDOW} of {n_tok} at a time)", 0, n_tok - WINDOW, 0,
                          key=f"playground_window_{n_tok}")
    lo, hi = view.token_window(n_tok, start, WINDOW)
    one_head, all_heads, rollout, cls_tab = st.tabs(["One head", "Every head of the layer", "Rollout", "[CLS] attention"])
    one_head.plotly_chart(heatmap(att[layer, head], labels, lo, hi, f"Layer {layer + 1}, head {head + 1}"),
                          key="playground_head_chart", width="content")
    all_heads.plotly_chart(head_grid(att, labels, lo, hi, layer), key="playground_grid_chart")
    rollout.plotly_chart(heatmap(ex.rollout, labels, lo, hi, "Rollout: attention combined through all layers"),
                         key="playground_rollout_chart", width="content")
    frame = view.cls_bars(ex, layer)
    frame = frame[(frame["position"] >= lo) & (frame["position"] < hi)].assign(token=lambda f: [labels[p] for p in f["position"]])
    cls = px.bar(frame, x="position", y="weight", color="kind", barmode="group", title="What [CLS] attends to",
                 hover_data={"token": True, "position": False}, color_discrete_sequence=["#4F46E5", "#10B981"])
    cls.update_xaxes(tickvals=list(range(lo, hi)), ticktext=labels[lo:hi], tickangle=-60, title="", tickfont_size=11)
    cls.update_layout(height=400, legend=dict(title="", orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
                      margin=dict(l=10, r=10, t=60, b=10))
    cls_tab.plotly_chart(cls, key="playground_cls_chart")
