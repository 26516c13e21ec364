"""The search (issue 29): ``python -m bmcore tune``, an Optuna study whose trials are bmcore runs, on the tiny BERT and a
400-row cut of SST-2 (real sentences, real labels)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import ROOT

from bmcore import runs, studies, tune
from bmcore.cli import main
from bmcore.errors import BmcoreError
from bmcore.files import read_json

# The tiny BERT learns SST-2's 320 training sentences a little at this rate; the defaults' 1e-4 leaves it at chance.
FAST = {"learning_rate": 2e-3, "max_seq_length": 32, "seed": 0}


@pytest.fixture
def sst(workspace: Path, shared_data: Path) -> str:
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(400, random_state=0)
    df.to_csv(workspace / "sst400.csv", index=False)
    assert main(["data", "prepare", str(workspace / "sst400.csv"), "--name", "sst400"]) == 0
    return "sst400"


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bmcore", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_budget_reads_minutes_seconds_and_hours() -> None:
    assert studies.parse_budget("30m") == 1800 and studies.parse_budget("90s") == 90 and studies.parse_budget("1.5h") == 5400
    assert studies.parse_budget("20") == 1200  # a bare number is minutes
    for bad in ("soon", "-5m", "0", "3 days"):
        with pytest.raises(BmcoreError, match="budget"):
            studies.parse_budget(bad)


class _PruneNow:
    """A trial whose pruner says stop at its first evaluation."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self.number, self.reports = trial.number, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return True


