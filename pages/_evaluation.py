"""The Evaluate page's results for a single-label classifier (text or images), section by section: summary,
confusions, errors, gold check, per class, curves, calibration and comparison; and what every task's sections share
(:class:`Scored`, tables, downloads, picking another run). :data:`DRAWERS` maps the section keys a task names
(:attr:`bmcore.tasks.base.Task.evaluate_sections`) to their drawing functions; multi-label and regression have their
own (pages/_multilabel.py, pages/_regression.py). The export, the same for any task, stays on the page."""

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from bmcore import compare, report, run_list
from bmcore import evaluation_files as evf
from bmcore.display import from_plot_text, md, md_code, plot_text
from bmcore.errors import BmcoreError
from bmcore.images import codec
from bmcore.report import evaluation as rev
from bmcore.report import examples as rex
from pages import _charts as charts
from pages._quality import show_gold_check
from pages._ui import show_tiles

NORMS = ("Counts", "Row-normalised")
SHOW = ("Misclassified", "All examples")
MAX_ROWS = 1000  # rows drawn in a table at once; the CSV download has them all
TABLE_COLUMNS = {
    "text": st.column_config.TextColumn("text", width=360, help="Double-click a cell to read all of it."),
    "text_pair": st.column_config.TextColumn("text pair", width=200),
    "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="%.2f",
                                                  width="small"),
    "loss": st.column_config.NumberColumn("loss", format="%.3f", width="small",
                                          help="Cross-entropy of the gold class, in nats."),
}
SET_COLUMNS = {  # a multi-label table: gold and pred are label sets shown as text
    **TABLE_COLUMNS,
    "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="%.2f", width="small",
                                                  help="How sure the yes/no decisions are, averaged over labels."),
    "loss": st.column_config.NumberColumn("loss", format="%.3f", width="small",
                                          help="Binary cross-entropy averaged over the labels, in nats."),
    "errors": st.column_config.NumberColumn("errors", width="small", help="Labels decided wrong in this example."),
    "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.2f", width="small",
                                             help="The model's score for the chosen label."),
}


@dataclass(frozen=True)
class Scored:
    """One evaluation on screen: what each results section draws from."""

    result: evf.EvalResult
    out_dir: Path
    mtime: float
    model_dir: str
    dataset: str
    split: str
    this_run: str | None
    finished: dict[str, run_list.RunSummary]  # the finished runs by name: this one and the others to compare with
    images: pd.DataFrame | None = None  # an image evaluation: the split's images by row (bmcore.report.examples.split_images)


@st.cache_data(show_spinner="Reading the evaluation...", max_entries=8)
def load(path: str, mtime: float) -> evf.EvalResult:
    # Keyed by folder and modification time: a re-scored evaluation is never served stale.
    return evf.load_eval(path)


@st.cache_data(show_spinner="Reading the images...", max_entries=2)
def split_images(path: str, split: str, created: str | None) -> pd.DataFrame:
    # Keyed by the prepared dataset's folder, split and creation time (prepared again: read again).
    return rex.split_images(path, split)


def show_gallery(s: Scored, rows: pd.DataFrame, loss: bool = False) -> None:
    """The rows of an image evaluation as thumbnails, captioned with file name, gold → predicted and confidence."""
    if len(rows) > rex.GALLERY_MAX:
        st.caption(f"Showing the first {rex.GALLERY_MAX} of {len(rows):,} images; download the predictions for all.")
    try:
        thumbs, captions = rex.gallery(s.result.predictions, rows, s.images, loss=loss)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    st.image(thumbs, caption=[md(c) for c in captions], width=codec.THUMB_PX)


@st.cache_data(show_spinner="Computing ROC and PR curves...", max_entries=8)
def curves(path: str, mtime: float) -> dict:
    result = load(path, mtime)
    return rex.roc_pr_curves(result.predictions, result.label_names)


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


