"""What the Train page says about experiment tracking: the setting's explanation and how to open a run's records."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from .. import tracking
from ..display import url_without_password
from ..tracking import MLFLOW, NONE, TENSORBOARD, tensorboard_dir, tracking_uri
from . import shown_path

REPORT_TO_EXPLAINED = ("Tracking sends the run's settings, its curves (loss, validation metrics at each evaluation) "
                       "and its final test metrics to TensorBoard (event files in the run folder) or MLflow (a run "
                       "in a tracking store, with model/ as an artifact), beside bmcore's own view.")
REPORT_TO_LABELS = {NONE: "none", TENSORBOARD: "TensorBoard", MLFLOW: "MLflow"}


def missing_tracker(report_to: str) -> str | None:
    """A line for the settings when the chosen tracker's package is not installed (the start is refused too)."""
    if tracking.installed(report_to):
        return None
    return f"{REPORT_TO_LABELS[report_to]} is not installed here: pip install {report_to} (or pip install -r " \
           "requirements-tracking.txt), then restart the app."


def open_command(run_dir: str | Path, config: Any, status: dict[str, Any]) -> tuple[str, str] | None:
    """How to open a run's tracked records: (a caption, the command or address shown as code), or None for a run
    that reports to no tracker. ``status`` is the run's status.json (the MLflow store and run the job used)."""
    report_to = getattr(config, "report_to", NONE)
    if report_to == TENSORBOARD:
        return ("Its TensorBoard records (settings, curves, test metrics); open them with:",
                shlex.join(["tensorboard", "--logdir", str(shown_path(tensorboard_dir(run_dir)))]))
    if report_to != MLFLOW:
        return None
    uri = status.get("tracking_uri") if isinstance(status.get("tracking_uri"), str) else None
    uri = uri or url_without_password(tracking_uri(config))
    run_id, experiment = status.get("mlflow_run_id"), status.get("mlflow_experiment_id")
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI
        if isinstance(run_id, str) and isinstance(experiment, str):
            return ("Its MLflow run (settings, curves, test metrics, model/) is on the tracking server:",
                    f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}")
        return "Its MLflow run goes to the tracking server:", uri
    where = f" (run {run_id})" if isinstance(run_id, str) else ""
    return (f"Its MLflow run{where}: settings, curves, test metrics, model/. Open the store's UI with:",
            shlex.join(["mlflow", "ui", "--backend-store-uri", uri]))
