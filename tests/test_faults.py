"""Faults: a killed job, a crash while saving, a full disk, a NaN loss, damaged files, and the UI going away mid-run."""

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
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import launch, run_list, runs
from bmcore.config import TrainConfig
from bmcore.errors import BmcoreError

DATASET = "words"


def words(n: int = 240) -> pd.DataFrame:
    """A learnable toy task: the label is the sentiment word in the sentence."""
    good, bad = ("great", "lovely", "superb", "fine"), ("awful", "dull", "poor", "bad")
    rows = [{"text": f"review {i}: the plot was {(good if i % 2 else bad)[i % 4]} and the cast {i % 7}",
             "label": "positive" if i % 2 else "negative"} for i in range(n)]
    return pd.DataFrame(rows)


@pytest.fixture
def prepared(workspace: Path) -> str:
    bdata.save_prepared(bdata.prepare(bdata.RawData("words", {"all": words()}), DATASET, seed=0))
    return DATASET


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A workspace with the toy dataset and one completed 4-step run ('done', with checkpoints), trained once per module."""
    ws = tmp_path_factory.mktemp("faults") / "workspace"
    ws.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        bdata.save_prepared(bdata.prepare(bdata.RawData("words", {"all": words()}), DATASET, seed=0))
        done = runs.create_run(config(tiny_model, max_steps=4, eval_steps=2), "done")
        out = cli("train", str(done))
        assert out.returncode == 0, out.stderr[-2000:]
    return ws


@pytest.fixture
def done(trained_once: Path, workspace: Path) -> Path:
    """The completed run copied into this test's workspace (tests may break their copy)."""
    shutil.copytree(trained_once, workspace, dirs_exist_ok=True)
    return workspace / "runs" / "done"


def config(tiny_model: Path, **kw) -> TrainConfig:
    base = dict(model_name_or_path=str(tiny_model), dataset=DATASET, max_seq_length=32, max_steps=30,
                per_device_train_batch_size=16, eval_strategy="steps", eval_steps=10, logging_steps=1,
                learning_rate=1e-3, seed=7)
    return TrainConfig(**{**base, **kw})


def cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """``python -m bmcore ARGS`` in a fresh process, after ``prelude`` (Python run first, to break something)."""
    code = f"{prelude}\nfrom bmcore.cli import main\nraise SystemExit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=os.environ.copy())


def last_train(run_dir: Path) -> dict:
    return [m for m in runs.read_metrics(run_dir) if m["kind"] == "train"][-1]


@pytest.mark.slow  # two full runs; tests/test_train.py kills and resumes one in the default set
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_model, prepared):
    straight = runs.create_run(config(tiny_model), "straight")
    assert cli("train", str(straight)).returncode == 0

    killed = launch.start_run(config(tiny_model), "killed")
    deadline = time.time() + 180
    while not (runs.last_checkpoint(killed) and [m for m in runs.read_metrics(killed) if m.get("step", 0) >= 13]):
        assert time.time() < deadline, runs.log_tail(killed)
        time.sleep(0.05)
    os.kill(runs.read_status(killed)["pid"], signal.SIGKILL)
    time.sleep(0.5)
    status = runs.read_status(killed)
    assert status["state"] == "failed" and "died" in status["error"] and status["log_tail"]
    out = cli("train", str(killed), "--resume")
    assert out.returncode == 0, out.stderr[-2000:]
    a, b = runs.read_status(straight), runs.read_status(killed)
    assert b["state"] == "completed" and a["total_steps"] == b["total_steps"] == 30
    assert last_train(killed)["step"] == 30
    # Resume restores the optimizer, scheduler, RNG and data order: the same seed ends in the same place.
    assert abs(last_train(straight)["loss"] - last_train(killed)["loss"]) < 0.05
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.05


class _CrashingTrainer:
    """A trainer whose save dies half-way, as a process killed or an I/O error mid-write would leave it."""

    def save_model(self, out: str) -> None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "model.safetensors").write_bytes(b"half a file")
        raise OSError(5, "Input/output error")


def test_crash_during_model_save_keeps_the_previous_model(tiny_model, tmp_path):
    from bmcore.trainer import save_model_atomically as _save_model_atomically

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_model, run_dir / "model")
    before = {p.name: p.read_bytes() for p in (run_dir / "model").iterdir()}
    with pytest.raises(OSError):
        _save_model_atomically(_CrashingTrainer(), None, run_dir, {})
    assert {p.name: p.read_bytes() for p in (run_dir / "model").iterdir()} == before
    assert [p.name for p in run_dir.iterdir()] == ["model"]  # no half-written temporary folder left behind


