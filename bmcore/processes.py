"""The processes of jobs: naming one for good (pid and start time), telling whether it is still a bmcore job's,
signalling it only when it verifiably is, and starting an engine command in the background.

A pid read from a file is never trusted on its own: a pid is reused once its process ends, and ``-1`` or ``0``
would reach every process. Linux ``/proc`` is the source of truth.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from .workspace import workspace_dir


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (field 22 of ``/proc/<pid>/stat``), or None.

    A pid is reused once its process ends; pid and start time together name one process for good."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 is the 20th after the command name
    except (IndexError, ValueError):
        return None


def own_process() -> dict[str, Any]:
    """The status fields with which a job names its own process: ``pid`` and ``pid_start``."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start(pid)}


def pid_alive(pid: Any, start: Any = None) -> bool:
    """True when ``pid`` (a whole number over 1) is the live, not zombie, bmcore process that started at ``start``
    (:func:`process_start`, as the job recorded it). A pid taken on trust from a file, without its start time, or
    whose start time differs (the pid was reused), is no job's process."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1 or isinstance(start, bool) or not isinstance(start, int):
        return False
    fields = _proc_stat(pid)
    if not fields or fields[0] in ("Z", "X") or process_start(pid) != start:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"bmcore" in cmdline or b"torchrun" in cmdline or b"accelerate" in cmdline


def _names_folder(pid: int, folder: Path) -> bool:
    """True when the command line of ``pid`` names ``folder`` (``bmcore train RUN_DIR``, ``jobs run JOB_DIR``,
    ``--out RUN_DIR``), read relative to that process's working folder."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    target = Path(folder).resolve()
    for arg in args:
        try:
            if arg and (cwd / os.fsdecode(arg)).resolve() == target:
                return True
        except (OSError, ValueError, RuntimeError):
            continue
    return False


def signal_job(folder: Path, status: dict[str, Any], sig: int, group: bool = False) -> bool:
    """Send ``sig`` to a run's or job's process, only when it is verifiably that job's own: alive with the start
    time the job recorded (:func:`pid_alive`), its command line naming ``folder``, not this process, and for
    ``group`` the leader of its own process group (the job's session). Returns whether it was signalled.

    A pid read from ``status.json`` is never trusted on its own: ``-1`` or ``0`` would reach every process."""
    pid = status.get("pid")
    if not pid_alive(pid, status.get("pid_start")) or pid == os.getpid() or not _names_folder(pid, folder):
        return False
    try:
        if group:
            if os.getpgid(pid) != pid or pid == os.getpgrp():
                return False
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def spawn(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start an engine command in the background: a new session, no shell, stdout and stderr appended to ``log_path``.

    ``env`` adds variables for the child alone (a Hub token, never written to disk). Returns the process id.
    """
    child = dict(os.environ)
    child.setdefault("TOKENIZERS_PARALLELISM", "false")
    child["PYTHONUNBUFFERED"] = "1"
    # The child must find bmcore even when the UI was started from another folder.
    root = str(Path(__file__).resolve().parents[1])
    child["PYTHONPATH"] = root + (os.pathsep + child["PYTHONPATH"] if child.get("PYTHONPATH") else "")
    child["BMCORE_WORKSPACE"] = str(workspace_dir())
    child.update(env or {})
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True, env=child, cwd=root)
    return proc.pid
