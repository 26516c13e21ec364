"""Experiment tracking: a run's settings, curves and test metrics in TensorBoard or MLflow.

The Trainer's own integrations do the logging: ``TrainingArguments(report_to=[...])`` adds transformers'
``TensorBoardCallback`` or ``MLflowCallback``, which log the Trainer's arguments and the model's config as the run's
settings, then every logged loss, learning rate and evaluation as curves. They read their places from environment
variables (``TENSORBOARD_LOGGING_DIR``, ``MLFLOW_TRACKING_URI``, ...), which :func:`run_tracked` sets for the job
alone and restores afterwards (a test or a bench that runs two jobs in one process keeps them apart).

What the integrations cannot log, this module adds: bmcore scores the test split after training, when their
callbacks are done, so the test metrics are written into the same TensorBoard folder or MLflow run afterwards, with
bmcore's own settings and, for MLflow, the ``model/`` folder as an artifact. For that, the MLflow run is started here
before training: the callback finds it active and logs into it instead of starting (and ending) its own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import runs
from .data.readers import suggest_name
from .data.storage import is_prepared
from .display import url_without_password
from .errors import BmcoreError
from .files import read_json
from .workspace import workspace_dir

log = logging.getLogger("bmcore.train")

NONE = "none"
TENSORBOARD = "tensorboard"
MLFLOW = "mlflow"
TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard: the event files
MLFLOW_DB = "mlflow.db"  # WORKSPACE/mlflow.db: the default store, SQLite as MLflow 3's own default (sqlite:///mlflow.db)
MLFLOW_ARTIFACTS = "mlartifacts"  # beside the database: the artifacts (the folder name mlflow server uses)
REQUIREMENTS = "requirements-tracking.txt"
MODEL_ARTIFACT = "model"  # the artifact path of model/ in the MLflow run


def installed(report_to: str) -> bool:
    """True when the tracker's package is importable (always for ``none``)."""
    return report_to == NONE or importlib.util.find_spec(report_to) is not None


def check_installed(report_to: str) -> None:
    """Refuse a tracker whose package is missing, in one line that names the pip command."""
    if not installed(report_to):
        raise BmcoreError(f"report_to {report_to} needs the {report_to} package, which is not installed: "
                          f"pip install {report_to} (or pip install -r {REQUIREMENTS})")


def trainer_report_to(config: Any) -> list[str]:
    """``TrainingArguments.report_to`` for a config: ``[]`` (no integration at all) or the one tracker."""
    report_to = getattr(config, "report_to", NONE)
    return [] if report_to == NONE else [report_to]


def default_tracking_uri() -> str:
    """The workspace's own MLflow store: ``sqlite:////WORKSPACE/mlflow.db`` (an absolute path)."""
    return f"sqlite:///{workspace_dir() / MLFLOW_DB}"


def tracking_uri(config: Any) -> str:
    """The MLflow store a run of ``config`` reports to."""
    return getattr(config, "tracking_uri", None) or default_tracking_uri()


def experiment_name(config: Any) -> str:
    """The MLflow experiment: the config's, else the dataset's name (as the job prepares it from a source)."""
    if name := getattr(config, "experiment_name", None):
        return name.strip()
    return default_experiment(config.dataset)


def default_experiment(dataset: str) -> str:
    """The experiment a run on ``dataset`` joins when none is named: the prepared dataset's name, else the name the
    job will prepare the source under (what the pages show as the placeholder)."""
    return dataset if is_prepared(dataset) else suggest_name(dataset)


def tensorboard_dir(run_dir: str | Path) -> Path:
    """Where a run's TensorBoard event files go: ``RUN/tensorboard``."""
    return Path(run_dir) / TENSORBOARD_DIR


def job_environment(run_dir: Path, config: Any) -> dict[str, str]:
    """The environment variables the Trainer's integration reads, for one job."""
    if config.report_to == TENSORBOARD:
        return {"TENSORBOARD_LOGGING_DIR": str(tensorboard_dir(run_dir))}
    if config.report_to == MLFLOW:
        # Checkpoints are not copied on every save (HF_MLFLOW_LOG_ARTIFACTS): model/ is logged once, at the end.
        return {"MLFLOW_TRACKING_URI": tracking_uri(config), "MLFLOW_EXPERIMENT_NAME": experiment_name(config),
                "HF_MLFLOW_LOG_ARTIFACTS": "0", "MLFLOW_NESTED_RUN": "0"}
    return {}


