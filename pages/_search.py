"""The Train page's Search tab: pick the data, the candidate models and a time budget; start a search
(``python -m bmcore tune``, in the background); watch its leaderboard live; cancel or continue it; make its best trial
the run the other pages open.

Drawn without st.stop(): the Train tab is drawn after it on the same page."""

from pathlib import Path

import streamlit as st

from bmcore import launch, run_list, runs, studies
from bmcore.config import TrainConfig
from bmcore.data import list_prepared
from bmcore.defaults import task_defaults
from bmcore.display import md
from bmcore.errors import BmcoreError, error_line
from bmcore.modalities import DEFAULT_MODALITY, get_modality
from bmcore.report import search as rsearch
from pages._ui import keep, tracking_inputs

POLL_S = 2  # seconds between leaderboard refreshes while the search runs
BADGES = {studies.RUNNING: ("blue", ":material/play_arrow:"), studies.COMPLETED: ("green", ":material/check_circle:"),
          studies.CANCELLED: ("orange", ":material/stop_circle:"), studies.FAILED: ("red", ":material/error:")}
EVALUATE_SOURCE = "A finished run"  # the Evaluate page's first model source (pages/evaluate.py SOURCES[0])


def model_choices(modality, modalities: dict[str, str]) -> list[str]:
    """The dataset modality's built-in models, then the model folders of finished runs on the same kind of input."""
    finished = [str(Path(r.path) / runs.MODEL_DIR) for r in run_list.finished_runs(classifiers=True)
                if modalities.get(r.dataset, DEFAULT_MODALITY) == modality.name]
    return [*modality.builtin_models(), *finished]


def chosen_search(datasets: list[dict]) -> studies.Search | None:
    """The inputs: dataset, candidate models, budget, trials, study name. The search they describe, or None (said)."""
    keep("search_dataset", "search_study", "search_models", "search_more_models")  # across page visits
    names = [d["name"] for d in datasets]
    modalities = {d["name"]: d.get("modality") or DEFAULT_MODALITY for d in datasets}
    c1, c2 = st.columns(2)
    dataset = c1.selectbox("Dataset to search on", names, key="search_dataset")
    meta = datasets[names.index(dataset)]
    modality = get_modality(meta.get("modality"))
    if st.session_state.get("search_study_for") != dataset:  # another dataset: its own study name and models
        st.session_state["search_study_for"] = dataset
        st.session_state["search_study"] = studies.default_study_name(dataset)
        st.session_state.pop("search_models", None)
    study = c1.text_input("Study name", key="search_study",
                          help="A search with this name is continued (with a new budget); a new name starts afresh.")
    c = c1.columns(2)
    minutes = c[0].number_input("Budget (minutes)", 0.5, 24 * 60.0, 30.0, step=5.0, key="search_budget",
                                help="Wall-clock time for this run of the search. A trial predicted not to finish in "
                                     "what is left is not started.")
    trials = c[1].number_input("Trials at most (0: no limit)", 0, 1000, 0, key="search_trials")
    options = model_choices(modality, modalities)
    if "search_models" not in st.session_state:
        st.session_state["search_models"] = [m for m in options if m == modality.default_model][:1]
    picked = c2.multiselect("Candidate models", options, key="search_models", format_func=run_list.short_model,
                            help="Built-in models and the models of finished runs. Trial 0 trains each with the "
                                 "defaults; later trials may spend the budget on any of them.")
    more = c2.text_input("More models: local folders or Hub ids, comma-separated", key="search_more_models").strip()
    models = list(dict.fromkeys([*picked, *(m.strip() for m in more.split(",") if m.strip())]))
    with st.expander("Tracking: report every trial to TensorBoard or MLflow"):
        tracked = {k: v for k, v in tracking_inputs("search", dataset).items() if v not in (None, "none")}
    if not models:
        st.info("Choose at least one candidate model.")
        return None
    try:
        TrainConfig(dataset=dataset, **tracked)  # the tracking settings checked as a run checks them
        return studies.Search(dataset=dataset, models=models, budget_s=float(minutes) * 60, trials=int(trials) or None,
                           study=study.strip(), settings=tracked)
    except (BmcoreError, ValueError) as exc:
        st.error(md(error_line(exc)))
        return None


def start(search: studies.Search) -> None:
    """Check every candidate model as a run would, then start the search in the background."""
    try:
        for model in search.models:  # an unknown model: one line now, not a failed search later
            launch.preflight(TrainConfig.from_dict(task_defaults({**search.settings, "dataset": search.dataset,
                                                                  "model_name_or_path": model})))
        studies.start_search(search)
    except (BmcoreError, ValueError, OSError) as exc:
        st.session_state["search_start_error"] = error_line(exc)
    st.rerun()


