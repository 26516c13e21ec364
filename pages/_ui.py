"""Small pieces the pages share: cached engine objects and the workspace listings."""

from pathlib import Path

import streamlit as st

from bmcore import runs
from bmcore.data import prepared_frame
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.models import load_tokenizer
from bmcore.workspace import runs_dir


@st.cache_resource(show_spinner="Loading the tokenizer...", max_entries=4)
def tokenizer(ref: str):
    """A tokenizer, loaded once per server (read-only, shared by every session)."""
    return load_tokenizer(ref)


def show_prepared_datasets() -> None:
    """The prepared datasets in the workspace as a table, or a line saying there are none."""
    table = prepared_frame()
    if table.empty:
        st.caption("No prepared datasets in the workspace yet: prepare one on the Data page.")
    else:
        st.dataframe(table, hide_index=True)


def show_runs() -> None:
    """The run folders in the workspace, by name, or a line saying there are none."""
    runs = sorted(p.name for p in runs_dir().iterdir() if p.is_dir() and not p.name.startswith("."))
    if runs:
        st.markdown("Runs in the workspace: " + ", ".join(md(r) for r in runs))
    else:
        st.caption("No training runs in the workspace yet.")


FRAME_FLAG = "_bmcore_frame"
NEXT_PAGE = "_bmcore_next_page"


def require_frame(page: str) -> None:
    """Send a session that opened a page file without the app.py frame through app.py first.

    With a pages/ folder present, Streamlit runs a page file on its own (legacy multipage
    mode) when the very first visit after a server start is a page URL such as /train.
    app.py then never ran: no sidebar, no navigation. Redirecting through app.py fixes
    that, and app.py forwards the session to the page it asked for.
    """
    if not st.session_state.get(FRAME_FLAG):
        st.session_state[NEXT_PAGE] = page
        st.switch_page("app.py")


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
            st.error(md(exc))
        else:
            st.rerun()  # a full rerun, so the live view polls again
