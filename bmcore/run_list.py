"""The runs table: one :class:`RunSummary` per run folder in the workspace (a damaged run listed with its error,
never hidden), and the finished runs whose models a page can use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import FINE_TUNE, task_of
from .errors import BmcoreError
from .files import read_json
from .runs import COMPLETED, CONFIG_FILE, EVAL_FILE, FAILED, MODEL_DIR, RUNNING, is_run_dir, read_eval, read_status
from .workspace import runs_dir


@dataclass
class RunSummary:
    """One row of the runs table."""

    name: str
    path: str
    state: str
    model: str = ""
    dataset: str = ""
    created: str = ""
    duration_s: float | None = None
    best_metric: str = ""
    best_value: float | None = None
    test_accuracy: float | None = None
    test_metric: str = ""  # the metric that sums up the run's test split (its task's first headline metric)
    test_score: float | None = None
    error: str = ""
    task: str = FINE_TUNE  # or masked_lm: a pretraining run, whose model/ is a base model for fine-tuning

    @property
    def pretraining(self) -> bool:
        return self.task != FINE_TUNE


def _duration(status: dict[str, Any]) -> float | None:
    start = status.get("started_ts")
    if not start:
        return None
    end = status.get("ended_ts") or (time.time() if status.get("state") == RUNNING else None)
    return round(end - start, 1) if end else None


def summarize_run(run_dir: Path) -> RunSummary:
    """A :class:`RunSummary` for the runs table; a damaged run still gets a row with its error."""
    run_dir = Path(run_dir)
    row = RunSummary(name=run_dir.name, path=str(run_dir), state=FAILED)
    try:
        status = read_status(run_dir)
        row.state = status["state"]
        row.created = status.get("created") or ""
        row.duration_s = _duration(status)
        row.error = status.get("error") or ""
        row.best_metric = status.get("best_metric_name") or ""
        row.best_value = status.get("best_metric")
    except BmcoreError as exc:
        row.error = str(exc)
    try:
        cfg = read_json(run_dir / CONFIG_FILE)
        row.model = str(cfg.get("model_name_or_path", ""))
        row.dataset = str(cfg.get("dataset", ""))
        row.task = str(task_of(cfg))
    except BmcoreError as exc:
        row.error = row.error or str(exc)
    if (run_dir / EVAL_FILE).exists():
        try:
            evaluation = read_eval(run_dir)
            test = evaluation.get("test") or {}
            row.test_accuracy = test.get("accuracy")
            row.test_metric = str(evaluation.get("headline") or "accuracy")  # eval.json before regression: accuracy
            row.test_score = test.get(row.test_metric)
        except BmcoreError as exc:
            row.error = row.error or str(exc)
    return row


def list_runs() -> list[RunSummary]:
    """Every run in the workspace, newest first. Damaged runs are listed with their error, never hidden."""
    rows = [summarize_run(p) for p in runs_dir().iterdir() if not p.name.startswith(".") and is_run_dir(p)]
    return sorted(rows, key=lambda r: (r.created, r.name), reverse=True)


def finished_runs(classifiers: bool = False) -> list[RunSummary]:
    """The completed runs with a saved ``model/`` folder, newest first: the models a page can use.

    ``classifiers`` leaves out masked-LM pretraining runs, which have no classification head to score
    (fine-tunes from them are classifiers and stay).
    """
    return [r for r in list_runs() if r.state == COMPLETED and (Path(r.path) / MODEL_DIR).is_dir()
            and not (classifiers and r.pretraining)]


def short_model(model: str) -> str:
    """A model reference short enough for a table: a local path by its folder name (``run/model`` for a run's model)."""
    p = Path(model)
    return model if not p.is_absolute() else (f"{p.parent.name}/{p.name}" if p.name == MODEL_DIR else p.name)
