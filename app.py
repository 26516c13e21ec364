"""bmcore studio: the frame. Page config, the pages, and the shared sidebar (workspace, device, precision)."""

import os
import sys
from dataclasses import replace

import streamlit as st

from bmcore import limits
from bmcore.device import PRECISIONS, detect_device, select_precision
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.workspace import workspace_dir

st.set_page_config(page_title="bmcore studio", page_icon="🧪", layout="wide")


def _copy_secrets() -> None:
    # Hosts (Community Cloud, Spaces) set BMCORE_* limits as secrets; the engine reads them from the environment.
    try:
        items = {k: v for k, v in st.secrets.items() if k.startswith("BMCORE_") and isinstance(v, (str, int, float, bool))}
    except (FileNotFoundError, OSError, ValueError, KeyError):
        return  # no secrets file: nothing to copy
    for k, v in items.items():
        os.environ.setdefault(k, str(int(v)) if isinstance(v, bool) else str(v))


_copy_secrets()


@st.cache_resource(show_spinner="Detecting the compute device...")
def _device():
    # detect_device imports torch; do it once per server, not once per rerun.
    return detect_device()


pages = [
    st.Page("pages/data.py", title="Data", icon=":material/table_chart:", default=True),
    st.Page("pages/pretrain.py", title="Pretrain", icon=":material/auto_stories:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/playground.py", title="Playground", icon=":material/chat:"),
]
# The menu is drawn below with page links: client.showSidebarNavigation = false in .streamlit/config.toml hides
# Streamlit's own, which would otherwise list the raw pages/ file names while this script is still starting.
nav = st.navigation(pages)
st.session_state["_bmcore_frame"] = True  # see pages/_ui.require_frame
_next = st.session_state.pop("_bmcore_next_page", None)
if _next:
    st.switch_page(_next)

with st.sidebar:
    for page in pages:
        st.page_link(page)
    st.caption("Prepare data → train → evaluate → try it in the playground.")
    try:
        workspace = workspace_dir()
    except OSError as exc:
        st.error(f"cannot use the workspace folder: {exc.strerror}; set BMCORE_WORKSPACE to a writable folder")
        st.stop()
    st.markdown(f"**Workspace**  \n`{workspace}`")
    try:
        lim = limits.current()
    except BmcoreError as exc:
        st.error(md(exc))
        st.stop()
    if lim.any:
        st.caption(lim.describe())
    device_box = st.container()


def _show_device() -> None:
    device = _device()
    requested = st.selectbox("Precision", PRECISIONS, key="precision",
                             help="auto picks bf16 on GPUs and CPUs that support it, fp16 on older GPUs, else fp32.")
    try:
        precision, notice = select_precision(requested, device)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    st.markdown(f"**Device**  \n{replace(device, precision=precision).label}")
    st.caption(device.reason_for(precision))
    if notice:
        st.warning(notice)


# Pages read only the requested precision (st.session_state["precision"]). Detecting the device imports torch:
# on a server's first run that is seconds, so the device is then drawn after the page (in `finally`, as a page
# ends its run early with st.stop() or st.rerun()) rather than keep the first screen blank. Later runs draw it first.
late = "torch" not in sys.modules
if not late:
    with device_box:
        _show_device()
try:
    nav.run()
finally:
    if late:
        with device_box:
            _show_device()
