"""The device queue: one job at a time uses the device, in the order the jobs were created.

Training runs (``runs/``) and other device jobs (``jobs/``: scoring a split, the ONNX export, the time
estimate) share one lock file in the workspace. A job holds it for its lifetime; the kernel releases
it when the process dies, so a crashed job never blocks the queue.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import files, processes, runs
from .errors import BmcoreError
from .workspace import jobs_dir, runs_dir, workspace_dir

log = logging.getLogger("bmcore.queue")

LOCK_FILE = ".train.lock"


def _job_folders() -> Iterator[Path]:
    for base in (runs_dir(), jobs_dir()):
        yield from (p for p in base.iterdir() if (p / runs.STATUS_FILE).exists())


def older_waiting(job_dir: Path, mine: float) -> bool:
    """True when another live queued job (a run or another device job) was created before this one."""
    me = Path(job_dir).resolve()
    for other in _job_folders():
        if other.resolve() == me:
            continue
        try:
            st = runs.read_status(other)  # a damaged status (wrong field types) is no job to wait for
        except BmcoreError:
            continue
        if st["state"] == runs.QUEUED and (st.get("created_ts") or 0) < mine and processes.pid_alive(st.get("pid"), st.get("pid_start")):
            return True
    return False


def wait_turn(job_dir: Path, poll: float = 0.5) -> Any | None:
    """Block until this job may use the device: it holds the workspace lock and no older job is queued.

    Returns the open lock file (keep it open while the job runs), or None when cancelled while queued.
    """
    job_dir = Path(job_dir)
    lock = open(workspace_dir() / LOCK_FILE, "a+")  # noqa: SIM115 - held for the job's lifetime
    mine = files.read_json(job_dir / runs.STATUS_FILE).get("created_ts") or time.time()
    announced = False
    while True:
        if runs.stop_requested(job_dir):
            lock.close()
            return None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not announced:
                log.info("queued: another job is using the device")
                announced = True
            time.sleep(poll)
            continue
        if not older_waiting(job_dir, mine):
            return lock
        fcntl.flock(lock, fcntl.LOCK_UN)
        time.sleep(poll)


def device_busy() -> bool:
    """True while some job holds the device (its lock is taken)."""
    with open(workspace_dir() / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False