def show_examples(frame: pd.DataFrame, key: str, total: int | None = None, **kwargs) -> None:
    total = len(frame) if total is None else total
    if len(frame) > MAX_ROWS:
        st.caption(f"Showing the first {MAX_ROWS:,} of {total:,} rows; download the predictions for all of them.")
    kwargs.setdefault("column_config", TABLE_COLUMNS)
    st.dataframe(frame.head(MAX_ROWS), key=key, hide_index=True, **kwargs)


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
                                              f"{report.preview(shown.iloc[i]['text'])}")
    if c2.button("Open in the Playground", key=f"{key}_open", icon=":material/chat:"):
        row = shown.iloc[pick]
        st.session_state["playground_text"] = str(row["text"])
        if "text_pair" in shown:
            st.session_state["playground_text_pair"] = str(row["text_pair"])
        st.session_state["playground_gold"] = str(row["gold"])
        st.session_state["playground_model"] = model_dir
        st.switch_page("pages/playground.py")


# --- results sections: each draws one part of a scored evaluation -----------------------------


def show_summary(s: Scored) -> None:
    m = s.result.metrics
    st.subheader("How good is it?")
    st.markdown("**Accuracy** counts right answers; on imbalanced data it can look high while a rare class is always "
                "missed, so **macro F1**, the mean F1 over classes, is the number to watch. The **confusion matrix** "
                "(rows gold, columns predicted) shows which classes are mixed up. **Calibration** asks whether a "
                "confidence of 0.9 means right 90% of the time; the expected calibration error (**ECE**) measures the "
                "gap, and **temperature scaling**, fitted on the validation split, closes it.")
    st.caption(rev.evaluation_caption(m, len(s.result.predictions), len(s.result.label_names), s.dataset, s.split))
    for row in rev.headline_tiles(m):
        show_tiles(row)
    show_summary_end(s)


def show_summary_end(s: Scored) -> None:
    """What every task's summary ends with: the warnings, a missing baseline, the scoring notes, the downloads."""
    m = s.result.metrics
    show_warnings(s)
    if not m.get("baseline"):
        st.caption("No baseline: the dataset has no train split to train it on.")
    for note in m.get("notes") or []:
        st.caption(md(note))
    show_downloads(s)


def show_warnings(s: Scored) -> None:
    """What the scores alone do not say: classes (or labels) the model never gets right, and a run that overfitted."""
    if note := report.missed_note(s.result.problem_type, s.result.metrics, s.result.metrics.get("split", "")):
        st.warning(md(note), icon=":material/warning:")
    if s.this_run in s.finished and (note := report.run_overfitting_note(s.finished[s.this_run].path)):
        st.warning(md(note), icon=":material/trending_up:")


def show_downloads(s: Scored) -> None:
    m = s.result.metrics
    downloads = st.container(horizontal=True)
    downloads.download_button("Predictions (CSV)", (s.out_dir / evf.PREDICTIONS_FILE).read_bytes(),
                              key="evaluate_download_csv", file_name=f"predictions-{s.dataset}-{s.split}.csv",
                              mime="text/csv", icon=":material/download:")
    downloads.download_button("Metrics (JSON)", json.dumps(m, indent=2), key="evaluate_download_json",
                              file_name=f"metrics-{s.dataset}-{s.split}.json", mime="application/json",
                              icon=":material/download:")


def show_confusion(s: Scored) -> None:
    names = s.result.label_names
    matrix = s.result.metrics["confusion_matrix"]["matrix"]
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
    chart.plotly_chart(charts.confusion_figure(matrix, names, norm == NORMS[1]), key="evaluate_cm_chart",
                       on_select=on_cell_click, selection_mode=("points",), config={"displayModeBar": False})
    if top := rev.top_confusions_text(s.result.metrics):
        chart.caption(top)
    if gold is None or pred is None:
        st.info("Click a cell of the matrix, or choose a gold and a predicted label above it, to list its examples.")
        return
    rows = rex.cell_examples(s.result.predictions, gold, pred)
    verdict = "correct" if gold == pred else "mistakes"
    st.markdown(f"**{len(rows):,}** examples of **{md(gold)}** predicted as **{md(pred)}** ({verdict}), most confident first.")
    if rows.empty:
        st.caption("This cell is empty.")
    elif s.images is not None:
        show_gallery(s, rows)
    else:
        st.caption("Select a row to open it in the Playground.")
        open_in_playground(rows, "evaluate_cell", s.model_dir, height=min(420, 38 + 35 * min(len(rows), 11)))


