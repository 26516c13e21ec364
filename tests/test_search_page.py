"""The Train page's Search tab through AppTest: a finished search's leaderboard, command and validation-test line; Use
the best hands its run to Evaluate; a search started from the tab runs and fills the leaderboard. And the tab's
content (bmcore/report/search.py) on plain records."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, copy_workspace
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import files, processes, studies, tune
from bmcore.report import search as rsearch

TIMEOUT = 180  # the first run imports torch, transformers and Optuna on 2 busy CPU cores
DATASET = "sst-search"


def prepare_sst(shared_data: Path) -> None:
    """400 SST-2 rows as sst-search (320 / 40 / 40) in the current workspace."""
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(400, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), DATASET, seed=0))


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Path:
    """A workspace with sst-search and a finished two-trial search of the tiny BERT on it (study sst-search-search).
    Built once per module; each test copies it into its own workspace."""
    ws = tmp_path_factory.mktemp("search-ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        prepare_sst(shared_data)
        summary = tune.run_search(studies.Search(DATASET, [str(tiny_model)], budget_s=300, trials=2))
        assert summary["best_run"], summary
    for checkpoint in ws.glob("runs/*/checkpoint-*"):
        shutil.rmtree(checkpoint)  # the models are saved; copies stay small
    return ws


def open_search_tab() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    return at


def leaderboard(at: AppTest) -> pd.DataFrame | None:
    """The leaderboard among the page's tables (AppTest does not expose dataframe keys): the one with an outcome."""
    found = [d.value for d in at.dataframe if "outcome" in d.value.columns]
    return found[0] if found else None


def stop_driver(workspace: Path) -> None:
    """Kill a search driver a failed test left running (the workspace fixture stops runs and jobs, not drivers)."""
    for status in workspace.glob("studies/*/status.json"):
        processes.signal_job(status.parent, files.read_json(status), signal.SIGKILL, group=True)


# --- the content, on plain records ---------------------------------------------------------------

ROWS = [
    {"trial": 0, "state": "complete", "outcome": "completed", "value": 0.70, "run": "s-t0", "seconds": 10.2,
     "predicted_s": 12.0, "defaults": True, "last_value": 0.70, "params": {"model": "/m/tiny"}},
    {"trial": 1, "state": "pruned", "outcome": "pruned", "value": None, "run": "s-t1", "seconds": 3.0,
     "predicted_s": 9.0, "defaults": False, "last_value": 0.41,
     "params": {"model": "/m/tiny", "learning_rate": 3.1e-5, "class_weights": "sqrt"}},
    {"trial": 2, "state": "complete", "outcome": "completed", "value": 0.81, "run": "s-t2", "seconds": 11.0,
     "predicted_s": 10.0, "defaults": False, "last_value": 0.81,
     "params": {"model": "/m/tiny", "learning_rate": 2e-4, "class_weights": "none"}},
    {"trial": 3, "state": "running", "outcome": None, "value": None, "run": "s-t3", "seconds": None,
     "predicted_s": 10.0, "defaults": False, "last_value": 0.55,
     "params": {"model": "/m/tiny", "learning_rate": 1e-4, "class_weights": "none"}},
]


def test_the_leaderboard_puts_the_best_first_and_marks_defaults_and_running_trials():
    frame = rsearch.leaderboard_frame(ROWS, "macro_f1")
    assert list(frame["trial"]) == ["2", "0", "3", "1"]  # completed best first, then the others newest first
    assert list(frame.columns[:3]) == ["trial", "outcome", "validation macro_f1"]
    assert {"run", "seconds", "predicted (s)", "model", "learning_rate", "class_weights"} <= set(frame.columns)
    by = frame.set_index("trial")
    assert by.loc["2", "outcome"] == "completed (best)" and by.loc["0", "outcome"] == "completed (defaults)"
    assert by.loc["3", "outcome"] == "training" and by.loc["3", "validation macro_f1"] == "0.5500 (so far)"
    assert by.loc["1", "validation macro_f1"] == "0.4100 (last)"
    assert by.loc["1", "learning_rate"] == "3.1e-05" and by.loc["0", "learning_rate"] == "default"
    assert by.loc["0", "model"] == "tiny" and by.loc["3", "seconds"] == "-"
    assert all(isinstance(v, str) for v in frame.to_numpy().ravel())
    assert list(rsearch.leaderboard_frame(ROWS, "loss")["trial"])[:2] == ["0", "2"]  # a loss: lowest first


