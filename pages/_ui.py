"""Small pieces the pages share: cached engine objects and the workspace listings."""

import streamlit as st

from bmcore.data import prepared_frame
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
        st.markdown("Runs in the workspace: " + ", ".join(f"`{r}`" for r in runs))
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
