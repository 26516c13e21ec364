"""A run's or job's process is signalled only when verified as its own (issue 26, item 1); damaged run files
show as damaged without breaking the other runs (item 14); the runs table and refused jobs (item 21)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import kill_leftovers

from bmcore import files, jobs, processes, run_list, runs
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError
from bmcore.report.runs_table import runs_frame


def _folder(base: Path, status: dict, kind: str = "evaluate") -> Path:
    folder = base / "jobs" / "job-1"
    folder.mkdir(parents=True)
    files.write_json_atomic(folder / runs.CONFIG_FILE, {"kind": kind, "key": "k", "params": {}})
    files.write_json_atomic(folder / runs.STATUS_FILE, {"state": "running", "created": runs.now(), "created_ts": time.time(),
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
    mine = processes.own_process()
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
        job = _folder(workspace, {"pid": proc.pid, "pid_start": processes.process_start(proc.pid)})
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
        runs.write_status(job, pid=proc.pid, pid_start=processes.process_start(proc.pid))
        kill_leftovers(workspace)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


def test_kill_leftovers_never_signals_the_test_process(workspace: Path, signals: list):
    run = workspace / "runs" / "busy"
    run.mkdir(parents=True)
    files.write_json_atomic(run / runs.STATUS_FILE, {"state": "running", **processes.own_process(), "created": runs.now()})
    assert runs.read_status(run)["state"] != runs.RUNNING  # pytest's own process, alive, is no job's process
    kill_leftovers(workspace)
    assert signals == []


def test_a_queued_run_launched_in_the_future_does_not_wait_forever(workspace: Path):
    run = workspace / "runs" / "future"
    run.mkdir(parents=True)
    files.write_json_atomic(run / runs.STATUS_FILE, {"state": "queued", "pid": None, "created": runs.now(),
                                                    "launched_ts": time.time() + 10**9})
    assert runs.read_status(run)["state"] == runs.FAILED
    assert runs.active_runs() == 0


def test_runs_cancel_refuses_a_damaged_status(workspace: Path, capsys: pytest.CaptureFixture):
    run = workspace / "runs" / "minus-one"
    run.mkdir(parents=True)
    (run / runs.STATUS_FILE).write_text(json.dumps({"state": "running", "pid": -1, "created": runs.now()}))
    assert cli_main(["runs", "cancel", str(run)]) == 2
    assert "pid is -1, not a job's process id" in capsys.readouterr().err
    assert not (run / runs.STOP_FILE).exists()


# --- item 14: damaged run files are shown as damaged, every other run keeps working ---------------------------


def _completed_run(ws: Path, name: str, tiny_model: Path) -> Path:
    folder = ws / "runs" / name
    folder.mkdir(parents=True)
    shutil.copytree(tiny_model, folder / runs.MODEL_DIR)
    files.write_json_atomic(folder / runs.CONFIG_FILE, {"model_name_or_path": str(tiny_model), "dataset": "d"})
    files.write_json_atomic(folder / runs.STATUS_FILE, {"state": "completed", "created": f"2026-01-0{len(name) % 9 + 1}"})
    scores = {"accuracy": 0.75, "macro_f1": 0.7}
    files.write_json_atomic(folder / runs.EVAL_FILE, {"validation": scores, "test": scores})
    (folder / runs.METRICS_FILE).write_text(json.dumps({"kind": "train", "step": 1, "total_steps": 1, "loss": 0.5}) + "\n")
    return folder


@pytest.mark.parametrize("line", ["[1,2]", "null", '"text"', '{"kind": "train", "step": "2"}', '{"kind": 5}',
                                  '{"kind": "eval", "eval_loss": true}'])
def test_read_metrics_refuses_a_line_of_the_wrong_shape(workspace: Path, tiny_model: Path, line: str):
    run = _completed_run(workspace, "bad", tiny_model)
    with open(run / runs.METRICS_FILE, "a") as fh:
        fh.write(line + "\n" + '{"kind": "train", "step": 3, "loss": 0.4')  # and a half-written last line
    with pytest.raises(BmcoreError, match="metrics.jsonl in bad is damaged: line 2"):
        runs.read_metrics(run)


def test_a_half_written_or_garbled_line_is_still_skipped(workspace: Path, tiny_model: Path):
    run = _completed_run(workspace, "ok", tiny_model)
    with open(run / runs.METRICS_FILE, "a") as fh:
        fh.write('{"kind": "tr\n{"kind": "train", "step": 2, "loss": 0.4}\n{"kind": "train"')
    assert [m["step"] for m in runs.read_metrics(run)] == [1, 2]


def test_the_train_page_opens_damaged_runs_and_the_good_one_still_works(workspace: Path, tiny_model: Path):
    from streamlit.testing.v1 import AppTest

    good = _completed_run(workspace, "good", tiny_model)
    (_completed_run(workspace, "bad-metrics", tiny_model) / runs.METRICS_FILE).write_text("[1,2]\n")
    files.write_json_atomic(_completed_run(workspace, "bad-eval", tiny_model) / runs.EVAL_FILE, {"test": "x"})
    assert run_list.summarize_run(good).test_accuracy == 0.75
    assert "eval.json in bad-eval is damaged" in run_list.summarize_run(workspace / "runs" / "bad-eval").error
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    for name, says in (("bad-metrics", "metrics.jsonl in bad-metrics is damaged"), ("bad-eval", "eval.json in bad-eval is damaged")):
        at.selectbox(key="train_pick").select(name).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(says in e.value for e in at.error), [e.value for e in at.error]
    at.selectbox(key="train_pick").select("good").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["Test accuracy"] == "0.750"
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["good", "test score"] == "0.750 accuracy" and table.loc["bad-eval", "test score"] == "-"


# --- item 21: the runs table, a refused background start, a write that hits a limit -------------------------


def test_the_runs_table_shows_a_dash_for_missing_values_never_none(workspace: Path):
    row = run_list.RunSummary(name="r", path="/r", state="queued")
    frame = runs_frame([row])
    assert frame.iloc[0].to_dict() == {"name": "r", "model": "-", "dataset": "-", "state": "queued", "best metric": "-",
                                       "test score": "-", "duration (s)": "-", "created": "-"}


def test_a_background_start_refused_by_the_job_limit_leaves_no_run_folder(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                                                           stand_in_job: dict):
    from bmcore.config import TrainConfig

    busy = workspace / "runs" / "busy"
    busy.mkdir(parents=True)
    files.write_json_atomic(busy / runs.STATUS_FILE, {"state": "running", **stand_in_job, "created": runs.now()})
    monkeypatch.setenv("BMCORE_MAX_JOBS", "1")
    # Created while the slot was free, launched once another job took it: refused, and the folder is gone.
    run = runs.create_run(TrainConfig(model_name_or_path="builtin:minilm", dataset="d"), name="late")
    with pytest.raises(BmcoreError, match="training jobs are already queued or running"):
        runs.launch_new(run)
    assert not run.exists() and sorted(p.name for p in (workspace / "runs").iterdir()) == ["busy"]


FSIZE_CHILD = """
import resource, sys
from bmcore.cli import main
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
sys.exit(main(sys.argv[2:]))
"""


def test_a_write_over_the_file_size_limit_names_the_file(workspace: Path, tiny_model: Path, tmp_path: Path):
    """RLIMIT_FSIZE (EFBIG; ENOSPC reads the same way): the CLI's one line names the file, and no half-made run stays."""
    from bmcore import data as bdata

    frame = pd.DataFrame({"text": [f"sentence {i} about a film" for i in range(40)], "label": ["a", "b"] * 20})
    bdata.save_prepared(bdata.prepare(bdata.RawData("rows", {"all": frame}), "rows", seed=0))
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", FSIZE_CHILD, "300", "train", "--data", "rows", "--model", str(tiny_model),
                           "--max-steps", "2", "--out", str(out), "--background"],
                          cwd=root, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip()
    assert err == f"error: {out / runs.CONFIG_FILE}: the file is larger than allowed here (file size limit)", err
    assert not out.exists()


def test_a_full_disk_while_appending_metrics_names_the_file(workspace: Path):
    from bmcore.errors import os_error_message

    run = workspace / "runs" / "full"
    run.mkdir(parents=True)
    (run / runs.METRICS_FILE).symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(OSError) as caught:
        runs.append_metrics(run, {"kind": "train", "step": 1})
    assert os_error_message(caught.value) == f"{run / runs.METRICS_FILE}: the disk is full (no space left on device)"