def test_the_gap_line_says_validation_and_test_of_the_chosen_trial():
    status = {"best_trial": 2, "best_validation": 0.81, "best_test": 0.74, "metric": "macro_f1"}
    line = rsearch.gap_line(status)
    assert line.startswith("Trial 2, chosen on validation: macro_f1 0.8100 on validation, 0.7400 on test (0.0700 lower")
    assert "scored once" in line and "fitted the validation split" in line
    assert "fitted" not in rsearch.gap_line({**status, "best_test": 0.80})
    assert rsearch.gap_line({"best_validation": 0.8}) is None


def test_the_figures_say_why_one_is_missing():
    import optuna

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"model": "m"}, value=0.5,
                                              distributions={"model": optuna.distributions.CategoricalDistribution(["m"])}))
    only_defaults = {t: w for t, _, w in rsearch.search_figures(study, "macro_f1")}
    assert only_defaults["Parallel coordinates"].startswith("they appear when two completed trials chose different")
    space = {"model": optuna.distributions.CategoricalDistribution(["m"]),
             "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)}
    study.add_trial(optuna.trial.create_trial(params={"model": "m", "learning_rate": 1e-4}, value=0.6, distributions=space))
    study.add_trial(optuna.trial.create_trial(  # pruned: its settings are in no figure
        params={"model": "m", "warmup_steps": 0.1}, state=optuna.trial.TrialState.PRUNED,
        distributions={"model": space["model"], "warmup_steps": optuna.distributions.FloatDistribution(0.0, 0.2)}))
    figures = {title: (fig, why) for title, fig, why in rsearch.search_figures(study, "macro_f1")}
    assert figures["Optimisation history"][0] is not None and figures["Parallel coordinates"][0] is None  # one searched
    assert figures["Parameter importances"][0] is None
    assert "two or more completed trials" in figures["Parameter importances"][1]
    assert rsearch.constant_params(study) == ["model"]  # one candidate model: not a parallel coordinate
    for lr, value in ((3e-5, 0.55), (5e-4, 0.7)):
        study.add_trial(optuna.trial.create_trial(params={"model": "m", "learning_rate": lr}, value=value,
                                                  distributions=space))
    figures = {title: fig for title, fig, _ in rsearch.search_figures(study, "macro_f1")}
    assert figures["Parameter importances"] is not None
    # The defaults trial searched no learning rate: it is left out, not drawn at a "None" tick
    ticks = [t for axis in figures["Parallel coordinates"].layout.annotations for t in [axis.text]]
    assert "None" not in ticks and len(figures["Parallel coordinates"].data) >= 3  # the three searched trials
    whys = {title: why for title, _, why in rsearch.search_figures(optuna.create_study(), "loss")}
    assert whys["Optimisation history"] == whys["Parallel coordinates"] == "it appears when a trial has completed."
    assert "two or more completed trials" in whys["Parameter importances"]


def test_the_tab_without_data_points_to_the_data_page_and_starts_nothing():
    at = open_search_tab()
    assert any("then search here" in i.value for i in at.info)
    assert not at.button


def test_the_tab_shows_the_command_and_refuses_a_bad_study_name(shared_data):
    prepare_sst(shared_data)
    at = open_search_tab()
    assert any("**validation** split only" in m.value for m in at.markdown)  # the two sentences
    assert at.text_input(key="search_study").value == "sst-search-search"
    commands = [c.value for c in at.code if c.value.startswith("python -m bmcore tune")]
    assert commands == ["python -m bmcore tune --data sst-search --budget 30m --study sst-search-search "
                        "--models builtin:minilm"]
    at.text_input(key="search_study").input("no good/name").run()
    assert not at.exception
    assert len(at.error) == 1 and "invalid study name" in at.error[0].value
    assert not any(b.key == "search_start" for b in at.button)


def test_the_tab_reports_trials_to_the_tracker_chosen_and_refuses_a_password_in_the_uri(shared_data):
    prepare_sst(shared_data)
    at = open_search_tab()
    at.selectbox(key="search_report_to").set_value("mlflow").run()
    at.text_input(key="search_experiment_name").input("sst trials").run()
    assert not at.exception
    commands = [c.value for c in at.code if c.value.startswith("python -m bmcore tune")]
    assert commands == ["python -m bmcore tune --data sst-search --budget 30m --study sst-search-search "
                        "--models builtin:minilm --report-to mlflow --experiment-name 'sst trials'"]
    at.text_input(key="search_tracking_uri").input("http://me:secret@mlflow.lan:5000").run()
    assert len(at.error) == 1 and "holds a password" in at.error[0].value and "secret" not in at.error[0].value
    assert not any(b.key == "search_start" for b in at.button)


@pytest.mark.slow
def test_a_finished_search_shows_its_leaderboard_and_hands_its_best_run_to_evaluate(searched, workspace):
    copy_workspace(searched, workspace)
    at = open_search_tab()
    assert not at.exception and not at.error
    board = leaderboard(at)
    assert board is not None and len(board) == 2 and set(board["trial"]) == {"0", "1"}
    assert any("(defaults" in o for o in board["outcome"]) and any("best" in o for o in board["outcome"])
    assert "validation macro_f1" in board.columns
    assert any(c.value.startswith("python -m bmcore tune --data sst-search --budget 30m --study sst-search-search")
               for c in at.code)
    status = studies.read_search_status("sst-search-search")
    assert any(i.value.startswith(f"Trial {status['best_trial']}, chosen on validation: macro") and "on test" in i.value
               for i in at.info)
    assert any("bought 2 trials" in s.value for s in at.success)
    assert any(b.key == "search_start" and b.label == "Continue the search" for b in at.button)
    assert len(at.get("plotly_chart")) >= 1  # Optuna's history (parallel coordinates once two completed trials differ)

    at.button(key="search_use_best").click().run()
    assert not at.exception and not at.error
    best = Path(status["best_run"]).name
    assert any(s.value.startswith(f"{best} is now the run the Evaluate") for s in at.success)
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert at.selectbox(key="evaluate_run").value == best
    assert at.selectbox(key="evaluate_dataset").value == DATASET


@pytest.mark.slow
def test_a_search_started_from_the_tab_runs_and_fills_the_leaderboard(shared_data, tiny_model, workspace):
    prepare_sst(shared_data)
    at = open_search_tab()
    at.text_input(key="search_study").input("fresh").run()
    at.multiselect(key="search_models").set_value([]).run()
    assert any("at least one candidate model" in i.value for i in at.info)
    at.text_input(key="search_more_models").input(str(tiny_model)).run()
    at.number_input(key="search_budget").set_value(5.0)
    at.number_input(key="search_trials").set_value(1).run()
    assert any(c.value == f"python -m bmcore tune --data {DATASET} --budget 5m --study fresh --models {tiny_model} "
                          "--trials 1" for c in at.code)
    try:
        at.button(key="search_start").click().run()
        assert not at.exception and not at.error
        assert studies.read_search_status("fresh")["state"] == studies.RUNNING
        assert any(b.key == "search_cancel" for b in at.button)
        deadline = time.time() + 300
        while studies.read_search_status("fresh")["state"] == studies.RUNNING:
            assert time.time() < deadline, rsearch.search_log_tail("fresh")
            time.sleep(1)
    finally:
        stop_driver(workspace)
    status = studies.read_search_status("fresh")
    assert status["state"] == studies.COMPLETED, (status, rsearch.search_log_tail("fresh"))
    at.run()
    assert not at.exception and not at.error
    board = leaderboard(at)
    assert board is not None and list(board["trial"]) == ["0"] and board.loc[0, "outcome"].startswith("completed")
    assert board.loc[0, "run"] == "fresh-t0"
    assert any("bought 1 trial " in s.value for s in at.success)
