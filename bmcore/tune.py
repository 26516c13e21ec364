"""A search over models and settings under a time budget: an Optuna study whose trials are ordinary bmcore runs.

``python -m bmcore tune --data NAME --budget 30m`` (the Train page's Search tab starts the same command) drives a
study: it asks Optuna's TPE sampler for a trial's settings, creates a run folder for them (``STUDY-tN`` in the
workspace's runs, trained by ``python -m bmcore train RUN`` on the device queue: live status, cancel, Evaluate), follows
the run's ``metrics.jsonl`` and reports each evaluation's validation figure to a successive-halving pruner, which stops
a hopeless trial early (the run's own cancel: it ends ``cancelled``, its trial ``PRUNED``). Trial 0 of a new study is
each candidate model with every default, so a search never ends worse on validation than today's run.

Budget: wall-clock seconds for this invocation. Before a trial starts, its cost is predicted from the run's own timing
probe (:class:`bmcore.estimate.CostModel`: once per model, scaled by epochs, calibrated by real trials); a trial that
cannot finish in what is left is not started (three such in a row end the search), and the end says what it bought.

Honest selection: trials are compared on validation only (their runs train with ``score_test`` off); when the search
ends, the best trial's test split is scored once (:func:`bmcore.train.score_test`).

The study's folder and storage are :mod:`bmcore.studies`' business. A study survives a restart: run the command again
with the same ``--study`` to continue it with more budget. A trial whose driver died is adopted by the next driver (its
run followed to the end if it still trains, else failed).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import processes, runs
from .config import TrainConfig
from .data.storage import is_prepared, load_prepared, save_prepared
from .defaults import task_defaults
from .display import url_without_password
from .errors import BmcoreError
from .estimate import CostModel
from .launch import preflight
from .limits import check_jobs
from .modalities import get_modality
from .search_space import CHOICE, FLOAT, INT, LOG, SearchParam
from .studies import (
    CANCELLED,
    COMPLETED,
    DEFAULTS,
    OUTCOME,
    PREDICTED,
    RUN,
    RUN_DIR,
    RUNNING,
    SECONDS,
    WORKER,
    Search,
    direction_of,
    import_optuna,
    make_storage,
    study_dir,
    write_search_status,
)
from .train import load_run_dataset, score_test, task_for_config

log = logging.getLogger("bmcore.tune")

MODEL_PARAM = "model"  # the trial parameter that picks the candidate model
REDUCTION_FACTOR = 3  # successive halving keeps the best third at each rung
# The pruner's resource is a trial's progress through its own schedule, in percent: trials meet at the same point of
# their learning-rate schedules (a 10-epoch trial at 3 epochs still trains at a high rate; comparing it there with a
# 3-epoch trial at its end would prune every long schedule). First rung at 30%, the next at 90%.
MIN_RESOURCE = 30
STARTUP_TRIALS = 4  # TPE samples at random until this many trials finished; a 20-minute search holds about ten
POLL_S = 1.0
MISSES = 3  # trials in a row that cannot finish in what is left of the budget before the search ends















# --- the study -----------------------------------------------------------------------------------










def _sampler_and_pruner() -> tuple[Any, Any]:
    optuna = import_optuna()
    sampler = optuna.samplers.TPESampler(n_startup_trials=STARTUP_TRIALS, multivariate=True)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=MIN_RESOURCE, reduction_factor=REDUCTION_FACTOR)
    return sampler, pruner


def prepared_dataset(name: str) -> Any:
    """The prepared dataset a search trains on: prepared now (once, like ``train`` does) when ``name`` is a source."""
    if is_prepared(name):
        return load_prepared(name)
    ds = load_run_dataset(TrainConfig(dataset=name))
    if not is_prepared(ds.name):
        save_prepared(ds)
    return ds


def open_study(search: Search, ds: Any, metric: str) -> tuple[Any, bool]:
    """Create the study (trial 0: each candidate model with its defaults) or load it; a study of another dataset is
    refused. Returns the study and whether it is new."""
    optuna = import_optuna()
    study_dir(search.study).mkdir(parents=True, exist_ok=True)  # the default storage's folder, and status.json's
    storage = make_storage(search.storage)
    sampler, pruner = _sampler_and_pruner()
    try:
        study = optuna.create_study(study_name=search.study, storage=storage, direction=direction_of(metric),
                                    sampler=sampler, pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=search.study, storage=storage, sampler=sampler, pruner=pruner)
        theirs = study.user_attrs.get("dataset")
        if theirs != ds.name:
            raise BmcoreError(f"study {search.study!r} searches dataset {theirs!r}, not {ds.name!r}; "
                              f"give another --study name") from None
        return study, False
    study.set_user_attr("dataset", ds.name)
    study.set_user_attr("metric", metric)
    study.set_user_attr("models", search.models)
    study.set_user_attr("created", runs.now())
    for model in search.models:  # the defaults first: the search never ends worse than them on validation
        study.enqueue_trial({MODEL_PARAM: model}, user_attrs={DEFAULTS: True})
    for params in search.enqueue:
        study.enqueue_trial({MODEL_PARAM: search.models[0], **params})
    return study, True


def search_space(search: Search, ds: Any, settings: dict[str, Any]) -> list[SearchParam]:
    """The settings a trial varies: its task's and its inputs' (:mod:`bmcore.tasks`, :mod:`bmcore.modalities`)."""
    task = task_for_config(TrainConfig.from_dict(settings), ds)
    return [*get_modality(task.modality).search_space(settings, ds, search.models), *task.search_space(settings)]


def suggest(trial: Any, param: SearchParam) -> Any:
    """Optuna's suggestion for one :class:`SearchParam`."""
    if param.kind == LOG:
        return trial.suggest_float(param.name, param.low, param.high, log=True)
    if param.kind == FLOAT:
        return trial.suggest_float(param.name, param.low, param.high)
    if param.kind == INT:
        return trial.suggest_int(param.name, int(param.low), int(param.high))
    if param.kind == CHOICE:
        return trial.suggest_categorical(param.name, list(param.choices))
    raise ValueError(f"unknown search parameter kind {param.kind!r}")


