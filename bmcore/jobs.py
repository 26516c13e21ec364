"""Background jobs besides training: scoring a split, the ONNX export, the Hub push, the time estimate, label quality,
the labelling loop's step and its simulation.

Each runs as ``python -m bmcore jobs run JOB_DIR``, outside the UI process, through the run-folder
contract of :mod:`bmcore.runs`. A job folder ``<workspace>/jobs/<kind>-<time>/`` holds:

* ``config.json`` - ``{"kind", "key", "params"}``; ``key`` names what the job is for (the evaluation
  folder it fills, the run it exports), so a page finds its job again after a reload;
* ``status.json`` - written atomically: ``state`` as for runs, ``pid``, and the progress
  ``done``/``total``/``message``;
* ``job.log`` - everything the job printed;
* ``result.json`` - what it produced, once ``completed``.

Jobs that use the device wait on the training queue (:mod:`bmcore.queue`), so a page never
fights a training run for the same cores. :func:`cancel` writes ``stop.request`` and signals the
process; the job ends ``cancelled`` at once, queued or running, and writes nothing half-done.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files, processes, queue, runs
from .config import config_from_dict
from .data.storage import load_prepared
from .errors import BmcoreError
from .estimate import estimate_duration
from .evaluate import evaluate_model
from .export.hub import push_to_hub
from .export.onnx import export_onnx
from .inference import load_for_inference
from .labelling.simulate import SIMULATE_JOB, simulate
from .labelling.step import STEP_JOB, run_step
from .limits import check_jobs
from .quality.features import DEFAULT_FOLDS
from .quality.job import run_quality
from .report.export import parity_summary
from .scoring import load_rows
from .workspace import JOBS_DIR, jobs_dir, workspace_dir

log = logging.getLogger("bmcore.jobs")

RESULT_FILE = "result.json"
REPORT_EVERY_S = 0.5  # progress is written to status.json at most this often


class Cancelled(BaseException):
    """Raised inside a job when a cancel was asked for.

    A ``BaseException``, like ``KeyboardInterrupt``: library retry loops that catch ``Exception`` must not swallow it.
    """


class Reporter:
    """``progress(done, total)`` for engine functions: writes throttled progress to ``status.json``, honours cancel."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.last = 0.0

    def __call__(self, done: int, total: int, message: str | None = None) -> None:
        if runs.stop_requested(self.job_dir):
            raise Cancelled()
        now = time.time()
        if now - self.last >= REPORT_EVERY_S or done >= total or message:
            self.last = now
            fields: dict[str, Any] = {"done": int(done), "total": int(total)}
            if message:
                fields["message"] = message
            runs.write_status(self.job_dir, **fields)

    def say(self, message: str) -> None:
        """Set the line a page shows under the progress bar."""
        if runs.stop_requested(self.job_dir):
            raise Cancelled()
        log.info(message)
        runs.write_status(self.job_dir, message=message)


# --- the kinds of job -----------------------------------------------------------------------


def _evaluate(params: dict[str, Any], report: Reporter) -> dict[str, Any]:
    """Score a prepared dataset's split, or (``rows``) what a page read from an upload (:func:`bmcore.scoring.save_rows`)."""
    report.say("Loading the model...")
    clf = load_for_inference(params["model_dir"], precision=params.get("precision") or "auto")
    baseline_train = None
    if params.get("rows"):
        dataset, split = load_rows(params["rows"])
        if params.get("baseline_train"):  # an upload has no train split: the run's own dataset trains the baseline
            baseline_train = load_prepared(params["baseline_train"]).splits["train"]
    else:
        dataset, split = load_prepared(params["dataset"]), params["split"]

    def progress(done: int, total: int) -> None:
        report(done, total, "Fitting the temperature and training the TF-IDF baseline..." if done >= total else
               f"Scoring {done:,} of {total:,} examples...")

    evaluate_model(clf, dataset, split, params["out_dir"], progress=progress, baseline_train=baseline_train,
                   notes=dataset.notes if params.get("rows") else ())
    return {"out_dir": params["out_dir"]}


def _export_onnx(params: dict[str, Any], report: Reporter) -> dict[str, Any]:
    report.say("Exporting to ONNX, then comparing ONNX Runtime with PyTorch on the test split...")
    onnx = export_onnx(params["run_dir"])
    return {"path": str(onnx.path), "passed": bool(onnx.parity.get("passed")), "summary": parity_summary(onnx.parity)}


def _push(params: dict[str, Any], report: Reporter) -> dict[str, Any]:
    report.say(f"Uploading to {params['repo_id']}...")
    # The token comes in HF_TOKEN, set for this process alone: it is never written to the job folder.
    return {"url": push_to_hub(params["run_dir"], params["repo_id"], None, private=bool(params.get("private", True)))}


def _estimate(params: dict[str, Any], report: Reporter) -> dict[str, Any]:
    report.say("Loading the model and timing training steps on real batches...")
    return estimate_duration(config_from_dict(params["config"]), probe_steps=int(params.get("probe_steps", 3)))