def show_errors(s: Scored, multi: bool = False) -> None:
    """The error browser; ``multi``: gold and pred are label sets (the multi-label sections register it so)."""
    names, predictions = s.result.label_names, s.result.predictions
    st.subheader("Error browser")
    if multi:
        st.caption("A multi-label example is wrong unless its whole predicted set equals the gold set; a label filter "
                   "keeps the examples whose set holds any of the chosen labels.")
    c = st.columns(2)
    show = c[0].radio("Examples", SHOW, key="evaluate_err_show", horizontal=True)
    sort = c[1].selectbox("Sort", list(rex.SORTS), key="evaluate_err_sort",
                          help="Loss is high when the model gave the gold class a low probability: confident mistakes "
                               "come first. Least confident first shows the borderline cases.")
    c = st.columns(2)
    gold = c[0].multiselect("Gold label", names, key="evaluate_err_gold", placeholder="any gold label")
    pred = c[1].multiselect("Predicted label", names, key="evaluate_err_pred", placeholder="any predicted label")
    rows = rex.filter_predictions(predictions, errors_only=show == SHOW[0], gold=gold, pred=pred, sort=sort,
                                 multi_label=multi)
    n_err = int((~predictions["correct"].astype(bool)).sum())
    st.caption(f"{len(rows):,} examples match ({n_err:,} of {len(predictions):,} are misclassified). "
               + ("" if s.images is not None else "Select a row to open it in the Playground."))
    if rows.empty:
        st.info("No examples match these filters.")
        return
    if s.images is not None:  # a gallery, in the chosen order (highest loss first: the confident mistakes)
        show_gallery(s, rows, loss=True)
    elif multi:
        open_in_playground(rex.shown_sets(rows), "evaluate_errors", s.model_dir, height=420, column_config=SET_COLUMNS)
    else:
        open_in_playground(rows, "evaluate_errors", s.model_dir, height=420)


def show_gold(s: Scored) -> None:
    show_gold_check(s.result.predictions, s.dataset, s.split)


def show_per_class(s: Scored) -> None:
    st.subheader("Per class")
    st.plotly_chart(charts.per_class_figure(rex.per_class_frame(s.result.metrics), s.result.label_names),
                    key="evaluate_per_class_chart")


def show_curves(s: Scored) -> None:
    data = curves(str(s.out_dir), s.mtime)
    if not data:
        st.caption("ROC and PR curves need gold examples of at least two classes.")
        return
    binary = (" (positive class: " + plot_text(next(iter(data))) + ")" if len(s.result.label_names) == 2
              else " (one class vs the rest)")
    roc, pr = charts.roc_pr_figures(*rev.curve_frames(data), len(data), binary)
    c1, c2 = st.columns(2)
    c1.plotly_chart(roc, key="evaluate_roc_chart")
    c2.plotly_chart(pr, key="evaluate_pr_chart")


def show_calibration(s: Scored) -> None:
    m = s.result.metrics
    st.subheader("Calibration: does confidence match accuracy?")
    frame = rex.reliability_frame(m)
    if frame.empty:
        st.caption("No probabilities were saved, so there is no reliability diagram.")
        return
    left, right = st.columns([2, 1], gap="large")
    left.plotly_chart(charts.reliability_figure(frame, m), key="evaluate_reliability_chart")
    with right:
        st.markdown("Points on the dotted diagonal are **calibrated**: of the examples predicted with confidence 0.8, "
                    "80% are right. Points below it mean over-confidence. Marker size is the number of examples.")
        text, caption = rev.calibration_text(m)
        if text is None:
            st.caption(rev.no_temperature_text(m))
        else:
            st.markdown(text)
            if caption:
                st.caption(caption)