def trial_settings(trial: Any, search: Search, ds: Any) -> dict[str, Any]:
    """A trial's TrainConfig fields: the candidate model's defaults, then (unless it is a defaults trial) what
    Optuna suggests for each setting of the space."""
    model = trial.suggest_categorical(MODEL_PARAM, search.models)
    settings = task_defaults({**search.settings, "dataset": ds.name, "model_name_or_path": model})
    if not trial.user_attrs.get(DEFAULTS):
        for param in search_space(search, ds, settings):
            settings[param.name] = suggest(trial, param)
    settings["score_test"] = False  # compared on validation; the chosen trial's test split is scored once, at the end
    return settings



# --- following a trial's run ------------------------------------------------------------------------


def _worker() -> str:
    me = processes.own_process()
    return json.dumps({"host": socket.gethostname(), "pid": me.get("pid"), "pid_start": me.get("pid_start")})


def _worker_alive(worker: str | None) -> bool:
    try:
        w = json.loads(worker or "{}")
    except ValueError:
        return False
    return w.get("host") == socket.gethostname() and processes.pid_alive(w.get("pid"), w.get("pid_start"))


def set_trial_attr(study: Any, number: int, key: str, value: Any) -> None:
    """Set a user attribute of a running trial of ``study`` by its number (from any driver)."""
    storage = study._storage
    storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(study._study_id, number), key, value)


