"""Small pieces the pages share: cached engine objects and the workspace listings."""

from pathlib import Path

import streamlit as st

from bmcore import jobs, queue, runs
from bmcore.config import REPORT_TO, config_fields
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.models import load_counting_tokenizer
from bmcore.report.data import prepared_frame
from bmcore.report.tracking import REPORT_TO_EXPLAINED, REPORT_TO_LABELS, missing_tracker
from bmcore.tracking import default_experiment, default_tracking_uri


@st.cache_resource(show_spinner="Loading the tokenizer...", max_entries=4)
def tokenizer(ref: str):
    """A tokenizer to count tokens with, loaded once per server (read-only, shared by every session)."""
    return load_counting_tokenizer(ref)


def show_prepared_datasets() -> None:
    """The prepared datasets in the workspace as a table, or a line saying there are none (for the Data page)."""
    table = prepared_frame()
    if table.empty:
        st.caption("None yet: a dataset you save above is listed here, and the Train page offers it.")
    else:
        st.dataframe(table, hide_index=True)


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


JOB_POLL_S = 1  # seconds between redraws of a queued or running job


def show_job(job_dir: Path, key: str) -> None:
    """A queued or running background job, live: what it waits for or how far it is, and Cancel.

    The job runs in its own process; this only reads its folder, so a reload or a closed browser loses nothing.
    When the job ends, the whole page reruns and draws the result.
    """

    @st.fragment(run_every=JOB_POLL_S)
    def live() -> None:
        info = jobs.read(job_dir)
        if info["state"] not in runs.ACTIVE:
            st.rerun()
        if info["state"] == runs.QUEUED:
            waiting = queue.device_busy()
            st.info(f"{md(info['title'])}: " + ("queued. A training run or another job is using the device; this starts "
                                              "by itself when it is done." if waiting else "starting..."),
                    icon=":material/schedule:")
        else:
            st.progress(info["fraction"], text=md(info["message"] or f"{info['title']}..."))  # status.json is data
        st.caption(f"Runs in the background as `python -m bmcore jobs run {Path(job_dir).name}`: "
                   "you can leave this page and come back.")
        if runs.stop_requested(job_dir):
            st.caption("Stopping...")
        elif st.button("Cancel", key=f"{key}_job_cancel", icon=":material/stop:"):
            jobs.cancel(job_dir)
            st.rerun()

    live()


def job_outcome(job_dir: Path | None, what: str) -> dict | None:
    """Draw how the last job ended when it did not complete (failed with its one-line error, or cancelled);
    returns the job's info, or None when there is no job."""
    if job_dir is None:
        return None
    info = jobs.read(job_dir)
    if info["state"] == runs.FAILED:
        st.error(f"{what} failed: {md(info.get('error') or 'see ' + runs.JOB_LOG_FILE)}")
    elif info["state"] == runs.CANCELLED:
        st.caption(f"{what} was cancelled.")
    return info


def show_tiles(tiles: list[dict]) -> None:
    """A row of metric tiles (``bmcore.report.tile``), one column each."""
    for column, tile in zip(st.columns(len(tiles)), tiles, strict=True):
        column.metric(**tile)


def start_job(kind: str, params: dict, key: str, env: dict | None = None) -> None:
    """Start a background job and redraw the page to show it; a refusal (bad input, no disk) is one line."""
    try:
        jobs.start(kind, params, key, env=env)
    except (BmcoreError, OSError) as exc:
        st.error(md(exc))
    else:
        st.rerun()


KEPT_PREFIX = "_kept_"


def keep(*keys: str) -> None:
    """Keep these widgets' values when the user leaves the page and comes back.

    Streamlit deletes a widget's state at the end of any run that does not draw it (a run of another page), so
    a setting would come back at its default. A copy under a key no widget owns survives, and is put back on
    return. Call it before the widgets are drawn and after the page's own writes to these keys (a hand-over);
    only for widgets without a ``value=``/``index=`` default (Streamlit warns when both set a value).
    """
    for key in keys:
        copy = KEPT_PREFIX + key
        if key in st.session_state:
            st.session_state[copy] = st.session_state[key]
        elif copy in st.session_state:
            st.session_state[key] = st.session_state[copy]


def tracking_inputs(prefix: str, dataset: str) -> dict[str, str | None]:
    """The Tracking inputs (report to, and MLflow's store and experiment): TrainConfig's ``report_to``,
    ``tracking_uri`` and ``experiment_name``. ``prefix`` keeps each tab's widgets apart (``train``, ``search``)."""
    help_ = {f.name: f.metadata["help"] for f in config_fields()}
    c = st.columns(3)
    report_to = c[0].selectbox("Report to", REPORT_TO, key=f"{prefix}_report_to", format_func=REPORT_TO_LABELS.get,
                               help=help_["report_to"])
    tracking_uri = experiment = ""
    if report_to == "mlflow":
        tracking_uri = c[1].text_input("MLflow tracking URI", key=f"{prefix}_tracking_uri",
                                       placeholder=default_tracking_uri(), help=help_["tracking_uri"]).strip()
        experiment = c[2].text_input("MLflow experiment", key=f"{prefix}_experiment_name", placeholder=default_experiment(dataset),
                                     help=help_["experiment_name"]).strip()
    st.caption(REPORT_TO_EXPLAINED)
    if missing := missing_tracker(report_to):
        st.warning(md(missing))
    return {"report_to": report_to, "tracking_uri": tracking_uri or None, "experiment_name": experiment or None}
