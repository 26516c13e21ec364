"""Evaluate: score a model on a locked split next to a TF-IDF baseline; confusions, errors, curves, calibration, comparison."""

import json
import shlex
from functools import partial
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from bmcore import evaluate as ev
from bmcore import export as ex
from bmcore import jobs, runs
from bmcore.data import SPLITS, dataset_dir, list_prepared
from bmcore.display import from_plot_text, md, md_code, plot_text, plot_texts
from bmcore.errors import BmcoreError
from pages._quality import show_gold_check
from pages._ui import job_outcome, show_job

SOURCES = ("A finished run", "Local model folder")
NORMS = ("Counts", "Row-normalised")
SHOW = ("Misclassified", "All examples")
MAX_ROWS = 1000  # rows drawn in a table at once; the CSV download has them all
PREVIEW = 90  # characters of text in pickers
METRIC_COLORS = {"precision": "#4F46E5", "recall": "#F59E0B", "f1": "#10B981"}
CALIB_COLORS = {"before": "#EF4444", "after temperature": "#4F46E5"}
TABLE_COLUMNS = {
    "text": st.column_config.TextColumn("text", width=360, help="Double-click a cell to read all of it."),
    "text_pair": st.column_config.TextColumn("text pair", width=200),
    "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="%.2f",
                                                  width="small"),
    "loss": st.column_config.NumberColumn("loss", format="%.3f", width="small",
                                          help="Cross-entropy of the gold class, in nats."),
}


@st.cache_data(show_spinner="Reading the evaluation...", max_entries=8)
def load(path: str, mtime: float) -> ev.EvalResult:
    # Keyed by folder and modification time: a re-scored evaluation is never served stale.
    return ev.load_eval(path)


@st.cache_data(show_spinner="Computing ROC and PR curves...", max_entries=8)
def curves(path: str, mtime: float) -> dict:
    result = load(path, mtime)
    return ev.roc_pr_curves(result.predictions, result.label_names)


def fail(exc: Exception | str) -> None:
    st.error(md(exc))
    st.stop()


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def delta(value: float | None, other: float | None, what: str = "vs baseline") -> str | None:
    return None if value is None or other is None else f"{value - other:+.3f} {what}".strip()


def preview(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def on_run_change() -> None:
    # A new run: default to its own dataset and the test split, where its results already exist.
    run = st.session_state.get("evaluate_run")
    dataset = completed.get(run, {}).get("dataset")
    if dataset in dataset_names:
        st.session_state["evaluate_dataset"] = dataset
    st.session_state["evaluate_split"] = "test"


def on_cell_click() -> None:
    # Heatmap cells cannot be selected in Streamlit, so each cell has an invisible marker; a click picks it.
    state = st.session_state.get("evaluate_cm_chart") or {}
    points = (state.get("selection") or {}).get("points") or []
    if points:
        st.session_state["evaluate_cell_gold"] = from_plot_text(points[0]["y"])
        st.session_state["evaluate_cell_pred"] = from_plot_text(points[0]["x"])


def on_row_pick(table_key: str, pick_key: str) -> None:
    rows = ((st.session_state.get(table_key) or {}).get("selection") or {}).get("rows") or []
    if rows:
        st.session_state[pick_key] = rows[0]


def axis_style(k: int, names: list[str]) -> dict:
    """Tick settings that stay readable from 2 to 20+ classes."""
    long = max((len(n) for n in names), default=0)
    return {"tickfont": {"size": 13 if k <= 6 else 11 if k <= 12 else 10},
            "tickangle": -40 if k > 6 or long * k > 60 else 0, "automargin": True}


def confusion_figure(matrix: list[list[int]], names: list[str], normalised: bool) -> go.Figure:
    k = len(names)
    names = plot_texts(names)  # the labels as plotly shows them (a click returns them; on_cell_click maps them back)
    counts = pd.DataFrame(matrix, index=names, columns=names)
    share = ev.normalize_confusion(matrix)
    z = share if normalised else counts.to_numpy()
    show_text = k <= 12
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, colorscale="Blues", zmin=0, zmax=1 if normalised else None, hoverinfo="skip",
        text=[[f"{v:.0%}" if normalised else f"{int(c):,}" for v, c in zip(sr, cr, strict=True)]
              for sr, cr in zip(share, counts.to_numpy(), strict=True)] if show_text else None,
        texttemplate="%{text}" if show_text else None,
        textfont={"size": 16 if k <= 4 else 13 if k <= 8 else 10},
        colorbar={"title": {"text": "share of gold" if normalised else "examples"}, "thickness": 12}))
    # An invisible marker on every cell carries the hover text and receives clicks (heatmaps give no selection events).
    gx, gy, hover = [], [], []
    for i, g in enumerate(names):
        for j, p in enumerate(names):
            gx.append(p)
            gy.append(g)
            hover.append(f"gold <b>{g}</b> → predicted <b>{p}</b><br>{int(counts.iat[i, j]):,} examples "
                         f"({share[i, j]:.1%} of {g})<br>click to list them")
    size = max(8, min(60, int(500 / k)))
    fig.add_trace(go.Scatter(x=gx, y=gy, mode="markers", marker={"size": size, "symbol": "square", "opacity": 0},
                             hovertext=hover, hoverinfo="text", showlegend=False,
                             selected={"marker": {"opacity": 0}}, unselected={"marker": {"opacity": 0}}))
    height = min(900, max(360, 160 + 34 * k))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, clickmode="event+select",
                      dragmode=False, title={"text": "Confusion matrix (rows gold, columns predicted)", "font": {"size": 15}})
    # Fixed ranges: otherwise plotly pads the axes to fit the (invisible) markers and the cells shrink.
    fig.update_xaxes(title="predicted", range=[-0.5, k - 0.5], **axis_style(k, names))
    fig.update_yaxes(title="gold", range=[k - 0.5, -0.5], **{**axis_style(k, names), "tickangle": 0})
    return fig