def follow(study: Any, trial: Any, run_dir: Path, metric: str, stop: Callable[[], bool], deadline: float) -> str:
    """Follow a trial's run to its end, reporting each evaluation's validation ``metric`` to the pruner (step: percent
    of the run's optimiser steps done) and stopping the run when the pruner, the user (``stop``) or the deadline says so. Tells
    the study the outcome and returns it: completed, pruned, cancelled, over budget or failed."""
    optuna = import_optuna()
    reported: set[int] = set()
    stopped = ""
    began = time.time()
    while True:
        status = runs.read_status(run_dir)
        total = status.get("total_steps")
        for rec in runs.read_metrics(run_dir) if isinstance(total, int) and total > 0 else ():
            value, step = rec.get(f"eval_{metric}"), round(100 * rec.get("step", 0) / total)
            if rec.get("kind") != "eval" or not isinstance(value, (int, float)) or step in reported:
                continue
            reported.add(step)
            trial.report(float(value), step)
            if not stopped and step < 100 and trial.should_prune():  # at 100% it has finished: nothing to save
                stopped = "pruned"
                log.info("trial %d: pruned at %d%% of its schedule (%s %.4f)", trial.number, step, metric, value)
                runs.request_stop(run_dir)
        if status["state"] not in runs.ACTIVE:
            break
        if not stopped and stop():
            stopped = "cancelled"
            runs.request_stop(run_dir)
        if not stopped and time.time() > deadline:
            stopped = "over budget"
            log.info("trial %d: the budget ran out while it trained; stopping it", trial.number)
            runs.request_stop(run_dir)
        time.sleep(POLL_S)
    state, value = status["state"], status.get("best_metric")
    if state == runs.COMPLETED and isinstance(value, (int, float)) and math.isfinite(value):
        if stopped:  # the run finished before it read the stop: its full score is known, the trial is complete
            log.info("trial %d: finished before it was stopped (%s); counted as completed", trial.number, stopped)
        outcome = "completed"
    elif stopped:
        outcome = stopped
    else:
        outcome = "failed" if state in (runs.FAILED, runs.COMPLETED) else "cancelled"
    set_trial_attr(study, trial.number, OUTCOME, outcome)
    set_trial_attr(study, trial.number, SECONDS, round(time.time() - began, 1))
    if state == runs.FAILED:
        set_trial_attr(study, trial.number, "error", str(status.get("error") or "")[:300])
    if outcome == "completed":
        study.tell(trial.number, float(value))
    else:
        study.tell(trial.number, state=optuna.trial.TrialState.PRUNED if outcome == "pruned" else optuna.trial.TrialState.FAIL)
    return outcome


class _Adopted:
    """A trial of the storage (by number), for :func:`follow` when its own driver is gone."""

    def __init__(self, study: Any, frozen: Any) -> None:
        self.study, self.number, self.frozen = study, frozen.number, frozen

    def report(self, value: float, step: int) -> None:
        if step not in self.frozen.intermediate_values:  # shown on the leaderboard; the pruner does not judge it
            self.study._storage.set_trial_intermediate_value(self.frozen._trial_id, step, value)

    def should_prune(self) -> bool:
        return False  # its rung values belong to the driver that started it; an adopted trial finishes


def adopt_orphans(study: Any, metric: str, stop: Callable[[], bool], deadline: float, echo: Callable[[str], None]) -> None:
    """Trials left running by a driver that died: follow each one's run to its end (or fail it when it has none)."""
    optuna = import_optuna()
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _worker_alive(frozen.user_attrs.get(WORKER)):
            continue  # another live driver's trial
        run_dir = Path(frozen.user_attrs.get(RUN_DIR) or "/nonexistent")
        if not (run_dir / runs.STATUS_FILE).exists():
            study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            echo(f"trial {frozen.number}: its driver stopped before its run started; marked failed")
            continue
        echo(f"trial {frozen.number}: its driver stopped; following its run {run_dir.name}")
        set_trial_attr(study, frozen.number, WORKER, _worker())
        follow(study, _Adopted(study, frozen), run_dir, metric, stop, deadline)
        drop_checkpoints(run_dir)


# --- the driver -----------------------------------------------------------------------------------


