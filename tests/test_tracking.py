"""Experiment tracking (report_to): real tiny runs land in a real MLflow store and in TensorBoard event files that
TensorBoard's own reader loads; none leaves nothing; a missing package is refused in one line before a run exists."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import launch, runs, tracking, train
from bmcore.cli import main
from bmcore.config import TrainConfig
from bmcore.display import url_without_password
from bmcore.errors import BmcoreError
from bmcore.report.tracking import missing_tracker, open_command

TRACKING_ENV = ("TENSORBOARD_LOGGING_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "HF_MLFLOW_LOG_ARTIFACTS")


@pytest.fixture
def sst_mini(shared_data: Path) -> str:
    """210 SST-2 rows prepared as sst-mini (150 train, 30 validation, 30 test)."""
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(210, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), "sst-mini",
                                      ratios=(150 / 210, 30 / 210, 30 / 210), seed=0))
    return "sst-mini"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of its own: MLflow's and TensorBoard's defaults (./mlruns, ./runs) would land here."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def tiny_run(tiny_model: Path, dataset: str, **kw) -> tuple[Path, dict]:
    """A 6-step run of the tiny BERT, evaluated at steps 3 and 6, in this process."""
    config = TrainConfig(**{**dict(model_name_or_path=str(tiny_model), dataset=dataset, max_seq_length=32, max_steps=6,
                                   per_device_train_batch_size=16, eval_strategy="steps", eval_steps=3,
                                   logging_steps=2, learning_rate=5e-4), **kw})
    run_dir = runs.create_run(config, "tracked")
    return run_dir, train.run_training(run_dir)


@pytest.mark.slow  # about 20 s: MLflow's first SQLite store creates its tables (7 s); the failed-run test stays fast
def test_mlflow_run_holds_the_settings_curves_test_metrics_and_model(tiny_model, sst_mini, workspace, elsewhere):
    import mlflow

    run_dir, status = tiny_run(tiny_model, sst_mini, report_to="mlflow")
    assert status["state"] == runs.COMPLETED
    uri = f"sqlite:///{workspace / 'mlflow.db'}"  # the default store: the workspace's own SQLite database
    assert status["tracking_uri"] == uri
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("sst-mini")  # the dataset's name
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == status["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.info.run_name == "tracked"
    params = run.data.params
    # The Trainer's integration logged its arguments; bmcore adds its own settings under bmcore.*
    assert float(params["learning_rate"]) == 5e-4 and params["max_steps"] == "6"
    assert params["bmcore.dataset"] == "sst-mini" and params["bmcore.report_to"] == "mlflow"
    loss = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in loss] == [1, 2, 4, 6]  # logging_first_step, then every 2 steps
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval_macro_f1")] == [3, 6]
    test = json.loads((run_dir / runs.EVAL_FILE).read_text())["test"]
    for key in ("accuracy", "macro_f1", "loss"):
        assert run.data.metrics[f"test_{key}"] == pytest.approx(test[key])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.safetensors", "model/config.json", "model/bmcore.json"} <= artifacts
    assert (workspace / "mlartifacts").is_dir() and not any(elsewhere.iterdir())  # nothing in the working folder
    assert not any(k in os.environ for k in TRACKING_ENV)  # set for the job only
    assert open_command(run_dir, runs.load_run_config(run_dir), runs.read_status(run_dir))[1] == \
        f"mlflow ui --backend-store-uri {uri}"


def test_tensorboard_event_files_load_with_the_loss_curve_and_test_metrics(tiny_model, sst_mini, elsewhere):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, status = tiny_run(tiny_model, sst_mini, report_to="tensorboard")
    assert status["state"] == runs.COMPLETED
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 4, 6]
    assert [e.step for e in events.Scalars("eval/macro_f1")] == [3, 6]
    test = json.loads((run_dir / runs.EVAL_FILE).read_text())["test"]
    [accuracy] = events.Scalars("test/accuracy")
    assert accuracy.step == 6 and accuracy.value == pytest.approx(test["accuracy"])
    assert {"args/text_summary", "bmcore/config/text_summary"} <= set(events.Tags()["tensors"])  # the settings
    assert not any(elsewhere.iterdir()) and not any(k in os.environ for k in TRACKING_ENV)
    command = open_command(run_dir, runs.load_run_config(run_dir), runs.read_status(run_dir))[1]
    assert command == f"tensorboard --logdir {run_dir / 'tensorboard'}"


def test_a_test_split_scored_after_the_run_joins_its_tensorboard_record(tiny_model, sst_mini, elsewhere):
    """A search's chosen trial trains with score_test off; its test split, scored once afterwards, reaches the same
    TensorBoard folder (the MLflow side is in tests/test_tune.py)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, status = tiny_run(tiny_model, sst_mini, report_to="tensorboard", score_test=False, max_steps=2, eval_steps=2)
    assert status["state"] == runs.COMPLETED
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert not [t for t in events.Tags()["scalars"] if t.startswith("test/")]
    results = train.score_test(run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    [accuracy] = events.Scalars("test/accuracy")
    assert accuracy.step == 2 and accuracy.value == pytest.approx(results["test"]["accuracy"])


def test_none_leaves_no_tracking_files(tiny_model, sst_mini, workspace, elsewhere):
    run_dir, status = tiny_run(tiny_model, sst_mini, max_steps=2, eval_steps=2)
    assert status["state"] == runs.COMPLETED
    assert not (run_dir / "tensorboard").exists() and not (run_dir / "runs").exists()
    assert not (workspace / "mlflow.db").exists() and not (workspace / "mlartifacts").exists()
    assert not any(elsewhere.iterdir()) and "mlflow_run_id" not in status
    assert open_command(run_dir, runs.load_run_config(run_dir), status) is None


def test_few_shot_reports_through_setfit_s_trainer(tiny_model, sst_mini, elsewhere):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, status = tiny_run(tiny_model, sst_mini, report_to="tensorboard", few_shot=True, eval_steps=None,
                               eval_strategy="epoch")
    assert status["state"] == runs.COMPLETED
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert events.Scalars("train/embedding_loss")  # SetFit's pair loss, through the same integration
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(
        json.loads((run_dir / runs.EVAL_FILE).read_text())["test"]["accuracy"])


def test_a_failed_mlflow_run_is_marked_failed_and_a_resume_reopens_it(tiny_model, sst_mini, tmp_path, elsewhere):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    run_dir = runs.create_run(TrainConfig(model_name_or_path=str(tiny_model), dataset=sst_mini, max_seq_length=1024,
                                          report_to="mlflow", tracking_uri=uri, experiment_name="too long"), "fails")
    with pytest.raises(BmcoreError, match="max_seq_length"):
        train.run_training(run_dir)
    [run] = mlflow.MlflowClient(uri).search_runs([mlflow.MlflowClient(uri).get_experiment_by_name("too long").experiment_id])
    assert run.info.status == "FAILED" and mlflow.active_run() is None
    assert not any(elsewhere.iterdir())
    # A resumed job logs into the same MLflow run (status.json keeps its id)
    assert runs.read_status(run_dir)["mlflow_run_id"] == run.info.run_id
    config = runs.load_run_config(run_dir)
    with tracking.scoped_environment(tracking.job_environment(run_dir, config)):  # as run_tracked sets it
        tracking.start_mlflow_run(run_dir, config)
        try:
            assert mlflow.active_run().info.run_id == run.info.run_id
        finally:
            mlflow.end_run()
    assert not any(elsewhere.iterdir())


def test_a_cancelled_mlflow_run_is_marked_killed_without_a_model(tiny_model, sst_mini, tmp_path, elsewhere, monkeypatch):
    """...and the run folder reads ``cancelled`` only once the MLflow run has ended: a search that moves on when its
    trial's state ends (bmcore.tune.follow) found a pruned trial's MLflow run still RUNNING (CI, 2026-12-07)."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    run_dir = runs.create_run(TrainConfig(model_name_or_path=str(tiny_model), dataset=sst_mini, max_seq_length=32,
                                          max_steps=200, report_to="mlflow", tracking_uri=uri), "cancelled")
    states_at_end_run: list[str] = []
    end_run = mlflow.end_run

    def recording_end_run(*args, **kwargs):
        states_at_end_run.append(json.loads((run_dir / runs.STATUS_FILE).read_text())["state"])  # as written
        return end_run(*args, **kwargs)

    monkeypatch.setattr(mlflow, "end_run", recording_end_run)
    job = ThreadPoolExecutor(1).submit(train.run_training, run_dir)
    deadline = time.time() + 60
    while not [m for m in runs.read_metrics(run_dir) if m["kind"] == "train"]:  # training, not queued
        assert time.time() < deadline and not job.done(), runs.log_tail(run_dir)
        time.sleep(0.1)
    runs.request_stop(run_dir)  # what a cancel from the page or the CLI writes
    status = job.result(timeout=60)
    assert status["state"] == runs.CANCELLED
    client = mlflow.MlflowClient(uri)
    run = client.get_run(status["mlflow_run_id"])
    assert run.info.status == "KILLED" and mlflow.active_run() is None
    assert states_at_end_run[-1] == runs.RUNNING and runs.read_status(run_dir)["state"] == runs.CANCELLED
    assert not client.list_artifacts(run.info.run_id)  # no model/ of a run that did not finish
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("report_to", ["mlflow", "tensorboard"])
def test_a_missing_tracker_is_refused_in_one_line_before_a_run_exists(report_to, tiny_model, sst_mini, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(tracking, "installed", lambda name: name == "none")
    config = TrainConfig(model_name_or_path=str(tiny_model), dataset=sst_mini, report_to=report_to)
    with pytest.raises(BmcoreError, match=f"pip install {report_to} "):
        launch.preflight(config)
    code = main(["train", "--data", sst_mini, "--model", str(tiny_model), "--report-to", report_to])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"pip install {report_to}" in err and "requirements-tracking" in err
    assert not runs.runs_dir().exists() or not any(runs.runs_dir().iterdir())
    assert f"pip install {report_to}" in missing_tracker(report_to)


@pytest.mark.parametrize("kwargs, message", [
    (dict(report_to="wandb"), "report_to must be one of none, tensorboard, mlflow"),
    (dict(tracking_uri="http://localhost:5000"), "give them with report_to mlflow"),
    (dict(report_to="tensorboard", experiment_name="x"), "give them with report_to mlflow"),
    (dict(report_to="mlflow", tracking_uri="sqlite:///mlflow.db"), "not a URI with an absolute path"),
    (dict(report_to="mlflow", tracking_uri="localhost"), "not a URI"),
    (dict(report_to="mlflow", experiment_name="a\nb"), "printable"),
    (dict(report_to="mlflow", tracking_uri="http://me:secret@mlflow.lan:5000"), "holds a password.*MLFLOW_TRACKING_PASSWORD"),
    (dict(report_to="mlflow", tracking_uri="postgresql://me:secret@db/mlflow"), "holds a password.*PGPASSWORD"),
])
def test_bad_tracking_settings_get_plain_messages(kwargs, message):
    with pytest.raises(BmcoreError, match=message):
        TrainConfig(**kwargs)


def test_the_settings_agree_in_config_json_cli_flags_and_back():
    config = TrainConfig(dataset="sst-mini", report_to="mlflow", tracking_uri="http://me@mlflow.lan:5000",
                         experiment_name="sentiment")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    flags = config.cli_args()
    assert flags == ["--report-to", "mlflow", "--tracking-uri", "http://me@mlflow.lan:5000",
                     "--experiment-name", "sentiment"]
    # A server is its own UI (a password, refused in config.json, would not be shown)
    status = {"tracking_uri": url_without_password(config.tracking_uri), "mlflow_run_id": "abc", "mlflow_experiment_id": "3"}
    assert open_command("/x/run", config, status)[1] == "http://me@mlflow.lan:5000/#/experiments/3/runs/abc"
    assert url_without_password("http://me:secret@mlflow.lan:5000") == "http://me:***@mlflow.lan:5000"
    assert url_without_password("postgresql://me:p@ss@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert url_without_password("http://me:secret@[::1") == "http://me:***@[::1"  # unreadable: masked by pattern
    assert tracking.trainer_report_to(config) == ["mlflow"] and tracking.trainer_report_to(TrainConfig()) == []