def show_examples(frame: pd.DataFrame, key: str, total: int | None = None, **kwargs) -> None:
    total = len(frame) if total is None else total
    if len(frame) > MAX_ROWS:
        st.caption(f"Showing the first {MAX_ROWS:,} of {total:,} rows; download the predictions for all of them.")
    st.dataframe(frame.head(MAX_ROWS), column_config=TABLE_COLUMNS, key=key, hide_index=True, **kwargs)


def show_confusion(result: ev.EvalResult, model_dir: str) -> None:
    names = result.label_names
    matrix = result.metrics["confusion_matrix"]["matrix"]
    st.subheader("Which classes does it confuse?")
    st.markdown("Each row is a **gold** (true) class, each column the class the model **predicted**: the diagonal is "
                "right, everything off it is a mistake. Row-normalised cells show the share of each gold class, so "
                "small classes read as clearly as large ones. Click a cell, or pick it below, to list its examples.")
    for key in ("evaluate_cell_gold", "evaluate_cell_pred"):
        if st.session_state.get(key) not in names:
            st.session_state[key] = None  # labels of another evaluation
    c0, c1, c2 = st.columns([1.2, 1, 1], vertical_alignment="bottom")
    norm = c0.radio("Cells show", NORMS, horizontal=True, key="evaluate_cm_norm")
    # The chart sits below its selectboxes; a click's callback runs before the script, so it can still set them.
    chart = st.container()
    gold = c1.selectbox("Gold label (row)", names, key="evaluate_cell_gold", index=None, placeholder="choose a row")
    pred = c2.selectbox("Predicted label (column)", names, key="evaluate_cell_pred", index=None,
                        placeholder="choose a column")
    chart.plotly_chart(confusion_figure(matrix, names, norm == NORMS[1]), key="evaluate_cm_chart", on_select=on_cell_click,
                       selection_mode=("points",), config={"displayModeBar": False})
    top = result.metrics.get("top_confusions") or []
    if top:
        chart.caption(md("Most frequent confusions: " + "; ".join(f"{t['gold']} → {t['pred']} ({t['count']:,})" for t in top[:3])))
    if gold is None or pred is None:
        st.info("Click a cell of the matrix, or choose a gold and a predicted label above it, to list its examples.")
        return
    rows = ev.cell_examples(result.predictions, gold, pred)
    verdict = "correct" if gold == pred else "mistakes"
    st.markdown(f"**{len(rows):,}** examples of **{md(gold)}** predicted as **{md(pred)}** ({verdict}), most confident first.")
    if rows.empty:
        st.caption("This cell is empty.")
    else:
        st.caption("Select a row to open it in the Playground.")
        open_in_playground(rows, "evaluate_cell", model_dir, height=min(420, 38 + 35 * min(len(rows), 11)))