def _label_quality(params: dict[str, Any], report: Reporter) -> dict[str, Any]:
    report.say("Loading the dataset and the encoder...")
    result = run_quality(params["dataset"], encoder=params.get("encoder") or None,
                         folds=int(params.get("folds") or DEFAULT_FOLDS), seed=int(params.get("seed") or 0),
                         precision=params.get("precision") or "auto", progress=report)
    return {k: result.summary[k] for k in ("dataset", "encoder", "rows", "flagged", "conflicts", "outliers",
                                           "to_review", "oof_accuracy", "seconds")}


def _label_step(params: dict[str, Any], report: Reporter) -> dict[str, Any]:
    """The labelling loop's step on the project ``params["project"]`` (:func:`bmcore.labelling.step.run_step`)."""
    report.say("Loading the labels...")
    keys = ("strategy", "batch", "max_steps", "model", "seed", "label_names")
    return run_step(params["project"], **{k: params[k] for k in keys if params.get(k) is not None}, progress=report)


def _label_simulate(params: dict[str, Any], report: Reporter) -> dict[str, Any]:
    """The simulation on the prepared dataset ``params["dataset"]`` (:func:`bmcore.labelling.simulate.simulate`)."""
    report.say("Loading the dataset...")
    keys = ("budget", "step", "strategies", "seeds", "pool", "eval_rows", "max_steps", "model", "label_names")
    return simulate(params["dataset"], **{k: params[k] for k in keys if params.get(k) is not None}, progress=report)


@dataclass(frozen=True)
class Kind:
    """One kind of job: what it runs, and whether it waits for the device."""

    title: str
    run: Callable[[dict[str, Any], Reporter], dict[str, Any]]
    uses_device: bool = True


KINDS: dict[str, Kind] = {
    "evaluate": Kind("Scoring the split", _evaluate),
    "export-onnx": Kind("ONNX export and parity check", _export_onnx),
    "push": Kind("Push to the Hugging Face Hub", _push, uses_device=False),  # network only: no need to queue
    "estimate": Kind("Timing training steps", _estimate),
    "label-quality": Kind("Finding likely label errors", _label_quality),
    STEP_JOB: Kind("Retraining and picking the next batch to label", _label_step),
    SIMULATE_JOB: Kind("Simulating the labelling loop", _label_simulate),
}


# --- starting, reading, cancelling ----------------------------------------------------------


def job_command(job_dir: Path) -> list[str]:
    """The command that runs a job folder: ``python -m bmcore jobs run JOB_DIR``."""
    return [sys.executable, "-m", "bmcore", "jobs", "run", str(job_dir)]


def start(kind: str, params: dict[str, Any], key: str, env: dict[str, str] | None = None) -> Path:
    """Create a job folder and launch the job in the background; returns the folder.

    ``env`` holds secrets for the job's process alone (a Hub token); they are never written to disk.
    """
    if kind not in KINDS:
        raise BmcoreError(f"unknown job kind {kind!r}; one of {', '.join(KINDS)}")
    check_jobs(runs.active_runs() + active_jobs())
    stamp = time.strftime("%m%d-%H%M%S")
    for i in range(1, 1000):  # two sessions may start a job in the same second: take the next free name
        job_dir = jobs_dir() / f"{kind}-{stamp}" if i == 1 else jobs_dir() / f"{kind}-{stamp}-{i}"
        try:
            job_dir.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise BmcoreError("could not find a free job name")
    files.write_json_atomic(job_dir / runs.CONFIG_FILE, {"kind": kind, "key": key, "params": params})
    files.write_json_atomic(job_dir / runs.STATUS_FILE, {"state": runs.QUEUED, "created": runs.now(),
                                                        "created_ts": time.time(), "launched_ts": time.time(), "pid": None})
    pid = processes.spawn(job_command(job_dir), job_dir / runs.JOB_LOG_FILE, env)
    runs.write_status(job_dir, pid=pid, pid_start=processes.process_start(pid))
    return job_dir


def _config(job_dir: Path) -> dict[str, Any]:
    return files.read_json(Path(job_dir) / runs.CONFIG_FILE)


def read(job_dir: Path) -> dict[str, Any]:
    """A job's status for a page: ``state``, ``kind``, ``title``, progress ``fraction`` and ``message``, ``error``,
    and ``result`` once completed. A damaged job reads as failed with its error."""
    job_dir = Path(job_dir)
    try:
        cfg = _config(job_dir)
        status = runs.read_status(job_dir)
    except BmcoreError as exc:
        return {"state": runs.FAILED, "error": str(exc), "kind": "", "title": job_dir.name, "fraction": 0.0,
                "message": "", "result": None, "path": str(job_dir)}
    kind = KINDS.get(str(cfg.get("kind")))
    done, total = status.get("done"), status.get("total")
    fraction = min(1.0, done / total) if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total else 0.0
    result = None
    if status["state"] == runs.COMPLETED:
        try:
            result = files.read_json(job_dir / RESULT_FILE)
        except BmcoreError:
            result = None
    return {**status, "kind": cfg.get("kind"), "key": cfg.get("key"), "title": kind.title if kind else str(cfg.get("kind")),
            "fraction": fraction, "message": status.get("message") or "", "result": result, "path": str(job_dir)}


