"""The run folder contract: the only channel between the UI and a training job.

A run folder holds:

* ``config.json`` - the :class:`~bmcore.config.TrainConfig`;
* ``status.json`` - written atomically: ``state`` (queued, running, completed, failed, cancelled),
  ``pid`` with ``pid_start`` (the process's start time, so a reused pid is never taken for the job),
  ``created``/``started``/``ended`` times and ``error``;
* ``metrics.jsonl`` - append-only, one JSON line per logging step and per evaluation;
* ``train.log`` - everything the job printed;
* ``checkpoint-N/`` - the Trainer's checkpoints (optimizer, scheduler and RNG state for resume);
* ``model/`` - the best model as a ``save_pretrained`` folder, with ``id2label``;
* ``eval.json`` - validation and test metrics of the best model;
* ``evaluation/test/`` - the full evaluation of the test split (``metrics.json`` with the TF-IDF
  baseline and calibration, ``predictions.csv``), which the Evaluate page opens directly;
* ``stop.request`` - present while a cancel has been asked for.

Readers return plain data; a run whose process has died reads as ``failed`` with the tail of its log. The runs
table is :mod:`bmcore.run_list`; the processes of jobs, :mod:`bmcore.processes`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from .config import TrainConfig, config_from_dict
from .errors import BmcoreError
from .files import append_json_lines, read_json, read_json_lines, write_json_atomic
from .limits import check_jobs
from .metrics import check_scores
from .processes import pid_alive, process_start, spawn
from .workspace import check_name, inside, runs_dir

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
JOB_LOG_FILE = "job.log"  # the log of a background job that is not training (bmcore.jobs)
MODEL_DIR = "model"
EVAL_FILE = "eval.json"
EVALUATION_DIR = "evaluation"  # evaluation/<split>/metrics.json + predictions.csv, written when a run completes
STOP_FILE = "stop.request"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "running", "completed", "failed", "cancelled"
STATES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)


def now() -> str:
    """The current local time as ISO 8601 with seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def write_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` atomically and return the new status."""
    path = Path(run_dir) / STATUS_FILE
    try:
        status = read_json(path)
    except BmcoreError:
        status = {}
    status.update(fields)
    status["updated"] = now()
    write_json_atomic(path, status)
    return status


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``metrics.jsonl`` (one ``write`` call, so lines never interleave)."""
    append_json_lines(Path(run_dir) / METRICS_FILE, [record], sync=False)


def metrics_problem(record: Any) -> str | None:
    """What is wrong with a metrics line, if anything: bmcore writes a JSON object whose ``kind`` is text and every
    other value a number or null."""
    if not isinstance(record, dict):
        return f"is {json.dumps(record)[:60]}, not a JSON object"
    for key, value in record.items():
        bad = not isinstance(value, str) if key == "kind" else (
            value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))))
        if bad:
            return f"has {key} {json.dumps(value)[:60]}, not {'text' if key == 'kind' else 'a number'}"
    return None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All complete lines of ``metrics.jsonl``; a half-written last line is skipped.

    A line of the wrong shape (``[1,2]``, ``null``, a text loss) raises :class:`BmcoreError`: readers show the run
    as damaged, and every consumer can trust the records it gets."""
    run_dir = Path(run_dir)
    return read_json_lines(run_dir / METRICS_FILE, f"metrics.jsonl in {run_dir.name}", metrics_problem)


def read_eval(run_dir: Path) -> dict[str, Any]:
    """The run's ``eval.json`` (validation and test scores of the best model), its scores checked
    (:func:`bmcore.metrics.check_scores`): a damaged file raises :class:`BmcoreError`."""
    run_dir = Path(run_dir)
    return check_scores(read_json(run_dir / EVAL_FILE), f"eval.json in {run_dir.name}")


def log_tail(run_dir: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of ``train.log`` (``job.log`` for a job that is not training)."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        path = Path(run_dir) / JOB_LOG_FILE
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _last_error_line(tail: str) -> str:
    for line in reversed(tail.splitlines()):
        line = line.strip()
        if line and not line.startswith(("File ", "^", "~")):
            return line[:300]
    return "the training process ended without a final status"


LAUNCH_GRACE_S = 60  # a queued run without a process id yet is being started, not dead, for this long


def _launched_at(status: dict[str, Any]) -> float:
    return float(status.get("launched_ts") or status.get("created_ts") or 0)


_NUMBER, _TEXT = "a number", "text"
TEST_PREFIX = "test_"  # status.json's test_<metric> fields
# The type of each field bmcore writes into status.json; a field of another type marks the run as damaged.
STATUS_FIELDS = {
    **dict.fromkeys(("created", "started", "ended", "updated", "resumed"), _TEXT),  # local ISO times
    **dict.fromkeys(("created_ts", "launched_ts", "started_ts", "ended_ts"), _NUMBER),  # seconds since the epoch
    **dict.fromkeys(("best_metric", "mean_examples_per_step",
                     "perplexity_before", "perplexity_after"), _NUMBER),
    **dict.fromkeys(("pid", "total_steps", "world_size"), "a whole number"),
    **dict.fromkeys(("error", "best_metric_name", "precision", "notice", "head_notice", "mlm_head", "phase", "message",
                     "schedule"),
                    _TEXT),
    # where bmcore.tracking sent an MLflow run (the URI without its password), for the run page's mlflow ui line
    **dict.fromkeys(("tracking_uri", "mlflow_run_id", "mlflow_experiment_id"), _TEXT),
    **dict.fromkeys(("pid_start", "done", "total"), "a whole number"),
}


def _wrong_type(value: Any, kind: str) -> bool:
    if value is None:
        return False
    if kind == _TEXT:
        return not isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return kind == "a whole number" and not isinstance(value, int)


def check_status(status: dict[str, Any], run_name: str) -> dict[str, Any]:
    """Refuse a status whose state is unknown or whose fields have the wrong type (``"created": 5``,
    ``"pid": [1]``) with a one-line :class:`BmcoreError`; readers then show the run as damaged."""
    state = status.get("state")
    if not isinstance(state, str) or state not in STATES:
        raise BmcoreError(f"status.json in {run_name} has an unknown state {state!r:.60}")
    # test_<metric>: the task's headline metrics of the test split (accuracy, macro_f1; pearson, rmse, ...), numbers.
    fields = {**STATUS_FIELDS, **{k: _NUMBER for k in status if isinstance(k, str) and k.startswith(TEST_PREFIX)}}
    for key, kind in fields.items():
        if _wrong_type(status.get(key), kind):
            raise BmcoreError(f"status.json in {run_name} is damaged: {key} is {status[key]!r:.60}, not {kind}")
    if status.get("pid") is not None and status["pid"] <= 1:  # -1 and 0 would signal a whole group of processes
        raise BmcoreError(f"status.json in {run_name} is damaged: pid is {status['pid']}, not a job's process id")
    return status


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status. A queued or running run whose process is gone reads as ``failed``, with the log's tail.

    A damaged ``status.json`` (unreadable, or a field of the wrong type) raises :class:`BmcoreError`.
    """
    run_dir = Path(run_dir)
    status = check_status(read_json(run_dir / STATUS_FILE), run_dir.name)
    if status["state"] == QUEUED and status.get("pid") is None and 0 <= time.time() - _launched_at(status) < LAUNCH_GRACE_S:
        return status  # created or being launched right now: its process id is not written yet
    if status["state"] in ACTIVE and not pid_alive(status.get("pid"), status.get("pid_start")):
        tail = log_tail(run_dir)
        what = "training process" if (run_dir / LOG_FILE).exists() else "job's process"
        status = {**status, "state": FAILED, "error": f"the {what} died: {_last_error_line(tail)}",
                  "log_tail": tail}
    elif status["state"] == FAILED:
        status.setdefault("log_tail", log_tail(run_dir))
    return status


def is_run_dir(path: Path) -> bool:
    """True for a folder that looks like a run (it has a status or a config)."""
    return path.is_dir() and ((path / STATUS_FILE).exists() or (path / CONFIG_FILE).exists())


def find_run(name_or_path: str) -> Path:
    """A run folder from a workspace run name or a path."""
    p = Path(name_or_path).expanduser()
    if is_run_dir(p):
        return p.resolve()
    try:
        candidate = inside(runs_dir(), check_name(name_or_path, "run name"))
    except BmcoreError:
        candidate = None
    if candidate is not None and is_run_dir(candidate):
        return candidate
    raise BmcoreError(f"no run {name_or_path!r}: not a run folder, nor a run in {runs_dir()}")


def new_run_name(config: TrainConfig) -> str:
    """A readable unique run name: ``<dataset>-<model>-<timestamp>``."""
    def slug(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", s.split(":")[-1].rstrip("/").split("/")[-1]).strip("-")[:24] or "x"

    base = f"{slug(config.dataset)}-{slug(config.model_name_or_path)}-{time.strftime('%m%d-%H%M%S')}"
    name, i = base, 1
    while (runs_dir() / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def create_run(config: TrainConfig, name: str | None = None, run_dir: str | Path | None = None) -> Path:
    """Create a run folder with ``config.json`` and a ``queued`` status. ``run_dir`` may lie outside the workspace (CLI)."""
    if run_dir is not None:
        path = Path(run_dir).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise BmcoreError(f"run folder {path} is a file, not a folder; choose another --out")
        if path.exists() and any(path.iterdir()):
            raise BmcoreError(f"run folder {path} already exists and is not empty; choose another name, or resume it")
        path.mkdir(parents=True, exist_ok=True)
    elif name:
        path = inside(runs_dir(), check_name(name, "run name"))
        try:
            path.mkdir()  # atomic: of two sessions asking for the same name at once, exactly one gets it
        except FileExistsError as exc:
            raise BmcoreError(f"a run named {name!r} already exists; choose another name") from exc
    else:
        for _ in range(100):  # two sessions may pick the same timestamped name in the same second: take the next one
            path = inside(runs_dir(), new_run_name(config))
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise BmcoreError("could not find a free run name; give one")
    try:
        write_json_atomic(path / CONFIG_FILE, config.to_dict())
        write_json_atomic(path / STATUS_FILE, {"state": QUEUED, "created": now(), "created_ts": time.time(), "pid": None})
    except OSError:  # a full disk or a file-size limit: no half-made run folder stays behind
        for name in (CONFIG_FILE, STATUS_FILE):
            (path / name).unlink(missing_ok=True)
        if not any(path.iterdir()):
            path.rmdir()
        raise
    return path


def check_rerun(run_dir: Path, resume: bool = False) -> None:
    """Refuse to run a run folder's job again where that would overwrite work: while its job is alive
    (another process would take over its status), or after it completed or was cancelled unless ``resume``
    (retraining would replace its model and results)."""
    run_dir = Path(run_dir)
    if not (run_dir / STATUS_FILE).exists():
        return
    status = read_status(run_dir)
    state, pid = status["state"], status.get("pid")
    if state in ACTIVE and pid and pid != os.getpid():  # read_status already turned a dead job into failed
        raise BmcoreError(f"run {run_dir.name} is already {state} (process {pid}); wait for it, "
                          f"or stop it first: python -m bmcore runs cancel {run_dir}")
    if state in (COMPLETED, CANCELLED) and not resume:
        raise BmcoreError(f"run {run_dir.name} is already {state}; training it again would replace its model and "
                          f"results. Continue it with --resume, or start a new run with the same settings: "
                          f"python -m bmcore train --config {run_dir / CONFIG_FILE}")


def load_run_config(run_dir: Path) -> TrainConfig:
    """The run's :class:`TrainConfig` (a :class:`~bmcore.config.PretrainConfig` for a pretraining run)."""
    return config_from_dict(read_json(Path(run_dir) / CONFIG_FILE))


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoint folders, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (one with ``trainer_state.json``), or None."""
    for p in reversed(checkpoints(run_dir)):
        if (p / "trainer_state.json").is_file():
            return p
    return None


def check_checkpoint(path: Path) -> None:
    """Refuse a damaged checkpoint with a one-line error: unreadable ``trainer_state.json`` or weights."""
    path = Path(path)
    fix = f"delete {path.name} to resume from an earlier checkpoint, or start the run again"
    try:
        state = read_json(path / "trainer_state.json")
    except BmcoreError as exc:
        raise BmcoreError(f"{path.name} is damaged (trainer_state.json unreadable: {exc}); {fix}") from exc
    if "global_step" not in state:
        raise BmcoreError(f"{path.name} is damaged (trainer_state.json has no global_step); {fix}")
    weights = path / "model.safetensors"
    if (path / "model.safetensors.index.json").is_file():
        return  # a sharded checkpoint: Trainer checks the shards against the index itself
    if not weights.is_file():
        raise BmcoreError(f"{path.name} is damaged (no model.safetensors); {fix}")
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as fh:
            fh.keys()
    except Exception as exc:  # safetensors raises its own error type for a truncated or garbled file
        raise BmcoreError(f"{path.name} is damaged (model.safetensors unreadable); {fix}") from exc


def train_command(run_dir: Path, resume: bool = False) -> list[str]:
    """The command that runs a run folder's job: ``python -m bmcore train RUN_DIR [--resume]``."""
    cmd = [sys.executable, "-m", "bmcore", "train", str(run_dir)]
    return cmd + ["--resume"] if resume else cmd


def launch(run_dir: Path, resume: bool = False) -> int:
    """Start the job in the background: ``sys.executable``, a new session, no shell, output to ``train.log``.

    Returns the process id. The job queues itself behind any running job.
    """
    run_dir = Path(run_dir)
    status = read_status(run_dir) if (run_dir / STATUS_FILE).exists() else {}
    if status.get("state") in ACTIVE and status.get("pid"):  # no pid yet: created and waiting for this launch
        raise BmcoreError(f"run {run_dir.name} is already {status['state']}")

    check_jobs(active_runs(exclude=run_dir))
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    write_status(run_dir, state=QUEUED, pid=None, launched_ts=time.time(), error=None, ended=None, ended_ts=None)
    pid = spawn(train_command(run_dir, resume), run_dir / LOG_FILE)
    write_status(run_dir, pid=pid, pid_start=process_start(pid))
    return pid


def launch_new(run_dir: Path) -> int:
    """:func:`launch` a run folder just made by :func:`create_run`; when it is refused (every job slot taken
    meanwhile, BMCORE_MAX_JOBS) the folder is removed, so no ``queued`` run without a job is left behind."""
    try:
        return launch(run_dir)
    except BaseException:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def active_runs(exclude: Path | None = None) -> int:
    """How many runs in the workspace are queued or running (their process alive); a damaged run is none."""
    skip = Path(exclude).resolve() if exclude is not None else None
    return sum(1 for p in runs_dir().iterdir() if not p.name.startswith(".") and is_run_dir(p)
               and _state(p) in ACTIVE and p.resolve() != skip)


def _state(run_dir: Path) -> str:
    try:
        return read_status(run_dir)["state"]
    except BmcoreError:
        return FAILED


def request_stop(run_dir: Path) -> None:
    """Ask a queued or running job to stop: it saves its model and marks itself ``cancelled``."""
    run_dir = Path(run_dir)
    (run_dir / STOP_FILE).write_text(now(), encoding="utf-8")


def stop_requested(run_dir: Path) -> bool:
    """True once :func:`request_stop` was called for this run."""
    return (Path(run_dir) / STOP_FILE).exists()


def wait_for(run_dir: Path, states: tuple[str, ...] = (COMPLETED, FAILED, CANCELLED), timeout: float = 600,
             poll: float = 0.5) -> dict[str, Any]:
    """Poll until the run reaches one of ``states`` (or raise ``TimeoutError``). Returns the status."""
    deadline = time.time() + timeout
    while True:
        status = read_status(run_dir)
        if status["state"] in states:
            return status
        if time.time() > deadline:
            raise TimeoutError(f"run {Path(run_dir).name} still {status['state']} after {timeout:.0f} s")
        time.sleep(poll)


def progress(run_dir: Path) -> dict[str, Any]:
    """The latest progress of a run for live views: status, last train and eval lines, fraction done, ETA."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    metrics = read_metrics(run_dir)
    train = [m for m in metrics if m.get("kind") == "train"]
    evals = [m for m in metrics if m.get("kind") == "eval"]
    last = train[-1] if train else {}
    total = last.get("total_steps") or status.get("total_steps") or 0
    step = last.get("step", 0)
    if status["state"] == COMPLETED:
        step = total = total or step or 1
    eta = last.get("remaining_s") if isinstance(last.get("remaining_s"), (int, float)) else None
    if eta is not None and isinstance(last.get("ts"), (int, float)):
        eta = max(0.0, eta - max(0.0, time.time() - last["ts"]))  # counts down between lines and after the last
    return {"status": status, "train": train, "eval": evals, "step": step, "total_steps": total,
            "fraction": min(1.0, step / total) if total else 0.0, "eta_s": eta,
            "last": last, "last_eval": evals[-1] if evals else {}}