def show_errors(result: ev.EvalResult, model_dir: str) -> None:
    names = result.label_names
    st.subheader("Error browser")
    c = st.columns(2)
    show = c[0].radio("Examples", SHOW, key="evaluate_err_show", horizontal=True)
    sort = c[1].selectbox("Sort", list(ev.SORTS), key="evaluate_err_sort",
                          help="Loss is high when the model gave the gold class a low probability: confident mistakes "
                               "come first. Least confident first shows the borderline cases.")
    c = st.columns(2)
    gold = c[0].multiselect("Gold label", names, key="evaluate_err_gold", placeholder="any gold label")
    pred = c[1].multiselect("Predicted label", names, key="evaluate_err_pred", placeholder="any predicted label")
    rows = ev.filter_predictions(result.predictions, errors_only=show == SHOW[0], gold=gold, pred=pred, sort=sort)
    n_err = int((~result.predictions["correct"].astype(bool)).sum())
    st.caption(f"{len(rows):,} examples match ({n_err:,} of {len(result.predictions):,} are misclassified). "
               "Select a row to open it in the Playground.")
    if rows.empty:
        st.info("No examples match these filters.")
        return
    open_in_playground(rows, "evaluate_errors", model_dir, height=420)


def open_in_playground(rows: pd.DataFrame, key: str, model_dir: str, **table_kwargs) -> None:
    """The examples as a selectable table, and a button that opens the chosen one, with its gold label, in the Playground."""
    shown = rows.head(MAX_ROWS)
    pick_key = f"{key}_open_row"
    show_examples(shown, f"{key}_table", total=len(rows), on_select=partial(on_row_pick, f"{key}_table", pick_key),
                  selection_mode="single-row", **table_kwargs)
    options = list(range(len(shown)))
    if st.session_state.get(pick_key) not in options:
        st.session_state[pick_key] = 0
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Example", options, key=pick_key,
                        format_func=lambda i: f"#{i + 1} · {shown.iloc[i]['gold']} → {shown.iloc[i]['pred']} · "
                                              f"{preview(shown.iloc[i]['text'])}")
    if c2.button("Open in the Playground", key=f"{key}_open", icon=":material/chat:"):
        row = shown.iloc[pick]
        st.session_state["playground_text"] = str(row["text"])
        if "text_pair" in shown:
            st.session_state["playground_text_pair"] = str(row["text_pair"])
        st.session_state["playground_gold"] = str(row["gold"])
        st.session_state["playground_model"] = model_dir
        st.switch_page("pages/playground.py")


def show_per_class(result: ev.EvalResult) -> None:
    names = result.label_names
    st.subheader("Per class")
    frame = ev.per_class_frame(result.metrics)
    fig = px.bar(frame.assign(**{"class": plot_texts(frame["class"])}), x="class", y="value", color="metric",
                 barmode="group", range_y=(0, 1.05), color_discrete_map=METRIC_COLORS, hover_data={"support": True},
                 category_orders={"class": plot_texts(names)}, labels={"value": "score", "class": "", "metric": ""},
                 title="Precision, recall and F1 per class")
    fig.update_xaxes(**axis_style(len(names), names))
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
                      margin={"t": 60})
    st.plotly_chart(fig, key="evaluate_per_class_chart")


