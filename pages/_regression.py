"""The Evaluate page's results for a regression model (a score per example), section by section: the headline scores
beside the baseline, the predicted-against-gold scatter whose selected points list their examples, the error by gold
range, the error browser and the comparison with another run. :data:`DRAWERS` maps the section keys of
:attr:`bmcore.tasks.regression.Regression.evaluate_sections` to them; their content comes from
:mod:`bmcore.report.regression`. No confusion matrix, calibration or per-class view: a score has none."""

import streamlit as st

from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.report import evaluation as rev
from bmcore.report import regression as rr
from pages import _charts as charts
from pages._evaluation import TABLE_COLUMNS, Scored, compared, show_examples, show_summary_end
from pages._ui import show_tiles

SCORE_COLUMNS = {
    **TABLE_COLUMNS,
    "gold": st.column_config.NumberColumn("gold", format="%.3f", width="small"),
    "pred": st.column_config.NumberColumn("predicted", format="%.3f", width="small"),
    "error": st.column_config.NumberColumn("error", format="%+.3f", width="small", help="Predicted minus gold."),
    "abs_error": st.column_config.NumberColumn("|error|", format="%.3f", width="small",
                                               help="How far the prediction is from gold, either way."),
    "truncated": st.column_config.CheckboxColumn("truncated", width="small",
                                                 help="The text was cut at max_seq_length before scoring."),
}
COMPARE_COLUMNS = {**SCORE_COLUMNS, "pred_b": st.column_config.NumberColumn("this predicted", format="%.3f"),
                   "change": st.column_config.NumberColumn("|error| change", format="%+.3f",
                                                           help="This model's absolute error minus the other's.")}


def show_summary(s: Scored) -> None:
    m = s.result.metrics
    st.subheader("How good is it?")
    st.markdown(rr.INTRO)
    st.caption(rev.evaluation_caption(m, len(s.result.predictions), 1, s.dataset, s.split, "score"))
    show_tiles(rr.regression_tiles(m))
    show_summary_end(s)


def show_scatter(s: Scored) -> None:
    st.subheader("Predicted against gold")
    st.markdown(rr.SCATTER_TEXT)
    try:
        points = rr.scatter_frame(s.result.predictions)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    if len(points) < len(s.result.predictions):
        st.caption(f"An even sample of {len(points):,} of {len(s.result.predictions):,} examples is drawn.")
    event = st.plotly_chart(charts.score_scatter_figure(points, rr.scatter_range(points)), key="evaluate_scatter_chart",
                            on_select="rerun", selection_mode=("points", "box", "lasso"))
    rows = rr.selected_rows(((event or {}).get("selection") or {}).get("points"))
    if not rows:
        st.info("Select points in the chart to list their examples here, largest error first.")
        return
    st.markdown(f"**{len(rows):,}** selected examples, largest error first.")
    show_examples(rr.example_table(s.result.predictions, rows), "evaluate_scatter_table", column_config=SCORE_COLUMNS)


def show_error_by_range(s: Scored) -> None:
    st.subheader("Where is it off?")
    frame = rr.error_range_frame(s.result.metrics)
    if frame.empty:
        st.caption("No error by range was saved with this evaluation; evaluate the model again to see it.")
        return
    st.markdown(rr.RANGE_TEXT)
    st.plotly_chart(charts.error_range_figure(frame), key="evaluate_range_chart")
    if text := rr.bias_text(s.result.metrics):
        st.caption(text)


def show_errors(s: Scored) -> None:
    st.subheader("Error browser")
    bounds = rr.gold_bounds(s.result.predictions)
    c1, c2 = st.columns(2)
    sort = c1.selectbox("Sort", list(rr.SORTS), key="evaluate_score_sort",
                        help="Largest error first lists the worst misses either way; the signed orders separate "
                             "scores predicted too high from those predicted too low.")
    span = None
    if bounds is not None and bounds[1] > bounds[0]:
        # A range kept from another evaluation may lie outside this one's scores: the slider would refuse it.
        st.session_state["evaluate_score_range"] = rr.range_state(st.session_state.get("evaluate_score_range"), bounds)
        span = c2.slider("Gold score between", bounds[0], bounds[1], key="evaluate_score_range")
    rows = rr.example_table(s.result.predictions, sort=sort, gold_range=span)
    st.caption(f"{len(rows):,} of {len(s.result.predictions):,} examples.")
    if rows.empty:
        st.info("No examples have a gold score in this range.")
        return
    show_examples(rows, "evaluate_score_errors_table", column_config=SCORE_COLUMNS, height=420)


def show_compare(s: Scored) -> None:
    with st.expander("Compare with another run", icon=":material/compare_arrows:"):
        if (got := compared(s, rr.compare_runs, rr.compare_tiles)) is None:
            return
        cmp, other = got
        columns = {**COMPARE_COLUMNS, "pred_a": st.column_config.NumberColumn(f"{other} predicted", format="%.3f")}
        t1, t2 = st.tabs([f"Further from gold ({len(cmp['worse']):,})", f"Closer to gold ({len(cmp['better']):,})"])
        for tab, key, frame in ((t1, "evaluate_compare_worse", cmp["worse"]), (t2, "evaluate_compare_better", cmp["better"])):
            with tab:
                if frame.empty:
                    st.caption("None.")
                else:
                    show_examples(frame, key, column_config=columns)


# The regression sections by key (the task names them, in its order).
DRAWERS = {"score_summary": show_summary, "score_scatter": show_scatter, "error_by_range": show_error_by_range,
           "score_errors": show_errors, "score_compare": show_compare}