FULL_DISK = """
import errno, torch
def full(obj, f, *a, **k):
    raise OSError(errno.ENOSPC, "No space left on device", str(f))
torch.save = full  # every checkpoint writes optimizer.pt through torch.save
"""


@pytest.mark.slow
def test_full_disk_fails_clearly_and_leaves_earlier_runs_alone(tiny_model, done):
    earlier = done
    files = {str(p): p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
    run_dir = runs.create_run(config(tiny_model, max_steps=10, eval_steps=5), "full")
    out = cli("train", str(run_dir), prelude=FULL_DISK)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith("error: the disk is full while writing ")
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "the disk is full" in status["error"]
    assert {str(p): p.read_bytes() for p in earlier.rglob("*") if p.is_file()} == files
    assert runs.read_status(earlier)["state"] == "completed"


@pytest.mark.slow
def test_nan_loss_stops_the_run(tiny_model, prepared, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_model, broken)
    weights = load_file(broken / "model.safetensors")
    weights["classifier.bias"] = torch.tensor([float("nan"), 0.0])
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    run_dir = runs.create_run(config(broken, max_steps=20), "nan")
    out = cli("train", str(run_dir))
    assert out.returncode == 2
    assert "the training loss became nan at step 1" in out.stderr.strip().splitlines()[-1]
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "loss became nan" in status["error"]
    assert not (run_dir / runs.MODEL_DIR).exists()  # nothing trained on garbage is saved


@pytest.mark.slow
def test_damaged_checkpoint_and_status_get_clear_errors(tiny_model, done):
    other = runs.create_run(config(tiny_model), "other")
    damaged = runs.create_run(config(tiny_model), "damaged")
    (damaged / runs.STATUS_FILE).write_text('{"state": "runn')

    ckpt = runs.last_checkpoint(done)
    (ckpt / "trainer_state.json").write_text("{ not json")
    with pytest.raises(BmcoreError, match=f"{ckpt.name} is damaged"):
        runs.check_checkpoint(ckpt)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    (ckpt / "model.safetensors").write_bytes(b"\x00\x01garbage")
    out = cli("train", str(done), "--resume")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"error: {ckpt.name} is damaged (model.safetensors unreadable)" in out.stderr

    listed = {r.name: r for r in run_list.list_runs()}
    assert set(listed) == {"done", "other", "damaged"}
    assert listed["damaged"].state == "failed" and "status.json in damaged is damaged" in listed["damaged"].error
    assert cli("runs", "list").returncode == 0

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert set(at.dataframe[0].value["name"]) == {"done", "other", "damaged"}
    at.selectbox(key="train_pick").select("damaged").run()
    assert not at.exception
    assert any("status.json in damaged is damaged" in e.value for e in at.error)
    assert other.exists()


LAUNCHER = """
import os, sys, time
from bmcore import launch, runs
from bmcore.config import TrainConfig
cfg = TrainConfig.from_dict({cfg!r})
print(launch.start_run(cfg, "survivor"), flush=True)
time.sleep(600)  # the 'server' stays up until it is killed
"""


def test_run_survives_the_ui_process_and_a_new_ui_shows_it_live(tiny_model, prepared, workspace):
    """The process that launched a run (the Streamlit server) dies with its whole process group; the run goes on."""
    # Long enough that it is still running when the restarted UI has loaded, however slow or loaded the machine: it is
    # cancelled from there.
    cfg = config(tiny_model, max_steps=5000, eval_steps=5000, logging_steps=5).to_dict()
    server = subprocess.Popen([sys.executable, "-c", LAUNCHER.format(cfg=cfg)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, start_new_session=True, env=os.environ.copy())
    run_dir = Path(server.stdout.readline().strip())
    deadline = time.time() + 120
    while not [m for m in runs.read_metrics(run_dir) if m["kind"] == "train" and m["step"] >= 5]:
        assert time.time() < deadline, runs.log_tail(run_dir)
        time.sleep(0.1)
    os.killpg(server.pid, signal.SIGKILL)  # as a crashed or restarted server, with everything in its group
    server.wait(10)
    step = last_train(run_dir)["step"]
    deadline = time.time() + 120  # progress, however slow the machine: a new step line after the kill
    while last_train(run_dir)["step"] <= step:
        assert time.time() < deadline and runs.read_status(run_dir)["state"] == "running", runs.log_tail(run_dir)
        time.sleep(0.2)
    assert runs.read_status(run_dir)["state"] == "running"

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()  # the restarted UI
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.session_state["train_run"] == "survivor"
    # Live: the run is still controlled from here. Cancel it (tests/e2e/test_browser_sessions.py watches the restarted UI control it).
    at.button(key="train_cancel").click().run()
    assert runs.wait_for(run_dir, timeout=300)["state"] == "cancelled"