def show_curves(path: str, mtime: float, result: ev.EvalResult) -> None:
    data = curves(path, mtime)
    if not data:
        st.caption("ROC and PR curves need gold examples of at least two classes.")
        return
    roc = pd.DataFrame([{"class": f"{plot_text(n)} (AUC {c['roc']['auc']:.3f})", "false positive rate": x, "true positive rate": y}
                        for n, c in data.items() for x, y in zip(c["roc"]["fpr"], c["roc"]["tpr"], strict=True)])
    pr = pd.DataFrame([{"class": f"{plot_text(n)} (AP {c['pr']['ap']:.3f})", "recall": x, "precision": y}
                       for n, c in data.items() for x, y in zip(c["pr"]["recall"], c["pr"]["precision"], strict=True)])
    palette = px.colors.qualitative.Plotly if len(data) <= 10 else px.colors.qualitative.Alphabet
    # A vertical legend on the right never covers the axis titles, even with 20 classes.
    legend = {"title": None, "font": {"size": 11 if len(data) <= 10 else 9}, "tracegroupgap": 0}
    binary = " (positive class: " + plot_text(next(iter(data))) + ")" if len(result.label_names) == 2 else " (one class vs the rest)"
    c1, c2 = st.columns(2)
    fig = px.line(roc, x="false positive rate", y="true positive rate", color="class", color_discrete_sequence=palette,
                  title="ROC" + binary, range_x=(0, 1), range_y=(0, 1.02))
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "#9CA3AF"})
    fig.update_layout(legend=legend, height=460)
    c1.plotly_chart(fig, key="evaluate_roc_chart")
    fig = px.line(pr, x="recall", y="precision", color="class", color_discrete_sequence=palette,
                  title="Precision-recall" + binary, range_x=(0, 1), range_y=(0, 1.02))
    fig.update_layout(legend=legend, height=460)
    c2.plotly_chart(fig, key="evaluate_pr_chart")


