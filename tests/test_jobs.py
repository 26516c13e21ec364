"""Background jobs besides training (scoring, ONNX export, Hub push, time estimate): run outside the caller's process,
on the training queue, cancellable, with their result in the job folder."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore import files, jobs, launch, processes, queue, runs
from bmcore.config import TrainConfig
from bmcore.workspace import jobs_dir

DATASET = "sst-small"


@pytest.fixture
def ws(workspace: Path, shared_data: Path) -> Path:
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(240, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), DATASET, seed=0))
    return workspace


def wait_state(path: Path, states: tuple[str, ...], timeout: float = 300) -> dict:
    """Poll a run or job folder until its state is one of ``states`` (state changes, not speed, end the wait)."""
    deadline = time.time() + timeout
    while (status := runs.read_status(path))["state"] not in states:
        assert time.time() < deadline, status
        time.sleep(0.2)
    return status


def hold_device(tiny_model: Path) -> Path:
    """A real training run that keeps the device busy (thousands of steps) until the test cancels it."""
    run = launch.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset=DATASET, max_steps=100_000,
                                     max_seq_length=32), "busy")
    wait_state(run, (runs.RUNNING,))
    assert queue.device_busy()
    return run


def evaluate_params(ws: Path, tiny_model: Path, split: str = "validation") -> tuple[dict, str]:
    out = ws / evf.EVALUATIONS_DIR / f"tiny-{split}"
    return {"model_dir": str(tiny_model), "dataset": DATASET, "split": split, "out_dir": str(out)}, str(out)


def test_evaluate_job_scores_in_the_background(ws: Path, tiny_model: Path):
    params, key = evaluate_params(ws, tiny_model)
    job = jobs.start("evaluate", params, key)
    assert job.parent == jobs_dir() and jobs.latest("evaluate", key) == job
    info = jobs.wait(job)
    assert info["state"] == runs.COMPLETED, info
    assert info["result"] == {"out_dir": key} and info["fraction"] == 1.0
    saved = evf.load_eval(key)
    assert saved.metrics["n"] == len(bdata.load_prepared(DATASET).splits["validation"])
    assert saved.metrics["baseline"]["accuracy"] is not None  # the TF-IDF baseline was trained in the job too
    assert "Scoring" in (job / runs.JOB_LOG_FILE).read_text() or info["message"]


def test_a_job_queues_behind_training_and_cancels_while_queued(ws: Path, tiny_model: Path):
    busy = hold_device(tiny_model)
    try:
        params, key = evaluate_params(ws, tiny_model)
        first = jobs.start("evaluate", params, key)
        second = jobs.start("estimate", {"config": TrainConfig(model_name_or_path=str(tiny_model), dataset=DATASET,
                                                               max_steps=20, max_seq_length=32).to_dict(),
                                         "probe_steps": 1}, "estimate-key")
        time.sleep(3)  # both processes are up and polling the queue
        for job in (first, second):
            info = jobs.read(job)
            assert info["state"] == runs.QUEUED and processes.pid_alive(info["pid"], info["pid_start"]), info
        jobs.cancel(first)
        assert wait_state(first, (runs.CANCELLED, runs.FAILED, runs.COMPLETED), timeout=60)["state"] == runs.CANCELLED
        assert not Path(key).exists()  # nothing half-written
        # The training run ends; the job queued behind it then runs to its result.
        runs.request_stop(busy)
        wait_state(busy, (runs.CANCELLED, runs.COMPLETED, runs.FAILED))
        info = jobs.wait(second)
        assert info["state"] == runs.COMPLETED, info
        est = info["result"]
        assert est["total_steps"] == 20 and est["estimated_seconds"] > 0 and est["samples_per_s"] > 0
    finally:
        runs.request_stop(busy)


def test_a_job_cancelled_while_its_process_starts_ends_cancelled(ws: Path, tiny_model: Path):
    # Cancel lands while the job's Python is still importing, before it can handle SIGTERM: it must not be killed
    # (that would read as "failed") but see the stop request once up. The CI run on 2026-11-30 failed this way.
    params, _ = evaluate_params(ws, tiny_model)
    job = jobs.start("evaluate", params, "k")
    jobs.cancel(job)
    info = jobs.wait(job, timeout=120)
    assert info["state"] == runs.CANCELLED, info
    assert "Traceback" not in (job / runs.JOB_LOG_FILE).read_text()


class _Hub(http.server.BaseHTTPRequestHandler):
    """A stand-in Hub on 127.0.0.1: refuses every token with 401, or never answers (``hang``)."""

    hang = threading.Event()
    seen: list[str] = []

    def _any(self) -> None:
        self.seen.append(self.path)
        if self.hang.is_set():
            time.sleep(60)
            return
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _any

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_hub(monkeypatch: pytest.MonkeyPatch):
    """HF_ENDPOINT pointed at a local stand-in Hub; the Hub is 'online' for this test only, and only on 127.0.0.1."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    _Hub.hang.clear()
    _Hub.seen.clear()
    yield _Hub
    _Hub.hang.clear()
    server.shutdown()