def list_jobs(kind: str | None = None, key: str | None = None) -> list[Path]:
    """Job folders, newest first, optionally only those of one ``kind`` and ``key``."""
    found = []
    base = workspace_dir() / JOBS_DIR  # read only: listing never creates the folder (a read-only workspace)
    for p in (base.iterdir() if base.is_dir() else ()):
        if p.name.startswith(".") or not (p / runs.STATUS_FILE).exists():
            continue
        try:
            cfg = _config(p)
            created = float(files.read_json(p / runs.STATUS_FILE).get("created_ts") or 0)
        except (BmcoreError, TypeError, ValueError):
            continue
        if (kind is None or cfg.get("kind") == kind) and (key is None or cfg.get("key") == key):
            found.append((created, p.name, p))
    return [p for *_, p in sorted(found, reverse=True)]


def latest(kind: str, key: str) -> Path | None:
    """The newest job of ``kind`` for ``key``, or None."""
    found = list_jobs(kind, key)
    return found[0] if found else None


def active_jobs() -> int:
    """How many jobs (not training runs) are queued or running."""
    return sum(1 for p in list_jobs() if read(p)["state"] in runs.ACTIVE)


def cancel(job_dir: Path) -> None:
    """Stop a job: queued, it leaves the queue; running, its process is signalled and ends ``cancelled``."""
    job_dir = Path(job_dir)
    runs.read_status(job_dir)  # a damaged status (a pid of -1) is refused before anything is written
    runs.request_stop(job_dir)
    status = runs.read_status(job_dir)  # read again: the process may have become ready to be signalled meanwhile
    # Only a process that has installed its SIGTERM handler is signalled: one still starting up would die
    # of the default action and read as failed. It reads the stop file (written above) once ready instead.
    # The pid is signalled only when verified as this job's own process (processes.signal_job), never on trust.
    if status["state"] in runs.ACTIVE and status.get(_READY) is True:
        processes.signal_job(job_dir, status, signal.SIGTERM)


def wait(job_dir: Path, timeout: float = 600) -> dict[str, Any]:
    """Poll until the job has ended; returns :func:`read`'s view of it."""
    runs.wait_for(job_dir, timeout=timeout)
    return read(job_dir)


# --- running a job (the child process) -------------------------------------------------------


_READY = "handles_sigterm"  # status.json: the job's process may now be stopped with SIGTERM


_HANDLER_PID: list[int] = []  # the job's own process, which installed _on_sigterm


def _on_sigterm(signum: int, frame: Any) -> None:
    if os.getpid() not in _HANDLER_PID:
        # A worker the job forked (a multiprocessing pool, a DataLoader) inherited this handler; its parent stops it with
        # SIGTERM, and a worker that raised instead of dying left that parent waiting for it forever. Die as by default.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Cancelled()


def run_job(job_dir: str | Path) -> dict[str, Any]:
    """Run a job folder to its end (the body of ``python -m bmcore jobs run``) and return its final status.

    Bad input and OS errors end the job ``failed`` with one line; a bug also leaves its traceback in the log.
    """
    job_dir = Path(job_dir).resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    cfg = _config(job_dir)
    kind = KINDS.get(str(cfg.get("kind")))
    if kind is None:
        raise BmcoreError(f"{job_dir.name}: unknown job kind {cfg.get('kind')!r}")
    _HANDLER_PID[:] = [os.getpid()]
    signal.signal(signal.SIGTERM, _on_sigterm)
    lock = None
    try:
        runs.write_status(job_dir, state=runs.QUEUED, **processes.own_process(), **{_READY: True})
        if runs.stop_requested(job_dir):  # cancelled while this process was starting, before it could be signalled
            raise Cancelled()
        if kind.uses_device:
            lock = queue.wait_turn(job_dir)
            if lock is None:
                raise Cancelled()
        runs.write_status(job_dir, state=runs.RUNNING, started=runs.now(), started_ts=time.time())
        log.info("%s: %s", kind.title, job_dir.name)
        result = kind.run(dict(cfg.get("params") or {}), Reporter(job_dir))
        files.write_json_atomic(job_dir / RESULT_FILE, result)
        return runs.write_status(job_dir, state=runs.COMPLETED, ended=runs.now(), ended_ts=time.time())
    except Cancelled:
        log.info("cancelled")
        return runs.write_status(job_dir, state=runs.CANCELLED, ended=runs.now(), ended_ts=time.time())
    except BaseException as exc:  # noqa: B036 - recorded as failed, then re-raised
        user = isinstance(exc, (BmcoreError, ValueError, OSError))
        message = str(exc) if isinstance(exc, BmcoreError) else f"{exc.__class__.__name__}: {exc}"
        message = " ".join(message.split())[:500] or exc.__class__.__name__
        log.error("%s failed: %s%s", kind.title, message, "" if user else "\n" + traceback.format_exc())
        runs.write_status(job_dir, state=runs.FAILED, error=message, ended=runs.now(), ended_ts=time.time())
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if lock is not None:
            lock.close()