@pytest.mark.parametrize("state", [runs.COMPLETED, runs.CANCELLED])
def test_a_trial_pruned_after_its_run_finished_counts_as_completed(state: str, tmp_path: Path) -> None:
    """The race CI met: the follower reads an early evaluation and prunes, but the run has already finished (it never
    read the stop). Its full score is known and its tracked run FINISHED: the trial is complete, not pruned. A run that
    did stop is pruned."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runs.write_status(run_dir, state=state, total_steps=30, best_metric=0.7)
    for step, value in ((10, 0.4), (20, 0.6), (30, 0.7)):
        runs.append_metrics(run_dir, {"kind": "eval", "step": step, "eval_macro_f1": value})
    fake = _PruneNow(trial)
    outcome = tune.follow(study, fake, run_dir, "macro_f1", stop=lambda: False, deadline=time.time() + 60)
    assert runs.stop_requested(run_dir) and fake.reports == [(33, 0.4), (67, 0.6), (100, 0.7)]
    done = study.trials[trial.number]
    if state == runs.COMPLETED:
        assert outcome == "completed" and done.state == optuna.trial.TrialState.COMPLETE and done.value == 0.7
    else:
        assert outcome == "pruned" and done.state == optuna.trial.TrialState.PRUNED


def open_storage(url: str) -> str:
    try:
        studies.make_storage(url)
        return "ok"
    except BmcoreError as exc:
        return str(exc)


def test_processes_opening_a_new_study_database_at_once_all_get_it(tmp_path: Path) -> None:
    """A search's driver and the Search tab (or two workers) opening a new SQLite study at the same moment race to
    create its tables: every one of them gets the storage (this race once failed CI's search journey). A study not
    made yet is read as no trials, and reading creates no database."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        for i in range(4):
            url = f"sqlite:///{tmp_path}/study{i}.db"
            assert list(pool.map(open_storage, [url] * 4)) == ["ok"] * 4
    assert studies.trial_table("not-made-yet") == [] and studies.load_study("not-made-yet") is None
    assert not (studies.study_dir("not-made-yet") / studies.DB_FILE).exists()


@pytest.mark.slow
def test_bad_input_is_one_line(sst: str, tiny_model: Path, workspace: Path) -> None:
    """Exit 2 and one line: an unknown model, an unreachable storage, a budget too small for one trial, a study of
    another dataset. Nothing is left running."""
    cases = [
        (["--models", str(workspace / "no-such-model")], "no-such-model"),
        (["--models", str(tiny_model), "--storage", f"sqlite:///{workspace}/missing/folder/x.db"], "cannot be reached"),
        (["--models", str(tiny_model), "--budget", "2s"], "too small for one trial"),
        (["--budget", "soon"], "not a duration"),
    ]
    for extra, expected in cases:
        out = cli("tune", "--data", sst, "--study", "bad", *extra)
        assert out.returncode == 2, (extra, out.stdout[-500:], out.stderr[-1500:])
        assert expected in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
    # A study belongs to its dataset.
    tune.open_study(studies.Search(dataset=sst, models=[str(tiny_model)], study="mine"), tune.prepared_dataset(sst), "macro_f1")
    df = pd.read_csv(workspace / "sst400.csv").head(200)
    df.to_csv(workspace / "other.csv", index=False)
    assert main(["data", "prepare", str(workspace / "other.csv"), "--name", "other"]) == 0
    out = cli("tune", "--data", "other", "--study", "mine", "--models", str(tiny_model))
    assert out.returncode == 2 and "searches dataset 'sst400', not 'other'" in out.stderr, out.stderr
    assert not [p for p in runs.runs_dir().iterdir() if runs.read_status(p)["state"] in runs.ACTIVE]


@pytest.mark.slow
def test_search_prunes_chooses_on_validation_and_scores_test_once(sst: str, tiny_model: Path, workspace: Path) -> None:
    """Three trials: the defaults (trial 0), a learning rate far too small (pruned at its first evaluation, its run
    cancelled), one of TPE's. Each is a run folder trained with the test split unscored; the best on validation is
    chosen and only its test split is scored, once. With ``--report-to mlflow`` every trial is an MLflow run, and the
    test scores join the chosen trial's run and no other."""
    import mlflow

    search = studies.Search(dataset=sst, models=[str(tiny_model)], budget_s=600, trials=3, study="s1",
                            settings={**FAST, "report_to": "mlflow", "experiment_name": "sst search"},
                         enqueue=[{"learning_rate": 1e-7, "num_train_epochs": 30}])
    lines: list[str] = []
    summary = tune.run_search(search, echo=lines.append)
    study = optuna.load_study(study_name="s1", storage=studies.default_storage("s1"))
    trials = study.trials
    assert len(trials) == 3 and [t.user_attrs["run"] for t in trials] == ["s1-t0", "s1-t1", "s1-t2"]
    assert trials[0].user_attrs.get("defaults") and trials[0].params == {"model": str(tiny_model)}
    pruned = trials[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED, [t.state for t in trials]
    assert runs.read_status(runs.runs_dir() / "s1-t1")["state"] == runs.CANCELLED  # stopped early: the device is free
    assert len(pruned.intermediate_values) < 30  # of its 30 evaluations
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(completed, key=lambda t: t.value)
    assert summary["best_trial"] == best.number and summary["best_run"] == str(runs.runs_dir() / f"s1-t{best.number}")
    assert summary["best_validation"] >= trials[0].value  # never worse than the defaults on validation
    for t in trials:
        run_dir = runs.runs_dir() / t.user_attrs["run"]
        assert read_json(run_dir / runs.CONFIG_FILE)["score_test"] is False
        assert not runs.checkpoints(run_dir) and (run_dir / runs.MODEL_DIR).is_dir()  # the model stays, not the checkpoints
        scored = bool(runs.read_eval(run_dir).get("test")) if (run_dir / runs.EVAL_FILE).exists() else False
        assert scored == (t.number == best.number), t.number
    best_dir = Path(summary["best_run"])
    assert (best_dir / runs.EVALUATION_DIR / "test" / "metrics.json").is_file()
    assert runs.read_status(best_dir)[f"{runs.TEST_PREFIX}macro_f1"] == pytest.approx(summary["best_test"])
    status = studies.read_search_status("s1")
    assert status["state"] == studies.COMPLETED and "bought 3 trials" in status["bought"] and "on test" in status["bought"]
    assert any("pruned" in line for line in lines)
    # Tracked: a run per trial in one experiment; a pruned trial's run was cancelled, so KILLED
    client = mlflow.MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    found = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("sst search").experiment_id])}
    assert sorted(found) == ["s1-t0", "s1-t1", "s1-t2"]
    for t in trials:
        run = found[t.user_attrs["run"]]
        assert run.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[t.state.name], t.number
        assert "eval_macro_f1" in run.data.metrics  # every trial's validation curve
        tested = {k for k in run.data.metrics if k.startswith("test_")}
        assert bool(tested) == (t.number == best.number), (t.number, tested)
    assert found[best_dir.name].data.metrics["test_macro_f1"] == pytest.approx(summary["best_test"])