@pytest.fixture
def finished_run(ws: Path, tiny_model: Path) -> Path:
    run = launch.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset=DATASET, max_steps=4,
                                     max_seq_length=32), "done")
    assert wait_state(run, (runs.COMPLETED, runs.FAILED, runs.CANCELLED))["state"] == runs.COMPLETED
    return run


def test_push_job_fails_in_one_line_and_never_stores_the_token(finished_run: Path, local_hub):
    secret = "hf_not_a_real_token_1234567890"
    job = jobs.start("push", {"run_dir": str(finished_run), "repo_id": "someone/model", "private": True}, str(finished_run),
                     env={"HF_TOKEN": secret})
    info = jobs.wait(job, timeout=120)
    assert info["state"] == runs.FAILED and "push to someone/model failed" in info["error"], info
    assert "\n" not in info["error"] and "Traceback" not in (job / runs.JOB_LOG_FILE).read_text()
    assert local_hub.seen  # it really talked to the (local) Hub
    for path in job.rglob("*"):
        assert secret not in path.read_text(errors="replace"), path.name


def test_running_jobs_cancel_at_once(finished_run: Path, local_hub):
    local_hub.hang.set()  # the upload never gets an answer: the job sits in a network call
    job = jobs.start("push", {"run_dir": str(finished_run), "repo_id": "someone/model"}, "k", env={"HF_TOKEN": "hf_x"})
    wait_state(job, (runs.RUNNING,))
    deadline = time.time() + 120
    while not local_hub.seen:
        assert time.time() < deadline
        time.sleep(0.2)
    jobs.cancel(job)
    assert wait_state(job, (runs.CANCELLED, runs.FAILED, runs.COMPLETED), timeout=30)["state"] == runs.CANCELLED
    status, deadline = files.read_json(job / runs.STATUS_FILE), time.time() + 30
    while processes.pid_alive(status["pid"], status["pid_start"]):  # and the process is gone, not left hanging on the network
        assert time.time() < deadline
        time.sleep(0.2)


def test_onnx_export_job(finished_run: Path):
    from bmcore.export.onnx import read_onnx_export

    job = jobs.start("export-onnx", {"run_dir": str(finished_run)}, str(finished_run))
    info = jobs.wait(job, timeout=300)
    assert info["state"] == runs.COMPLETED, info
    assert info["result"]["passed"] and "ONNX parity passed" in info["result"]["summary"]
    assert read_onnx_export(finished_run) is not None


def test_jobs_cli_lists_shows_and_refuses_unknown(ws: Path, tiny_model: Path, capsys: pytest.CaptureFixture):
    from bmcore.cli import main

    params, key = evaluate_params(ws, tiny_model)
    job = jobs.start("evaluate", params, key)
    jobs.wait(job)
    assert main(["jobs", "list"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["name"] == job.name and line["kind"] == "evaluate" and line["state"] == runs.COMPLETED
    assert main(["jobs", "show", job.name]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == {"out_dir": key}
    assert main(["jobs", "show", "nope"]) == 2
    assert "no job 'nope'" in capsys.readouterr().err
    with pytest.raises(Exception, match="unknown job kind"):
        jobs.start("format-disk", {}, "k")


def test_a_process_the_job_forks_dies_of_sigterm_and_the_job_still_cancels():
    """A job cancels on SIGTERM by raising in its own process. The workers it forks (cleanlab's pool, a DataLoader)
    inherit that handler, and a pool stops its workers with SIGTERM: a worker that raised instead of dying hung the
    image label-quality job, its pool waiting on it forever. A forked worker dies of the signal; the job still cancels."""
    import subprocess
    import sys

    code = """
import os, signal, sys, time
from bmcore import jobs
jobs._HANDLER_PID[:] = [os.getpid()]
signal.signal(signal.SIGTERM, jobs._on_sigterm)
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
time.sleep(0.3)
os.kill(child, signal.SIGTERM)
_, status = os.waitpid(child, 0)
print("child", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except jobs.Cancelled:
    print("job cancelled")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["child True", "job cancelled"], out.stdout + out.stderr[-2000:]