def pick_other(s: Scored) -> tuple[str, evf.EvalResult] | None:
    """Another finished run evaluated on the same dataset and split, chosen by the user, and its evaluation."""
    others = rev.comparable_runs(s.finished, s.this_run, s.dataset, s.split)
    if not others:
        st.caption(f"No other finished run has an evaluation on {s.dataset} / {s.split} yet. Choose one above and "
                   "evaluate it on this dataset and split, then come back here.")
        return None
    other = st.selectbox("Other run", list(others), key="evaluate_compare_run", index=None,
                         placeholder="choose a run evaluated on the same split",
                         format_func=lambda n: f"{n} · from {run_list.short_model(s.finished[n].model)}")
    if other is None:
        return None
    try:
        theirs = load(str(others[other]), evf.evaluation_mtime(others[other]))
    except BmcoreError as exc:
        st.error(md(exc))
        return None
    if theirs.problem_type != s.result.problem_type:
        st.error(md(f"{other} was scored as {theirs.problem_type}, this model as {s.result.problem_type}; "
                    "compare runs of the same kind"))
        return None
    st.markdown(f"Differences are **this model minus {md(other)}**: above zero, this model does better.")
    if s.this_run in s.finished:  # the base model of each, so "from base" vs "from domain-adapted" reads at a glance
        st.caption(f"This run was fine-tuned from {md_code(run_list.short_model(s.finished[s.this_run].model))}; "
                   f"{md(other)} from {md_code(run_list.short_model(s.finished[other].model))}.")
    return other, theirs


def show_flips(cmp: dict, other: str, shown=lambda f: f) -> None:
    """The examples that went from right to wrong and back, in two tabs (``shown`` turns a frame into its display)."""
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
            tab.dataframe(shown(frame.head(MAX_ROWS)), column_config=columns, key=key, hide_index=True)


def compared(s: Scored, compare: Any, tiles: Any) -> tuple[dict, str] | None:
    """Inside the comparison expander: pick another run, ``compare`` its predictions with these, show the ``tiles``.
    Returns the comparison and the other run's name, or None (nothing picked, or a one-line error shown)."""
    picked = pick_other(s)
    if picked is None:
        return None
    other, theirs = picked
    try:
        cmp = compare(theirs.predictions, s.result.predictions, s.result.label_names)
    except BmcoreError as exc:
        st.error(md(exc))
        return None
    show_tiles(tiles(cmp, other))
    return cmp, other


def show_compare(s: Scored) -> None:
    names = s.result.label_names
    with st.expander("Compare with another run", icon=":material/compare_arrows:"):
        if (got := compared(s, compare.compare_runs, rev.compare_tiles)) is None:
            return
        cmp, other = got
        c1, c2 = st.columns(2)
        shown = plot_text(other)  # the run's name in charts
        c1.plotly_chart(charts.f1_diff_figure(rev.f1_diff_frame(cmp, shown), names, shown),
                        key="evaluate_compare_f1_chart")
        c2.plotly_chart(charts.confusion_diff_figure(cmp["confusion_diff"]["matrix"], names, shown),
                        key="evaluate_compare_cm_chart")
        st.caption("Blue is in this model's favour (a class F1 that rose; more right answers on the diagonal, fewer "
                   "of a mistake off it), red against it. The numbers are this model's counts minus the other's.")
        show_flips(cmp, other)


# A single-label classifier's sections by key (the task names them, in its order; an image model shows its examples as
# thumbnails, and its modality leaves the gold check out).
DRAWERS = {"summary": show_summary, "confusion": show_confusion, "errors": show_errors, "gold": show_gold,
           "per_class": show_per_class, "curves": show_curves, "calibration": show_calibration, "compare": show_compare}