def test_tune_takes_the_tracking_flags_as_train_does(capsys: pytest.CaptureFixture) -> None:
    search = studies.Search(dataset="sst400", settings={"seed": 0, "report_to": "mlflow", "experiment_name": "sst search"})
    assert studies.tune_command(search)[-6:] == ["--seed", "0", "--report-to", "mlflow", "--experiment-name", "sst search"]
    assert main(["tune", "--data", "sst400", "--report-to", "tensorboard", "--experiment-name", "x"]) == 2
    assert "give them with report_to mlflow" in capsys.readouterr().err
    assert main(["tune", "--data", "sst400", "--report-to", "mlflow", "--tracking-uri", "http://me:pw@h:5000"]) == 2
    err = capsys.readouterr().err
    assert "holds a password" in err and "pw@" not in err and err.count("\n") == 1


@pytest.mark.slow
def test_study_resumes_after_its_driver_is_killed(sst: str, tiny_model: Path, workspace: Path) -> None:
    """SIGKILL the driver while trial 1 trains; its run goes on. The same command again adopts it (follows the run to
    its end) and goes on with trial 2; nothing is left running and every trial has an outcome."""
    args = ["tune", "--data", sst, "--study", "k", "--models", str(tiny_model), "--seed", "0", "--budget", "10m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(workspace / "driver.log", "wb") as log_file:
        driver = subprocess.Popen([sys.executable, "-m", "bmcore", *args, "--trials", "3"], cwd=ROOT, env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT)
    trial_run = runs.runs_dir() / "k-t1"
    deadline = time.time() + 300
    while not ((trial_run / runs.METRICS_FILE).exists() and runs.read_metrics(trial_run)):
        assert driver.poll() is None and time.time() < deadline, (workspace / "driver.log").read_text()[-2000:]
        time.sleep(0.5)
    os.kill(driver.pid, signal.SIGKILL)  # our own child, by the Popen handle
    driver.wait(10)
    assert studies.read_search_status("k")["state"] == studies.FAILED  # the driver is gone, and reads so
    study = optuna.load_study(study_name="k", storage=studies.default_storage("k"))
    assert study.trials[1].state == optuna.trial.TrialState.RUNNING
    out = cli(*args, "--trials", "1")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "trial 1: its driver stopped; following its run k-t1" in out.stdout
    result = json.loads(out.stdout.strip().splitlines()[-1])
    study = optuna.load_study(study_name="k", storage=studies.default_storage("k"))
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    assert study.trials[1].user_attrs["outcome"] in ("completed", "pruned")
    assert {t["trial"] for t in result["trials"]} == {0, 1, 2}
    assert not [p for p in runs.runs_dir().iterdir() if runs.read_status(p)["state"] in runs.ACTIVE]


@pytest.mark.slow
def test_two_workers_share_one_study(sst: str, tiny_model: Path, workspace: Path) -> None:
    """Optuna's way to spread a search over machines, a shared storage URL, works unchanged: two drivers on one
    study run different trials (one each at a time; their runs share the device queue)."""
    url = f"sqlite:///{workspace / 'shared.db'}"
    args = ["tune", "--data", sst, "--study", "shared", "--models", str(tiny_model), "--seed", "0", "--budget", "10m",
            "--trials", "1", "--storage", url]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = [open(workspace / f"worker{i}.log", "wb") for i in (0, 1)]  # noqa: SIM115 - closed below
    first = subprocess.Popen([sys.executable, "-m", "bmcore", *args], cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not (runs.runs_dir() / "shared-t0").exists():  # the first worker created the study and took trial 0
        assert first.poll() is None and time.time() < deadline, (workspace / "worker0.log").read_text()[-2000:]
        time.sleep(0.5)
    second = subprocess.Popen([sys.executable, "-m", "bmcore", *args], cwd=ROOT, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
    assert first.wait(600) == 0 and second.wait(600) == 0, [(workspace / f"worker{i}.log").read_text()[-1500:] for i in (0, 1)]
    for f in logs:
        f.close()
    study = optuna.load_study(study_name="shared", storage=url)
    assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)
    workers = {json.loads(t.user_attrs["worker"])["pid"] for t in study.trials}
    assert workers == {first.pid, second.pid}
    assert sorted(t.user_attrs["run"] for t in study.trials) == ["shared-t0", "shared-t1"]