@contextlib.contextmanager
def scoped_environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the ``with`` block only; what was there before comes back after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_tracked(run_dir: Path, config: Any, main: bool, job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``job`` (a training loop that returns its ended fields, ``state`` among them, for the caller to write once
    this returns) with the config's tracker set up, then log what the integration could not: the test metrics,
    bmcore's settings and, for MLflow, ``model/``."""
    report_to = getattr(config, "report_to", NONE)
    if report_to == NONE:
        return job()
    check_installed(report_to)
    with scoped_environment(job_environment(run_dir, config)):
        if report_to == TENSORBOARD or not main:  # other ranks: their callbacks log nothing
            status = job()
            if main:
                finish_tensorboard(run_dir, config, status)
            return status
        mlflow = start_mlflow_run(run_dir, config)
        try:
            status = job()
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        try:
            finish_mlflow(mlflow, run_dir, status)
        finally:
            mlflow.end_run(status="FINISHED" if status.get("state") == runs.COMPLETED else "KILLED")
        return status


def start_mlflow_run(run_dir: Path, config: Any) -> Any:
    """Start (or, for a resumed run, reopen) the MLflow run the callback will log into; returns the ``mlflow``
    module. bmcore's settings are logged as ``bmcore.*`` params: the callback logs the Trainer's own names.

    Call it inside :func:`job_environment`'s variables (as :func:`run_tracked` does): MLflow's fluent API, which the
    callback shares, finds the store through ``MLFLOW_TRACKING_URI``.
    """
    import mlflow

    uri, name = tracking_uri(config), experiment_name(config)
    if uri.startswith("sqlite:///"):  # SQLite makes the database, not its folder
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        name, artifact_location=artifact_location(uri))
    if mlflow.active_run() is not None:  # a run left open by an earlier job in this process (tests, bench)
        mlflow.end_run()
    previous = read_json(run_dir / runs.STATUS_FILE).get("mlflow_run_id")
    active = None
    if isinstance(previous, str) and previous:
        with contextlib.suppress(Exception):  # gone from this store: a new run
            active = mlflow.start_run(run_id=previous)
    if active is None:
        active = mlflow.start_run(experiment_id=experiment_id, run_name=run_dir.name,
                                  tags={"bmcore.run": run_dir.name, "bmcore.run_dir": str(run_dir)})
        mlflow.log_params({f"bmcore.{k}": shown_param(v) for k, v in config.to_dict().items()})
    runs.write_status(run_dir, tracking_uri=url_without_password(uri), mlflow_run_id=active.info.run_id,
                      mlflow_experiment_id=str(experiment_id))
    log.info("MLflow: run %s in experiment %r at %s", active.info.run_id, name, url_without_password(uri))
    return mlflow


def shown_param(value: Any) -> str:
    """A setting as an MLflow param value (a string, cut to MLflow's limit)."""
    return (value if isinstance(value, str) else json.dumps(value))[:6000]


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite database (MLflow would pick ``./mlruns`` in the
    job's working folder); a server or another database decides for itself (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).parent / MLFLOW_ARTIFACTS).as_uri()


def scored_test_metrics(run_dir: Path) -> dict[str, float]:
    """The test split's scalar metrics from ``eval.json`` (empty when the test split was left unscored)."""
    try:
        test = read_json(run_dir / runs.EVAL_FILE).get("test") or {}
    except (BmcoreError, OSError):
        return {}
    return {k: float(v) for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def last_step(run_dir: Path) -> int:
    """The run's last logged optimizer step (where the test metrics are plotted)."""
    steps = [m.get("step") for m in runs.read_metrics(run_dir)]
    return max((s for s in steps if isinstance(s, int)), default=0)


def finish_tensorboard(run_dir: Path, config: Any, status: dict[str, Any], settings: bool = True) -> None:
    """Add the test metrics (``test/<metric>``, as the integration names ``test_`` logs) and, with ``settings``,
    bmcore's settings to the run's TensorBoard folder. The model stands without them: a failure is logged."""
    try:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(tensorboard_dir(run_dir)))
        try:
            step = last_step(run_dir)
            if settings:
                writer.add_text("bmcore/config", json.dumps(config.to_dict(), indent=1), step)
            for key, value in scored_test_metrics(run_dir).items():
                writer.add_scalar(f"test/{key}", value, step)
        finally:
            writer.close()
    except Exception as exc:  # noqa: BLE001 - the trained model and eval.json stand without it
        log.warning("the test metrics did not reach TensorBoard: %s", exc)


def finish_mlflow(mlflow: Any, run_dir: Path, status: dict[str, Any]) -> None:
    """Log the test metrics (``test_<metric>``, beside the callback's ``eval_<metric>``) and ``model/`` into the
    active MLflow run. The model stands without them: a failure is logged."""
    try:
        if metrics := scored_test_metrics(run_dir):
            mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()}, step=last_step(run_dir))
        model_dir = run_dir / runs.MODEL_DIR
        if status.get("state") == runs.COMPLETED and model_dir.is_dir():
            mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_ARTIFACT)
    except Exception as exc:  # noqa: BLE001
        log.warning("the test metrics or the model did not reach MLflow: %s", exc)


def track_late_test_scores(run_dir: Path, config: Any) -> None:
    """A run whose test split was scored after its job ended (a search's chosen trial, :func:`bmcore.train.score_test`):
    its test metrics join the tracker's record of it, as they would have at the job's end. The scores stand without
    them: a failure is logged."""
    report_to = getattr(config, "report_to", NONE)
    if report_to == TENSORBOARD:
        finish_tensorboard(run_dir, config, {}, settings=False)
        return
    run_id = read_json(run_dir / runs.STATUS_FILE).get("mlflow_run_id")
    if report_to != MLFLOW or not isinstance(run_id, str) or not run_id:
        return
    try:
        import mlflow

        client, step = mlflow.MlflowClient(tracking_uri(config)), last_step(run_dir)
        for key, value in scored_test_metrics(run_dir).items():
            client.log_metric(run_id, f"test_{key}", value, step=step)
    except Exception as exc:  # noqa: BLE001
        log.warning("the test metrics did not reach MLflow: %s", exc)
