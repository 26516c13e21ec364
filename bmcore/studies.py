"""A search's folder and storage: the channel between a search's driver (:mod:`bmcore.tune`) and the Search tab.

A study lives in ``WORKSPACE/studies/NAME/``: ``study.db`` (Optuna's SQLite storage, unless a ``--storage`` URL names
another, e.g. a database several machines share), ``status.json`` (the driver: state, pid, what the budget bought; written
atomically), ``tune.log`` (what the driver printed) and ``stop.request`` while a cancel is asked for. Trials are run
folders (:mod:`bmcore.runs`); each trial's user attributes name its run.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files, processes, runs
from .display import url_without_password
from .errors import BmcoreError
from .workspace import check_name, inside, workspace_dir

STUDIES_DIR = "studies"
SEARCH_LOG = "tune.log"
DB_FILE = "study.db"
CREATE_TRIES = 5  # opening a new database that other processes create at the same moment
CREATE_RACE_SIGNS = ("already exists", "UNIQUE constraint failed: alembic_version", "Duplicate entry", "duplicate key")
RUNNING, COMPLETED, CANCELLED, FAILED = "running", "completed", "cancelled", "failed"

# Trial user attributes (strings and numbers, so they read the same from any storage).
RUN, RUN_DIR, WORKER, DEFAULTS, PREDICTED, SECONDS, OUTCOME = ("run", "run_dir", "worker", "defaults", "predicted_s",
                                                                "seconds", "outcome")


def studies_dir() -> Path:
    """Folder holding searches, one subfolder each."""
    path = workspace_dir() / STUDIES_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def study_dir(name: str) -> Path:
    return inside(studies_dir(), check_name(name, "study name"))


def default_storage(name: str) -> str:
    """Optuna's SQLite storage in the study's folder."""
    return f"sqlite:///{study_dir(name) / DB_FILE}"


def parse_budget(text: str | float | int) -> float:
    """Seconds from ``30m``, ``90s``, ``1.5h`` or a bare number of minutes; one line for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*", str(text).lower())
    if not m:
        raise BmcoreError(f"budget {text!r} is not a duration; give minutes like 30m, seconds like 90s or hours like 1h")
    seconds = float(m.group(1)) * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 60}[m.group(2)]
    if seconds <= 0:
        raise BmcoreError("the budget must be more than zero")
    return seconds


def direction_of(metric: str) -> str:
    return "minimize" if metric == "loss" else "maximize"


def default_study_name(dataset: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", dataset.split(":")[-1].split("/")[-1]).strip("-")[:40] + "-search"


TUNE_SETTINGS = ("seed", "report_to", "tracking_uri", "experiment_name")  # TrainConfig fields ``tune`` takes as flags


@dataclass
class Search:
    """One search: what to train on, the candidate models, the budget, and where the study is kept."""

    dataset: str
    models: list[str] = field(default_factory=list)
    budget_s: float = 1800.0
    trials: int | None = None
    study: str | None = None
    storage: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields every trial shares (seed, precision...)
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # a new study's first trials after the defaults: settings to try

    def __post_init__(self) -> None:
        self.study = check_name(self.study or default_study_name(self.dataset), "study name")
        self.storage = self.storage or default_storage(self.study)
        if self.trials is not None and self.trials < 1:
            raise BmcoreError(f"--trials must be at least 1, not {self.trials}")


def import_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def make_storage(url: str) -> Any:
    """Optuna's storage for ``url`` (a database URL), checked by a first query; one line when it cannot be reached.

    Processes that open a new database at once (a search's driver, a second worker, the Search tab reading the
    leaderboard) race to create its tables; the losers see "already exists" or a duplicate schema version and try
    again, by then on a finished schema."""
    optuna = import_optuna()
    attempt = 1
    while True:
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                                 if url.startswith("sqlite") else {})
            storage.get_all_studies()
            return storage
        except Exception as exc:  # a bad URL, a missing driver, a server that does not answer
            reason = " ".join(str(exc).split())[:200]
            if attempt >= CREATE_TRIES or not any(sign in reason for sign in CREATE_RACE_SIGNS):
                raise BmcoreError(f"the study storage {url_without_password(url)} cannot be reached: {reason}") from None
            time.sleep(0.2 * attempt)
            attempt += 1


