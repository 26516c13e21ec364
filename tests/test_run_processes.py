"""A run's or job's process is signalled only when verified as its own (issue 26, item 1); damaged run files
show as damaged without breaking the other runs (item 14); the runs table and refused jobs (item 21)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import kill_leftovers

from bmcore import jobs, runs
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError


def _folder(base: Path, status: dict, kind: str = "evaluate") -> Path:
    folder = base / "jobs" / "job-1"
    folder.mkdir(parents=True)
    runs.write_json_atomic(folder / runs.CONFIG_FILE, {"kind": kind, "key": "k", "params": {}})
    runs.write_json_atomic(folder / runs.STATUS_FILE, {"state": "running", "created": runs.now(), "created_ts": time.time(),
                                                       "handles_sigterm": True, **status})
    return folder


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every os.kill / os.killpg call, recorded and not made (a pid of -1 would reach every process of the user)."""
    sent: list = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(("kill", pid, sig)))
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append(("killpg", pid, sig)))
    return sent


@pytest.mark.parametrize("pid", [-1, 0, 1])
def test_a_pid_that_names_a_group_is_damaged_and_never_signalled(workspace: Path, signals: list, pid: int):
    job = _folder(workspace, {"pid": pid, "pid_start": 1})
    with pytest.raises(BmcoreError, match=f"pid is {pid}, not a job's process id"):
        jobs.cancel(job)
    assert not (job / runs.STOP_FILE).exists()  # refused before anything was written
    info = jobs.read(job)
    assert info["state"] == runs.FAILED and "is damaged" in info["error"]
    assert jobs.active_jobs() == 0  # it holds no job slot
    kill_leftovers(workspace)
    assert signals == []


def test_a_live_pid_without_its_start_time_is_no_job(workspace: Path, signals: list):
    """The server's own pid (here: this test's), or any live pid taken on trust, reads as a dead job."""
    job = _folder(workspace, {"pid": os.getpid()})
    info = jobs.read(job)
    assert info["state"] == runs.FAILED and "died" in info["error"]
    assert jobs.active_jobs() == 0
    jobs.cancel(job)
    kill_leftovers(workspace)
    assert signals == []


def test_a_reused_pid_is_no_job(workspace: Path, signals: list):
    mine = runs.own_process()
    job = _folder(workspace, {**mine, "pid_start": mine["pid_start"] - 1})  # same pid, another process's start
    assert jobs.read(job)["state"] == runs.FAILED
    jobs.cancel(job)
    assert signals == []


def test_a_live_bmcore_process_of_another_folder_is_not_signalled(workspace: Path, tmp_path: Path):
    """Its start time matches (so it reads as alive), but its command line names another folder: never signalled."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "bmcore", str(tmp_path / "other")],
                            start_new_session=True)
    try:
        time.sleep(0.3)
        job = _folder(workspace, {"pid": proc.pid, "pid_start": runs.process_start(proc.pid)})
        assert jobs.read(job)["state"] == runs.RUNNING
        jobs.cancel(job)
        kill_leftovers(workspace)
        time.sleep(0.3)
        assert proc.poll() is None  # still alive: nothing was sent to it
    finally:
        proc.kill()
        proc.wait()


def test_the_jobs_own_process_is_signalled(workspace: Path):
    """The real thing still works: a process whose command line names the job folder, in its own group."""
    job = _folder(workspace, {"pid": None})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "bmcore", str(job)],
                            start_new_session=True)
    try:
        time.sleep(0.3)
        runs.write_status(job, pid=proc.pid, pid_start=runs.process_start(proc.pid))
        kill_leftovers(workspace)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


def test_kill_leftovers_never_signals_the_test_process(workspace: Path, signals: list):
    run = workspace / "runs" / "busy"
    run.mkdir(parents=True)
    runs.write_json_atomic(run / runs.STATUS_FILE, {"state": "running", **runs.own_process(), "created": runs.now()})
    assert runs.read_status(run)["state"] == runs.RUNNING  # it reads as alive (pytest's own process)
    kill_leftovers(workspace)
    assert signals == []


def test_a_queued_run_launched_in_the_future_does_not_wait_forever(workspace: Path):
    run = workspace / "runs" / "future"
    run.mkdir(parents=True)
    runs.write_json_atomic(run / runs.STATUS_FILE, {"state": "queued", "pid": None, "created": runs.now(),
                                                    "launched_ts": time.time() + 10**9})
    assert runs.read_status(run)["state"] == runs.FAILED
    assert runs.active_jobs() == 0


def test_runs_cancel_refuses_a_damaged_status(workspace: Path, capsys: pytest.CaptureFixture):
    run = workspace / "runs" / "minus-one"
    run.mkdir(parents=True)
    (run / runs.STATUS_FILE).write_text(json.dumps({"state": "running", "pid": -1, "created": runs.now()}))
    assert cli_main(["runs", "cancel", str(run)]) == 2
    assert "pid is -1, not a job's process id" in capsys.readouterr().err
    assert not (run / runs.STOP_FILE).exists()
