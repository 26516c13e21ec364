"""The runs view that Train and Pretrain share: the runs, the open run's state, progress, figures, curves and
controls, live while any run is queued or running; and the Start button under their settings."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from bmcore import queue, report, run_list, runs
from bmcore.display import md
from bmcore.errors import BmcoreError, error_line
from bmcore.report import runs_table
from bmcore.report.tracking import open_command
from pages._ui import show_tiles

BADGES = {"queued": ("gray", ":material/schedule:"), "running": ("blue", ":material/play_arrow:"),
          "completed": ("green", ":material/check_circle:"), "failed": ("red", ":material/error:"),
          "cancelled": ("orange", ":material/stop_circle:")}
POLL_S = 2  # seconds between live refreshes while a run is queued or running


@dataclass(frozen=True)
class RunsView:
    """What one page's runs view shows; the rest is the same for every page."""

    page: str  # widget-key prefix; the open run is st.session_state[f"{page}_run"]
    title: str
    no_runs: str
    tiles: Callable[[dict], list[report.Tile]]  # the live figures, from runs.progress
    curves: Callable[[Path], pd.DataFrame]
    figures: Callable[[pd.DataFrame], tuple]  # (left figure, right figure or None) from the curves
    no_curves: str  # before the first curve point
    right_key: str
    no_right: str | None  # in place of the right figure while it is None
    outcome: Callable[[Path, str], None]  # what a run that ended shows below its controls
    task: str | None = None  # only runs of this task
    table: bool = False  # the runs table above the picker


def show_curves(view: RunsView, run_dir: Path) -> None:
    frame = view.curves(run_dir)
    if frame.empty:
        st.caption(view.no_curves)
        return
    c1, c2 = st.columns(2)
    left, right = view.figures(frame)
    c1.plotly_chart(left, key=f"{view.page}_loss_chart")
    if right is not None:
        c2.plotly_chart(right, key=view.right_key)
    elif view.no_right:
        c2.caption(view.no_right)


def run_controls(run_dir: Path, state: str, page: str) -> None:
    """Cancel for a queued or running job; resume from its last checkpoint for a failed or cancelled one."""
    if state in runs.ACTIVE:
        if runs.stop_requested(run_dir):
            st.caption("Stop requested: the run saves its model and stops after the current step.")
        elif st.button("Cancel", key=f"{page}_cancel", icon=":material/stop:"):
            runs.request_stop(run_dir)
            st.rerun()
    checkpoint = runs.last_checkpoint(run_dir) if state in (runs.FAILED, runs.CANCELLED) else None
    if checkpoint is not None and st.button(f"Resume from {checkpoint.name}", key=f"{page}_resume", icon=":material/replay:"):
        try:
            runs.launch(run_dir, resume=True)
        except (BmcoreError, OSError) as exc:
            st.error(md(error_line(exc)))
        else:
            st.rerun()  # a full rerun, so the live view polls again


def show_tracking(run_dir: Path, status: dict) -> None:
    """How to open the run's TensorBoard or MLflow records, when it reports to one."""
    try:
        opened = open_command(run_dir, runs.load_run_config(run_dir), status)
    except (BmcoreError, OSError):  # a damaged config.json: the run's view says what it can without it
        return
    if opened:
        caption, command = opened
        st.caption(md(caption))  # the MLflow run id comes from status.json: data, shown as text
        st.code(command, language="bash")


def show_run(view: RunsView, run_dir: Path) -> None:
    """The live or finished view of one run."""
    try:
        p = runs.progress(run_dir)
    except BmcoreError as exc:  # a damaged status.json: say so; the list above still names every run
        st.markdown(f"#### {md(run_dir.name)}")
        st.error(md(exc))
        return
    status = p["status"]
    state = status["state"]
    color, icon = BADGES[state]
    st.markdown(f"#### {md(run_dir.name)}")
    st.badge(state, icon=icon, color=color)
    if status.get("head_notice"):
        st.info(f"Note: {md(status['head_notice'])}. The encoder keeps the checkpoint's weights.", icon=":material/info:")
    if state == runs.QUEUED:
        st.caption("Waiting for the device: another job is using it. This one starts by itself when it ends."
                   if queue.device_busy() else "Starting...")
    elif state == runs.RUNNING and status.get("phase") and status["phase"] != "training":
        st.caption(f"Running: {md(status['phase'])}...")  # status.json is data: a phase is shown as text
    if p["total_steps"]:
        st.progress(p["fraction"], text=report.progress_text(p))
    show_tiles(view.tiles(p))
    show_curves(view, run_dir)
    run_controls(run_dir, state, view.page)
    show_tracking(run_dir, status)
    if state == runs.FAILED:
        st.error(md(status.get("error") or "the run failed"))
        st.code(status.get("log_tail") or runs.log_tail(run_dir) or "(train.log is empty)", language="text")
    view.outcome(run_dir, state)


def show_runs(view: RunsView) -> None:
    """The runs and the open one's view; polls while any run is queued or running."""
    active = any(r.state in runs.ACTIVE for r in run_list.list_runs())
    run_key, pick_key = f"{view.page}_run", f"{view.page}_pick"

    def pick() -> None:
        st.session_state[run_key] = st.session_state[pick_key]

    def draw(rows: list[run_list.RunSummary]) -> None:
        st.subheader(view.title)
        if not rows:
            st.caption(view.no_runs)
            return
        if view.table:
            st.dataframe(runs_table.runs_frame(rows), hide_index=True, key=f"{view.page}_runs_table")
        names = [r.name for r in rows]
        if st.session_state.get(run_key) not in names:
            st.session_state[run_key] = names[0]
        st.session_state[pick_key] = st.session_state[run_key]
        st.selectbox("Open a run", names, key=pick_key, on_change=pick)
        show_run(view, Path(rows[names.index(st.session_state[run_key])].path))

    @st.fragment(run_every=POLL_S if active else None)
    def live() -> None:
        rows = run_list.list_runs()
        draw([r for r in rows if view.task is None or r.task == view.task])
        if active and not any(r.state in runs.ACTIVE for r in rows):
            # The last active run ended: one full rerun turns polling off. Drawn first, so that the page is
            # current even where a rerun asked from a timed fragment run is dropped (seen in the browser).
            st.rerun()

    live()


def start_button(page: str, label: str, start: Callable[[], Path]) -> None:
    """Start a run with the settings above (and open it), or say in one line why it could not start."""
    busy = any(r.state in runs.ACTIVE for r in run_list.list_runs())

    @st.fragment(run_every=POLL_S if busy else None)  # goes when that run ends, even if the page's rerun is dropped
    def queue_note() -> None:
        if any(r.state in runs.ACTIVE for r in run_list.list_runs()):
            st.caption("Another run is using the device: a new one waits in the queue and starts by itself.")

    queue_note()
    # Not an on_click callback: its args would be the settings of the previous script run, so a value typed and
    # committed by the click itself (blur) would be lost. This run already holds every committed value.
    if st.button(label, type="primary", key=f"{page}_start", icon=":material/play_arrow:"):
        try:
            st.session_state[f"{page}_run"] = start().name
        except (BmcoreError, OSError) as exc:
            st.session_state[f"{page}_start_error"] = error_line(exc)  # names the file a full disk refused
        st.rerun()  # list and open the new run at once
    if error := st.session_state.pop(f"{page}_start_error", None):
        st.error(md(error))