def show_leaderboard(name: str, status: dict) -> None:
    """The driver's state, what it does now, and the leaderboard."""
    state = status.get("state", studies.RUNNING)
    color, icon = BADGES.get(state, BADGES[studies.FAILED])
    st.badge(state, icon=icon, color=color)
    if state == studies.RUNNING and status.get("phase"):
        st.caption(f"Now: {md(status['phase'])}")
    try:
        rows = studies.trial_table(name)
        metric = status.get("metric") or rsearch.study_metric(name)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    if rows:
        st.dataframe(rsearch.leaderboard_frame(rows, metric), hide_index=True)
    elif state == studies.RUNNING:
        st.caption("Starting: the first trial's timing is being predicted...")


def show_outcome(name: str, status: dict) -> None:
    """What a search that ended shows: what the budget bought, the validation-test gap, Use the best, the figures."""
    state = status.get("state")
    if state == studies.FAILED:
        st.error(md(status.get("error") or "the search failed"))
        st.code(rsearch.search_log_tail(name) or f"({studies.SEARCH_LOG} is empty)", language="text")
    if status.get("bought"):
        st.success(md(status["bought"]), icon=":material/timer:")
    if gap := rsearch.gap_line(status):
        st.info(md(gap), icon=":material/balance:")
    best_run = status.get("best_run")
    if best_run and st.button("Use the best", key="search_use_best", icon=":material/done_all:",
                              help="Make the best trial's run the one the Evaluate, Playground and Train pages open."):
        use_run(Path(best_run), status.get("dataset"))
    if best_run and st.session_state.get("search_used") == Path(best_run).name:
        st.success(md(f"{Path(best_run).name} is now the run the Evaluate and Playground pages open."), icon=":material/check:")
        st.page_link("pages/evaluate.py", label="Open it on the Evaluate page", icon=":material/analytics:")
    study = studies.load_study(name)
    if study is not None and study.trials:
        show_figures(study, status.get("metric") or rsearch.study_metric(name))


def use_run(run_dir: Path, dataset: str | None) -> None:
    """Make ``run_dir`` the run the other pages open: the keys their run choice reads (st.session_state)."""
    st.session_state["evaluate_source"] = EVALUATE_SOURCE
    st.session_state["evaluate_run"] = run_dir.name
    if dataset:
        st.session_state["evaluate_dataset"] = dataset
    st.session_state["evaluate_split"] = "test"  # its test split is scored: the results are there at once
    st.session_state["playground_model"] = str(run_dir / runs.MODEL_DIR)  # read once by the Playground
    st.session_state["train_run"] = run_dir.name  # the Train tab's open run
    st.session_state["search_used"] = run_dir.name


def show_figures(study, metric: str) -> None:
    """Optuna's figures: the history and the importances side by side, the parallel coordinates below at full width."""
    st.markdown("##### Optuna's figures")
    figures = rsearch.search_figures(study, metric)
    for i, (place, (title, figure, why)) in enumerate(zip([*st.columns(2), st.container()], figures, strict=True)):
        with place:
            if figure is None:
                st.caption(f"{title}: {why}")
            else:
                st.plotly_chart(figure, key=f"search_figure_{i}")
    st.caption("With a handful of trials these figures are rough: importances in particular need many trials to mean much.")


def show_study(search: studies.Search) -> None:
    """The study of this name, live while its driver runs; Cancel or Continue; its outcome."""
    name = search.study
    status = studies.read_search_status(name)
    running = status.get("state") == studies.RUNNING

    @st.fragment(run_every=POLL_S if running else None)
    def live() -> None:
        now = studies.read_search_status(name)
        show_leaderboard(name, now)
        if running and now.get("state") != studies.RUNNING:
            st.rerun()  # drawn first: a rerun asked from a timed fragment run can be dropped (pages/_runs_view.py)

    if status:
        st.subheader(f"Search {md(name)}")
        live()
    if running:
        if (studies.study_dir(name) / runs.STOP_FILE).exists():
            st.caption("Stop requested: the trial that trains saves its model and stops, then the search ends.")
        elif st.button("Cancel the search", key="search_cancel", icon=":material/stop:"):
            studies.request_search_stop(name)
            st.rerun()
        return
    if status:
        show_outcome(name, status)
    label = "Continue the search" if status else "Start the search"
    if st.button(label, type="primary", key="search_start", icon=":material/play_arrow:",
                 help="Continue: the same study, with the budget above and everything it learned so far." if status else None):
        start(search)
    if error := st.session_state.pop("search_start_error", None):
        st.error(md(error))


def show_search() -> None:
    """The Search tab."""
    st.markdown(rsearch.SEARCH_INTRO)
    datasets = list_prepared()
    if not datasets:
        st.info("No prepared datasets in the workspace yet: prepare one on the Data page, then search here.")
        return
    search = chosen_search(datasets)
    if search is None:
        return
    st.caption("The same search from a terminal (it needs this workspace, set with BMCORE_WORKSPACE):")
    st.code(rsearch.search_command(search), language="bash")
    try:
        show_study(search)
    except (BmcoreError, OSError) as exc:  # a damaged status.json, a workspace that cannot be written
        st.error(md(error_line(exc)))