def run_search(search: Search, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the search to the end of its budget (or ``trials`` trials, or a stop request); choose the best trial on
    validation, score its test split once, and return the summary: ``best_run``, ``trials`` and what the budget
    bought."""
    optuna = import_optuna()
    t0 = time.time()
    deadline = t0 + search.budget_s
    folder = study_dir(search.study)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.STOP_FILE).unlink(missing_ok=True)
    ds = prepared_dataset(search.dataset)
    search.dataset = ds.name
    base = TrainConfig.from_dict(task_defaults({**search.settings, "dataset": ds.name}))
    if not search.models:
        search.models = [base.model_name_or_path]
    for model in search.models:  # an unknown or unreadable model: one line before anything starts
        preflight(TrainConfig.from_dict(task_defaults({**search.settings, "dataset": ds.name, "model_name_or_path": model})))
    metric = base.metric_for_best_model
    study, new = open_study(search, ds, metric)
    if not new:
        search.models = list(dict.fromkeys([*study.user_attrs.get("models", []), *search.models]))
        study.set_user_attr("models", search.models)
    write_search_status(search, state=RUNNING, **processes.own_process(), started=runs.now(), budget_s=search.budget_s,
                 dataset=ds.name, models=search.models, storage=url_without_password(search.storage), metric=metric, error=None, ended=None,
                 bought=None)

    def stop() -> bool:
        return (folder / runs.STOP_FILE).exists()

    adopt_orphans(study, metric, stop, deadline, echo)
    cost = CostModel(ds)
    started_here, misses, outcomes, ended_by = 0, 0, [], "budget"
    while True:
        if stop():
            ended_by = "cancelled"
            break
        if search.trials is not None and started_here >= search.trials:
            ended_by = "trials"
            break
        if started_here and time.time() >= deadline:
            break
        trial = study.ask()
        try:
            outcome = run_trial(search, study, trial, ds, cost, metric, stop, deadline, started_here, echo)
        except BaseException:  # a refused setting, a full disk, Ctrl-C: the trial ends failed, not running forever
            if study.trials[trial.number].state == optuna.trial.TrialState.RUNNING:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            raise
        if outcome == "not started":  # too long for what is left: ask for others, then end
            misses += 1
            if misses >= MISSES:
                ended_by = "budget"
                break
            continue
        misses = 0
        started_here += 1
        outcomes.append(outcome)
        echo(leaderboard_line(study, trial.number, metric))
        if outcome == "cancelled":
            ended_by = "cancelled"
            break
    return finish(search, study, metric, t0, outcomes, ended_by, echo)


def run_trial(search: Search, study: Any, trial: Any, ds: Any, cost: CostModel, metric: str, stop: Callable[[], bool],
              deadline: float, started_here: int, echo: Callable[[str], None]) -> str:
    """One trial: its settings, its predicted cost against what is left of the budget, its run launched and
    followed to the end. Returns the outcome ("not started" when it cannot finish in time)."""
    optuna = import_optuna()
    settings = trial_settings(trial, search, ds)
    config = TrainConfig.from_dict(settings)
    predicted = cost.predict(config)
    left = deadline - time.time()
    if predicted > left:
        set_trial_attr(study, trial.number, OUTCOME, "not started")
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if not started_here and not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            raise BmcoreError(f"a budget of {_minutes(search.budget_s)} is too small for one trial: the first is "
                              f"predicted to take {_minutes(predicted)}; give --budget {math.ceil(predicted / 60) + 1}m "
                              f"or more")
        echo(f"trial {trial.number}: not started, predicted {_minutes(predicted)} with {_minutes(max(left, 0))} "
             f"of the budget left")
        return "not started"
    check_jobs(runs.active_runs())
    run_dir = runs.create_run(config, name=_run_name(search.study, trial.number))
    for key, value in ((RUN, run_dir.name), (RUN_DIR, str(run_dir)), (WORKER, _worker()), (PREDICTED, round(predicted, 1))):
        set_trial_attr(study, trial.number, key, value)
    runs.launch_new(run_dir)
    shown = ", ".join(f"{k} {_short(v)}" for k, v in trial.params.items())
    echo(f"trial {trial.number}: started {run_dir.name} ({shown}; predicted {_minutes(predicted)})")
    began = time.time()
    outcome = follow(study, trial, run_dir, metric, stop, deadline + 0.1 * search.budget_s)
    drop_checkpoints(run_dir)
    done = study.trials[trial.number].intermediate_values
    cost.learn(predicted, time.time() - began, 1.0 if outcome == "completed" else max(done, default=0) / 100)
    return outcome


def drop_checkpoints(run_dir: Path) -> None:
    """Remove an ended trial run's checkpoints: its ``model/`` is saved, and a search never resumes a trial's run, so
    they would only fill the disk (two per trial, three times the model's size each: a 20-minute search on MiniLM
    left 5 GB)."""
    for checkpoint in runs.checkpoints(run_dir):
        shutil.rmtree(checkpoint, ignore_errors=True)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _run_name(study: str, number: int) -> str:
    name = f"{study}-t{number}"
    return name if not (runs.runs_dir() / name).exists() else f"{name}-{time.strftime('%H%M%S')}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def leaderboard_line(study: Any, number: int, metric: str) -> str:
    t = study.trials[number]
    value = f"{metric} {t.value:.4f}" if t.value is not None else t.state.name.lower()
    return f"trial {number}: {t.user_attrs.get(OUTCOME, t.state.name.lower())}, {value} on validation" \
           f" ({t.user_attrs.get(SECONDS, 0):.0f} s)"


def finish(search: Search, study: Any, metric: str, t0: float, outcomes: list[str], ended_by: str,
           echo: Callable[[str], None]) -> dict[str, Any]:
    """Choose the best completed trial on validation, score its test split once, write and return the summary."""
    optuna = import_optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    summary: dict[str, Any] = {"study": search.study, "dataset": search.dataset, "metric": metric,
                               "trials": [{"trial": t.number, "outcome": t.user_attrs.get(OUTCOME, t.state.name.lower()),
                                           "value": t.value, "run": t.user_attrs.get(RUN), "params": t.params}
                                          for t in study.get_trials(deepcopy=False)],
                               "trials_here": len(outcomes),
                               "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
                               "spent_s": round(time.time() - t0, 1), "budget_s": search.budget_s, "ended_by": ended_by,
                               "best_run": None}
    if done:
        best = study.best_trial
        run_dir = Path(best.user_attrs[RUN_DIR])
        echo(f"best: trial {best.number} ({best.user_attrs.get(RUN)}), {metric} {best.value:.4f} on validation; "
             f"scoring its test split")
        write_search_status(search, phase=f"scoring the test split of trial {best.number}")
        results = score_test(run_dir)
        test = results.get("test", {}).get(metric)
        summary.update(best_run=str(run_dir), best_trial=best.number, best_validation=best.value, best_test=test,
                       best_params=best.params)
        study.set_user_attr("best", {"trial": best.number, "run": best.user_attrs.get(RUN), "validation": best.value,
                                     "test": test})
    summary["bought"] = bought_sentence(summary)
    state = CANCELLED if ended_by == "cancelled" else COMPLETED
    write_search_status(search, state=state, ended=runs.now(), phase=None, **{k: v for k, v in summary.items() if k != "study"})
    return summary


def bought_sentence(s: dict[str, Any]) -> str:
    """What the budget bought, in one sentence."""
    parts = ", ".join(f"{n} {o}" for o, n in s["outcomes"].items()) or "no trial"
    line = (f"{s['spent_s'] / 60:.1f} of {s['budget_s'] / 60:.0f} minutes bought {s['trials_here']} "
            f"trial{'s' if s['trials_here'] != 1 else ''} ({parts})")
    if s.get("best_run"):
        test = f", {s['best_test']:.4f} on test" if isinstance(s.get("best_test"), (int, float)) else ""
        line += f"; the best is trial {s['best_trial']}: {s['metric']} {s['best_validation']:.4f} on validation{test}"
    return line + "."