def load_study(name: str, storage: str | None = None) -> Any:
    """The study ``name`` for reading (the leaderboard, the plots), or None when there is none (its default SQLite
    file not made yet: reading creates nothing)."""
    url = storage or default_storage(name)
    if storage is None and not (study_dir(name) / DB_FILE).exists():
        return None
    try:
        return import_optuna().load_study(study_name=name, storage=make_storage(url))
    except KeyError:
        return None


def write_search_status(search: Search, **fields: Any) -> dict[str, Any]:
    path = study_dir(search.study) / runs.STATUS_FILE
    status = files.read_json(path) if path.exists() else {}
    status.update(fields)
    files.write_json_atomic(path, status)
    return status


def read_search_status(name: str) -> dict[str, Any]:
    """The study's driver status; a driver whose process died reads as ``failed``."""
    path = study_dir(name) / runs.STATUS_FILE
    if not path.exists():
        return {}
    status = files.read_json(path)
    if status.get("state") == RUNNING and not processes.pid_alive(status.get("pid"), status.get("pid_start")):
        status = {**status, "state": FAILED, "error": status.get("error") or "the search process ended without a word"}
    return status


def mark_failed(search: Search, error: str) -> None:
    """Record a driver's one-line failure in the study's status, when that status is this process's own (a study
    another process runs, or a refused one of another dataset, is left as it is)."""
    path = study_dir(search.study) / runs.STATUS_FILE
    if path.exists() and files.read_json(path).get("pid") == os.getpid():
        write_search_status(search, state=FAILED, error=error, ended=runs.now())


def request_search_stop(name: str) -> None:
    """Ask a study's driver to stop: it stops the trial that trains (its run ends cancelled) and ends the search."""
    (study_dir(name) / runs.STOP_FILE).write_text(runs.now(), encoding="utf-8")


def trial_table(name: str, storage: str | None = None) -> list[dict[str, Any]]:
    """Every trial of a study as plain records (for the leaderboard): number, state, outcome, validation value, run,
    seconds, params. An unknown study: []."""
    study = load_study(name, storage)
    if study is None:
        return []
    out = []
    for t in study.get_trials(deepcopy=False):
        out.append({"trial": t.number, "state": t.state.name.lower(), "outcome": t.user_attrs.get(OUTCOME),
                    "value": t.value, "run": t.user_attrs.get(RUN), "seconds": t.user_attrs.get(SECONDS),
                    "predicted_s": t.user_attrs.get(PREDICTED), "defaults": bool(t.user_attrs.get(DEFAULTS)),
                    "last_value": (t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None),
                    "params": dict(t.params)})
    return out


def list_studies() -> list[str]:
    """Names of the searches in the workspace, newest first."""
    found = [p for p in studies_dir().iterdir() if (p / runs.STATUS_FILE).exists()]
    return [p.name for p in sorted(found, key=lambda p: (p / runs.STATUS_FILE).stat().st_mtime, reverse=True)]


def tune_command(search: Search) -> list[str]:
    """The CLI command of a search (what the Search tab starts and shows)."""
    cmd = ["python", "-m", "bmcore", "tune", "--data", search.dataset, "--budget", f"{search.budget_s / 60:g}m",
           "--study", search.study]
    if search.models:
        cmd += ["--models", ",".join(search.models)]
    if search.trials:
        cmd += ["--trials", str(search.trials)]
    if search.storage and search.storage != default_storage(search.study):
        cmd += ["--storage", search.storage]
    for key in TUNE_SETTINGS:  # the settings every trial shares that the command takes
        if search.settings.get(key) is not None:
            cmd += [f"--{key.replace('_', '-')}", str(search.settings[key])]
    return cmd


def start_search(search: Search) -> int:
    """Start ``tune_command`` in the background (a new session, output to the study's ``tune.log``); the pid."""

    status = read_search_status(search.study)
    if status.get("state") == RUNNING:
        raise BmcoreError(f"search {search.study!r} is already running (process {status.get('pid')}); wait or stop it")
    folder = study_dir(search.study)
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, *tune_command(search)[1:]]
    pid = processes.spawn(cmd, folder / SEARCH_LOG)
    write_search_status(search, state=RUNNING, pid=pid, pid_start=processes.process_start(pid), started=runs.now(),
                 dataset=search.dataset, budget_s=search.budget_s, error=None, ended=None)
    return pid
