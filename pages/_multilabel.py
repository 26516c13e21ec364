"""The Evaluate page's results for a multi-label classifier, section by section: the headline scores beside the
baseline, what the tuned per-label thresholds gained, the per-label table, the per-label confusion grid with the
examples of a chosen cell, the error browser and the comparison with another run. :data:`DRAWERS` maps the section keys
of :attr:`bmcore.tasks.multi_label_classification.MultiLabelClassification.evaluate_sections` to them."""

from functools import partial

import streamlit as st

from bmcore import compare
from bmcore.display import md, plot_text
from bmcore.errors import BmcoreError
from bmcore.report import evaluation as rev
from bmcore.report import examples as rex
from pages import _charts as charts
from pages._evaluation import (
    SET_COLUMNS,
    Scored,
    compared,
    open_in_playground,
    show_errors,
    show_flips,
    show_summary_end,
)
from pages._ui import show_tiles

MAX_GRID = 36  # labels drawn in the confusion grid at once (the most frequent); any label can be picked below it
CELLS = list(rex.LABEL_CELLS)
PER_LABEL_COLUMNS = {
    "label": st.column_config.TextColumn("label"),
    **{k: st.column_config.NumberColumn(k, format="%.3f") for k in ("precision", "recall", "f1")},
    "support": st.column_config.NumberColumn("support", help="Gold examples with this label."),
    "predicted": st.column_config.NumberColumn("predicted", help="Examples the model gave this label."),
    "threshold": st.column_config.NumberColumn("threshold", format="%.2f",
                                               help="The score this label needs to be predicted."),
    "roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f"),
    "pr_auc": st.column_config.NumberColumn("PR-AUC", format="%.3f"),
}


def show_summary(s: Scored) -> None:
    m = s.result.metrics
    st.subheader("How good is it?")
    st.markdown("This model is **multi-label**: each text can carry several labels, and the model answers yes or no "
                "for every label. **Micro F1** pools every yes/no decision, so frequent labels weigh most; **macro F1** "
                "averages the labels, so a rare label counts as much as a common one; **samples F1** scores each "
                "example's set. **Subset accuracy** is strict (the whole set must be right); the **Hamming loss** is "
                "the share of single label decisions that are wrong.")
    st.caption(rev.evaluation_caption(m, len(s.result.predictions), len(s.result.label_names), s.dataset, s.split,
                                         "labels"))
    for row in rev.multi_label_tiles(m):
        show_tiles(row)
    show_summary_end(s)


def show_thresholds(s: Scored) -> None:
    st.subheader("Tuned thresholds against a flat 0.5")
    st.markdown(rev.THRESHOLD_TEXT)
    show_tiles(rev.threshold_tiles(s.result.metrics))
    st.caption(rev.thresholds_caption(s.result.metrics))


def show_per_label(s: Scored) -> None:
    st.subheader("Per label")
    table = rex.per_label_table(s.result.metrics)
    st.dataframe(table, column_config=PER_LABEL_COLUMNS, hide_index=True, key="evaluate_per_label_table")
    st.plotly_chart(charts.per_class_figure(rex.per_class_frame(s.result.metrics), s.result.label_names),
                    key="evaluate_per_class_chart")


def on_cell_click(names: list[str]) -> None:
    # Heatmap cells cannot be selected in Streamlit: an invisible marker on each carries [label index, cell].
    state = st.session_state.get("evaluate_lcm_chart") or {}
    points = (state.get("selection") or {}).get("points") or []
    if points and points[0].get("customdata"):
        i, cell = points[0]["customdata"][:2]
        st.session_state["evaluate_lcell_label"] = names[int(i)]
        st.session_state["evaluate_lcell_cell"] = cell


def show_label_confusion(s: Scored) -> None:
    names, m = s.result.label_names, s.result.metrics
    matrices = m["label_confusion"]["matrices"]
    st.subheader("Which labels does it miss or add?")
    st.markdown("Each small matrix is one label: rows say whether the gold set has it, columns whether the model "
                "predicted it. **False negatives** (yes, no) are labels missed, **false positives** (no, yes) labels "
                "added. Click a cell, or pick a label and a cell below, to list its examples.")
    if st.session_state.get("evaluate_lcell_label") not in names:
        st.session_state["evaluate_lcell_label"] = None  # labels of another evaluation
    chart = st.container()
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    label = c1.selectbox("Label", names, key="evaluate_lcell_label", index=None, placeholder="choose a label")
    cell = c2.radio("Cell", CELLS, key="evaluate_lcell_cell", horizontal=True,
                    format_func=lambda c: rex.LABEL_CELLS[c][0])
    support = [int(x[1][0] + x[1][1]) for x in matrices]
    shown = sorted(sorted(range(len(names)), key=lambda i: -support[i])[:MAX_GRID])
    chart.plotly_chart(charts.label_confusion_figure(matrices, names, shown), key="evaluate_lcm_chart",
                       on_select=partial(on_cell_click, names), selection_mode=("points",),
                       config={"displayModeBar": False})
    if len(shown) < len(names):
        chart.caption(f"The {len(shown)} most frequent of {len(names)} labels; pick any label below.")
    if label is None:
        st.info("Click a cell of a label's matrix, or choose a label above, to list its examples.")
        return
    try:
        rows = rex.label_cell_examples(s.result.predictions, label, cell)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    st.markdown(f"**{len(rows):,}** {rex.LABEL_CELLS[cell][0]} of **{md(label)}**, most confident first.")
    if rows.empty:
        st.caption("This cell is empty.")
        return
    st.caption("Select a row to open it in the Playground.")
    open_in_playground(rex.shown_sets(rows), "evaluate_lcell", s.model_dir, column_config=SET_COLUMNS,
                       height=min(420, 38 + 35 * min(len(rows), 11)))


def show_multi_label_compare(s: Scored) -> None:
    names = s.result.label_names
    with st.expander("Compare with another run", icon=":material/compare_arrows:"):
        if (got := compared(s, compare.compare_multi_label_runs, rev.multi_label_compare_tiles)) is None:
            return
        cmp, other = got
        shown = plot_text(other)  # the run's name in charts
        st.plotly_chart(charts.f1_diff_figure(rev.f1_diff_frame(cmp, shown), names, shown),
                        key="evaluate_compare_f1_chart")
        st.caption("Blue is a label whose F1 rose with this model, red one that fell. Below: the examples whose whole "
                   "label set went from right to wrong, or back.")
        show_flips(cmp, other, rex.shown_sets)


# The multi-label sections by key (the task names them, in its order).
DRAWERS = {"label_summary": show_summary, "thresholds": show_thresholds, "per_label": show_per_label,
           "label_confusion": show_label_confusion, "label_errors": partial(show_errors, multi=True),
           "label_compare": show_multi_label_compare}