def show_calibration(result: ev.EvalResult) -> None:
    m = result.metrics
    calib = m.get("calibration") or {}
    st.subheader("Calibration: does confidence match accuracy?")
    frame = ev.reliability_frame(m)
    if frame.empty:
        st.caption("No probabilities were saved, so there is no reliability diagram.")
        return
    left, right = st.columns([2, 1], gap="large")
    fig = go.Figure()
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "#9CA3AF"})
    for which, part in frame.groupby("which", sort=False):
        fig.add_trace(go.Scatter(
            x=part["confidence"], y=part["accuracy"], mode="lines+markers", name=which,
            line={"color": CALIB_COLORS.get(which)},
            marker={"size": 6 + 14 * (part["count"] / part["count"].max()) ** 0.5, "color": CALIB_COLORS.get(which)},
            customdata=part[["lower", "upper", "count"]],
            hovertemplate="confidence %{customdata[0]:.2f}-%{customdata[1]:.2f}<br>mean confidence %{x:.3f}"
                          "<br>accuracy %{y:.3f}<br>%{customdata[2]} examples<extra>%{fullData.name}</extra>"))
    title = f"Reliability diagram · ECE {fmt(m.get('ece'))}"
    if m.get("ece_calibrated") is not None:
        title += f" → {fmt(m['ece_calibrated'])} after temperature scaling"
    fig.update_layout(title=title, height=440, xaxis={"title": "mean confidence in bin", "range": [0, 1.02]},
                      yaxis={"title": "accuracy in bin", "range": [0, 1.02]},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"})
    left.plotly_chart(fig, key="evaluate_reliability_chart")
    with right:
        st.markdown("Points on the dotted diagonal are **calibrated**: of the examples predicted with confidence 0.8, "
                    "80% are right. Points below it mean over-confidence. Marker size is the number of examples.")
        temperature = m.get("temperature")
        if temperature:
            where = calib.get("fitted_on") or "validation"
            st.markdown(f"**Temperature scaling** divides the logits by one number, T = **{temperature:.3f}**, fitted on "
                        f"the {where} split"
                        + (" and saved with the model, so the Playground can use it." if calib.get("saved") else ".")
                        + " It changes confidences, never the predicted class.")
            before, after = calib.get("log_loss_before"), calib.get("log_loss_after")
            if before is not None and after is not None:
                st.caption(f"Log loss on this split: {before:.3f} → {after:.3f}.")
        else:
            st.caption("No temperature was fitted (the dataset has no validation split).")


def show_compare(result: ev.EvalResult, this_run: str | None, dataset: str, split: str) -> None:
    names = result.label_names
    with st.expander("Compare with another run", icon=":material/compare_arrows:"):
        others = {}
        for name, row in completed.items():
            if name == this_run:
                continue
            found = ev.find_evaluation(row["path"], dataset, split)
            if found is not None:
                others[name] = found
        if not others:
            st.caption(f"No other finished run has an evaluation on {dataset} / {split} yet. Choose one above and "
                       "evaluate it on this dataset and split, then come back here.")
            return
        other = st.selectbox("Other run", list(others), key="evaluate_compare_run", index=None,
                             placeholder="choose a run evaluated on the same split",
                             format_func=lambda n: f"{n} · from {runs.short_model(completed[n]['model'])}")
        if other is None:
            return
        path = others[other]
        try:
            theirs = load(str(path), ev.evaluation_mtime(path))
            cmp = ev.compare_runs(theirs.predictions, result.predictions, names)
        except BmcoreError as exc:
            st.error(md(exc))
            return
        st.markdown(f"Differences are **this model minus {md(other)}**: above zero, this model does better.")
        if this_run in completed:  # the base model of each, so "from base" vs "from domain-adapted" reads at a glance
            st.caption(f"This run was fine-tuned from {md_code(runs.short_model(completed[this_run]['model']))}; "
                       f"{md(other)} from {md_code(runs.short_model(completed[other]['model']))}.")
        c = st.columns(4)
        c[0].metric("Accuracy", fmt(cmp["accuracy_b"]), delta(cmp["accuracy_b"], cmp["accuracy_a"], f"vs {md(other)}"))
        c[1].metric("Macro F1", fmt(cmp["f1_macro_b"]), delta(cmp["f1_macro_b"], cmp["f1_macro_a"], f"vs {md(other)}"))
        c[2].metric("Now wrong (were right)", f"{cmp['num_right_to_wrong']:,}")
        c[3].metric("Now right (were wrong)", f"{cmp['num_wrong_to_right']:,}")
        c1, c2 = st.columns(2)
        shown = plot_text(other)  # the run's name in charts
        diffs = pd.DataFrame([{"class": plot_text(n), "F1 difference": v["f1_diff"], "this": v["f1_b"], shown: v["f1_a"]}
                              for n, v in cmp["per_class"].items()])
        diffs["better"] = diffs["F1 difference"].map(lambda d: "this model" if d > 0 else shown if d < 0 else "same")
        fig = px.bar(diffs, x="class", y="F1 difference", color="better", title="Per-class F1: this minus " + shown,
                     color_discrete_map={"this model": "#2563EB", shown: "#DC2626", "same": "#9CA3AF"},
                     category_orders={"class": plot_texts(names)}, hover_data={"this": ":.3f", shown: ":.3f", "better": False},
                     labels={"class": ""})
        fig.update_xaxes(**axis_style(len(names), names))
        fig.update_layout(showlegend=False)
        c1.plotly_chart(fig, key="evaluate_compare_f1_chart")
        z = cmp["confusion_diff"]["matrix"]
        k = len(names)
        # Colour says who the cell favours: more on the diagonal is good, more off it is bad; the text is the raw difference.
        good = [[v if i == j else -v for j, v in enumerate(row)] for i, row in enumerate(z)]
        span = max(1, max(abs(v) for row in z for v in row))
        fig = go.Figure(go.Heatmap(z=good, x=plot_texts(names), y=plot_texts(names), colorscale="RdBu", zmid=0, zmin=-span, zmax=span,
                                   text=[[f"{v:+d}" for v in row] for row in z], texttemplate="%{text}" if k <= 12 else None,
                                   textfont={"size": 14 if k <= 6 else 10}, showscale=False,
                                   hovertemplate="gold %{y} → predicted %{x}<br>%{text} examples<extra></extra>"))
        fig.update_layout(title="Confusion matrix: this minus " + shown, height=min(900, max(380, 140 + 34 * k)))
        fig.update_xaxes(title="predicted", **axis_style(k, names))
        fig.update_yaxes(title="gold", autorange="reversed", **axis_style(k, names))
        c2.plotly_chart(fig, key="evaluate_compare_cm_chart")
        st.caption("Blue is in this model's favour (a class F1 that rose; more right answers on the diagonal, fewer "
                   "of a mistake off it), red against it. The numbers are this model's counts minus the other's.")
        columns = {**TABLE_COLUMNS,
                   "pred_a": st.column_config.TextColumn(f"{other} predicted"),
                   "pred_b": st.column_config.TextColumn("this predicted"),
                   "confidence_a": st.column_config.NumberColumn(f"{other} confidence", format="%.2f"),
                   "confidence_b": st.column_config.NumberColumn("this confidence", format="%.2f")}
        t1, t2 = st.tabs([f"Right → wrong ({cmp['num_right_to_wrong']:,})", f"Wrong → right ({cmp['num_wrong_to_right']:,})"])
        for tab, key, frame in ((t1, "evaluate_compare_r2w", cmp["right_to_wrong"]),
                                (t2, "evaluate_compare_w2r", cmp["wrong_to_right"])):
            if frame.empty:
                tab.caption("None.")
            else:
                tab.dataframe(frame.head(MAX_ROWS), column_config=columns, key=key, hide_index=True)


def show_metrics(result: ev.EvalResult) -> None:
    m = result.metrics
    base = m.get("baseline") or {}
    c = st.columns(4)
    c[0].metric("Accuracy", fmt(m["accuracy"]), delta(m["accuracy"], base.get("accuracy")),
                help="Share of examples predicted right.")
    c[1].metric("Baseline accuracy", fmt(base.get("accuracy")), help="TF-IDF + logistic regression, trained on the same "
                "train split and scored on the same examples.")
    c[2].metric("Macro F1", fmt(m["f1_macro"]), delta(m["f1_macro"], base.get("f1_macro")),
                help="The mean of the per-class F1 scores: every class counts the same, however rare.")
    c[3].metric("Baseline macro F1", fmt(base.get("f1_macro")))
    c = st.columns(4)
    c[0].metric("ECE", fmt(m.get("ece")), help="Expected calibration error: the average gap between confidence and "
                "accuracy over confidence bins (0 is perfect).")
    c[1].metric("ECE, calibrated", fmt(m.get("ece_calibrated")),
                delta(m.get("ece_calibrated"), m.get("ece"), "") if m.get("ece_calibrated") is not None else None,
                delta_color="inverse", help="After temperature scaling, fitted on the validation split. Lower is better.")
    c[2].metric("ROC-AUC (macro)", fmt(m.get("roc_auc_macro")), help="One class against the rest, averaged over classes.")
    c[3].metric("Log loss", fmt(m.get("log_loss")), help="Mean cross-entropy of the gold class (lower is better).")
    cm = m.get("confusion_matrix") or {}
    if note := ev.missed_classes_note(ev.missed_classes(cm.get("matrix") or [], cm.get("labels") or []), m.get("split", "")):
        st.warning(md(note), icon=":material/warning:")
    if not base:
        st.caption("No baseline: the dataset has no train split to train it on.")
    for note in m.get("notes") or []:
        st.caption(md(note))


def show_export(run_dir: Path) -> None:
    st.subheader("Export")
    st.markdown("Take the model away: a **zip** of its folder, which `transformers.pipeline` loads once unzipped, with a "
                "**model card** (README.md: data, settings, test metrics against the baseline); or **ONNX** for ONNX "
                "Runtime, checked against PyTorch on the test split; or push it to the **Hugging Face Hub**.")
    st.code(shlex.join(ex.export_command(run_dir, ["zip", "onnx"])), language="bash")
    row = st.container(horizontal=True)
    # Callables: the zip is built, and the ONNX file read, only when a button is clicked.
    row.download_button("Model (zip)", lambda: ex.export_zip(run_dir).read_bytes(), key="evaluate_export_zip",
                        file_name=ex.zip_path(run_dir).name, mime="application/zip", on_click="ignore",
                        icon=":material/folder_zip:")
    row.download_button("Model card (README.md)", lambda: ex.model_card(run_dir), key="evaluate_export_card",
                        file_name="README.md", mime="text/markdown", on_click="ignore", icon=":material/description:")
    onnx = ex.read_onnx_export(run_dir)
    if onnx is None:
        job = jobs.latest("export-onnx", str(run_dir))
        if job is not None and jobs.read(job)["state"] in runs.ACTIVE:
            show_job(job, "evaluate_onnx")
        else:
            job_outcome(job, "The last ONNX export")
            if row.button("Export to ONNX and check it", key="evaluate_export_onnx", icon=":material/memory:"):
                start_job("export-onnx", {"run_dir": str(run_dir)}, str(run_dir))
    else:
        path = onnx.path
        row.download_button("ONNX (model.onnx)", lambda: path.read_bytes(), key="evaluate_export_onnx_download",
                            file_name=ex.ONNX_FILE, mime="application/octet-stream", on_click="ignore",
                            icon=":material/download:")
        (st.success if onnx.passed else st.error)(md(ex.parity_summary(onnx.parity) + f". The tokenizer and config are in "
                                                     f"{path.parent}."))
    with st.expander("Push to the Hugging Face Hub", icon=":material/cloud_upload:"):
        c1, c2 = st.columns(2)
        repo = c1.text_input("Repository (owner/name)", key="evaluate_hub_repo", placeholder=f"your-user/{run_dir.name}")
        token = c2.text_input("Write token", type="password", key="evaluate_hub_token",
                              help="A token with write access (huggingface.co/settings/tokens). Empty: HF_TOKEN.")
        private = st.checkbox("Private repository", value=True, key="evaluate_hub_private")
        job = jobs.latest("push", str(run_dir))
        info = jobs.read(job) if job is not None else None
        if info is not None and info["state"] in runs.ACTIVE:
            show_job(job, "evaluate_hub")
        elif info is not None and info["state"] == runs.COMPLETED and info["result"]:
            st.success(f"Pushed to {md(info['result'].get('url'))}")
        else:
            job_outcome(job, "The last push")
        if st.button("Push", key="evaluate_hub_push", icon=":material/upload:"):
            try:  # offline, no token or a malformed repo id: one line at once, before any job starts
                repo, secret = ex.check_hub(repo, token or None)
            except BmcoreError as exc:
                st.error(md(exc))
            else:  # the token reaches the job's process in its environment; it is never written to disk
                start_job("push", {"run_dir": str(run_dir), "repo_id": repo, "private": private}, str(run_dir),
                          env={"HF_TOKEN": secret})


def start_job(kind: str, params: dict, key: str, env: dict | None = None) -> None:
    try:
        jobs.start(kind, params, key, env=env)
    except (BmcoreError, OSError) as exc:
        st.error(md(exc))
    else:
        st.rerun()


# --- page ---------------------------------------------------------------------------------

st.title("Evaluate")
st.markdown(
    "Evaluation scores a trained model on the **test split**, which was locked away during training, so the score is "
    "honest. Every result sits next to a **baseline**, TF-IDF word counts with logistic regression trained on the same "
    "data in seconds: if the transformer does not beat it clearly, fine-tuning was not worth it. **Accuracy** counts "
    "right answers; on imbalanced data it can look high while a rare class is always missed, so **macro F1**, the mean "
    "F1 over classes, is the number to watch. The **confusion matrix** (rows gold, columns predicted) shows which "
    "classes are mixed up. **Calibration** asks whether a confidence of 0.9 means right 90% of the time; the expected "
    "calibration error (**ECE**) measures the gap, and **temperature scaling**, fitted on the validation split, closes it."
)

datasets = list_prepared()
dataset_names = [d["name"] for d in datasets]
# Pretraining (mlm) runs have no classifier to score; fine-tunes from them are listed with their base model.
completed = {r.name: {"path": r.path, "dataset": r.dataset, "model": r.model} for r in runs.list_runs()
             if r.state == runs.COMPLETED and r.task != "mlm" and (Path(r.path) / runs.MODEL_DIR).is_dir()}
if not dataset_names:
    st.info("No prepared datasets in the workspace yet: prepare one on the Data page, then train a model.")
    st.page_link("pages/data.py", label="Go to the Data page", icon=":material/table_chart:")
    st.stop()

st.subheader("Model and data")
c1, c2, c3 = st.columns([1.4, 1, 0.6])
source = c1.radio("Model", SOURCES, key="evaluate_source", horizontal=True)
this_run: str | None = None
run_dataset: str | None = None
model_dir = ""
# Every input is drawn before any st.stop(): a widget skipped for one run loses its state, and the browser can then
# show a different choice from the one the page uses.
if source == SOURCES[0]:
    if completed:
        this_run = c1.selectbox("Finished run", list(completed), key="evaluate_run", on_change=on_run_change)
        model_dir = str(Path(completed[this_run]["path"]) / runs.MODEL_DIR)
        run_dataset = completed[this_run]["dataset"]
    else:
        c1.info("No finished runs yet: train one on the Train page, or give a local model folder.")
else:
    model_dir = c1.text_input("Path to a fine-tuned model folder (save_pretrained, safetensors)",
                              key="evaluate_model_path").strip()
if st.session_state.get("evaluate_dataset") not in dataset_names:
    st.session_state["evaluate_dataset"] = run_dataset if run_dataset in dataset_names else dataset_names[0]
dataset = c2.selectbox("Prepared dataset", dataset_names, key="evaluate_dataset")
meta = datasets[dataset_names.index(dataset)]
sizes = meta.get("splits", {})
split_options = [s for s in SPLITS if sizes.get(s, 1)] or list(SPLITS)
if st.session_state.get("evaluate_split") not in split_options:
    st.session_state["evaluate_split"] = "test" if "test" in split_options else split_options[0]
split = c3.selectbox("Split", split_options, key="evaluate_split",
                     help="test is the honest score. validation was used to pick the best checkpoint and fit the temperature.")
c2.caption(f"{len(meta.get('label_names', []))} classes · " + " / ".join(f"{sizes.get(s, 0):,} {s}" for s in SPLITS))
if not model_dir:
    if source == SOURCES[0]:
        st.page_link("pages/train.py", label="Go to the Train page", icon=":material/model_training:")
    else:
        st.info("Give the path of a model folder.")
    st.stop()

try:
    ev.check_labels(ev.model_label_names(model_dir), list(meta.get("label_names", [])))
    out_dir = ev.evaluation_dir(model_dir, dataset, split, run_dataset)
except BmcoreError as exc:
    fail(exc)

cli_out = out_dir.relative_to(Path.cwd()) if out_dir.is_relative_to(Path.cwd()) else out_dir
st.caption("The same evaluation from a terminal (with this workspace in BMCORE_WORKSPACE):")
st.code(shlex.join(["python", "-m", "bmcore", "evaluate", "--model", model_dir]) + " \\\n    "
        + shlex.join(["--data", dataset, "--split", split, "--out", str(cli_out)]), language="bash")

if not ev.is_fresh(out_dir, model_dir, dataset_dir(dataset)):
    # Scoring runs as a background job on the device queue: the page only draws its progress.
    job = jobs.latest("evaluate", str(out_dir))
    if job is not None and jobs.read(job)["state"] in runs.ACTIVE:
        show_job(job, "evaluate")
        st.stop()
    n = sizes.get(split, 0)
    extra = sizes.get("validation", 0) if split != "validation" else 0
    st.info(f"This model has not been scored on {md(dataset)} / {split} yet: {n:,} examples"
            + (f", plus {extra:,} validation examples to fit the temperature" if extra else "")
            + ". The result is saved, so next time it opens at once.")
    job_outcome(job, "The last scoring")
    if st.button("Evaluate", type="primary", key="evaluate_start", icon=":material/play_arrow:"):
        try:
            jobs.start("evaluate", {"model_dir": model_dir, "dataset": dataset, "split": split, "out_dir": str(out_dir),
                                    "precision": st.session_state.get("precision", "auto")}, key=str(out_dir))
        except (BmcoreError, OSError) as exc:
            fail(exc)
        st.rerun()
    st.stop()

mtime = ev.evaluation_mtime(out_dir)
try:
    result = load(str(out_dir), mtime)
except BmcoreError as exc:
    fail(exc)

m = result.metrics
st.subheader("How good is it?")
st.caption(f"{m.get('n', len(result.predictions)):,} {split} examples of {md(dataset)} · {len(result.label_names)} classes · "
           f"scored {m.get('created', '')} in {m.get('precision') or '-'} · max_seq_length {m.get('max_seq_length') or '-'}"
           + (f" · {m['truncated']:,} texts truncated" if m.get("truncated") else ""))
show_metrics(result)
downloads = st.container(horizontal=True)
downloads.download_button("Predictions (CSV)", (out_dir / ev.PREDICTIONS_FILE).read_bytes(), key="evaluate_download_csv",
                   file_name=f"predictions-{dataset}-{split}.csv", mime="text/csv", icon=":material/download:")
downloads.download_button("Metrics (JSON)", json.dumps(m, indent=2), key="evaluate_download_json",
                   file_name=f"metrics-{dataset}-{split}.json", mime="application/json", icon=":material/download:")

show_confusion(result, model_dir)
show_errors(result, model_dir)
show_gold_check(result.predictions, dataset, split)
show_per_class(result)
show_curves(str(out_dir), mtime, result)
show_calibration(result)
show_compare(result, this_run, dataset, split)
if this_run is not None:
    show_export(Path(completed[this_run]["path"]))
