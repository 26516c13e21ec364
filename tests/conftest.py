"""Shared fixtures: an isolated workspace per test, offline Hub, and a tiny random BERT."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bmcore import files, processes
from bmcore.device import detect_device

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups in its own hook
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist (scripts/test.sh runs ``-n 2 --dist loadgroup``): a module's tests stay on one worker,
    so a module-scoped fixture (test_evaluate's MiniLM fine-tune) is built once; the browser tests form one group, so
    they share one ``streamlit run`` server (tests/e2e/_server.py) and run one at a time beside the other worker."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        if not marker:
            group = "e2e" if item.get_closest_marker("e2e") else item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
        else:
            group = marker.args[0] if marker.args else marker.kwargs.get("name", "")
        groups.setdefault(group, []).append(item)
    # Longest first: the groups holding the most slow or browser tests go out to the workers first, so the suite does
    # not end on one long fine-tune while the other worker idles (it did: the last 4 minutes of a 25-minute run).
    weight = {g: sum(bool(i.get_closest_marker("slow") or i.get_closest_marker("e2e")) for i in members)
              for g, members in groups.items()}
    items[:] = [i for g in sorted(groups, key=lambda g: -weight[g]) for i in groups[g]]


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own workspace folder through BMCORE_WORKSPACE.

    Runs and jobs a test started in the background and left running are killed when it ends: on 2 cores one
    leftover training would slow every later test several times over.
    """
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("BMCORE_WORKSPACE", str(ws))
    yield ws
    kill_leftovers(ws)
    drop_job_log_handlers()
    detect_device.cache_clear()  # a detection cached under a test's BMCORE_PRECISION=fp32 must not reach the next test
    keep_torch_threads()


TORCH_THREADS = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)


def keep_torch_threads() -> None:
    """Put torch back on the worker's thread count (scripts/test.sh: OMP_NUM_THREADS=1) if a test changed it: a worker
    left on 2 threads beside the other worker slowed every later test of its own (the few-shot test 2.8 times)."""
    torch = sys.modules.get("torch")
    if torch is not None and TORCH_THREADS > 0 and torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)


def drop_job_log_handlers() -> None:
    """Remove the log handlers a job run in this process added (``bmcore.trainer.setup_logging``): their train.log
    goes with the test's folder, and a later test's logging would fail reopening it."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_bmcore", False)]:
        root.removeHandler(handler)
        handler.close()


def kill_leftovers(ws: Path) -> None:
    """SIGKILL the process group of every run or job under ``ws`` whose process is still alive, verified as the job's
    own as the app verifies it (:func:`bmcore.processes.signal_job`: start time, command line, group leader)."""

    for status in [*ws.glob("runs/*/status.json"), *ws.glob("jobs/*/status.json")]:
        try:
            fields = files.read_json(status)
        except Exception:  # noqa: BLE001 - a damaged status has no process to stop
            continue
        processes.signal_job(status.parent, fields, signal.SIGKILL, group=True)


def start_stand_in_job() -> subprocess.Popen:
    """A live process that reads as a job's own (``bmcore`` in its command line), for tests that need a run or a job
    to read as running; the caller kills it. Tests never stand in with their own process: pytest's command line is no
    job's (and under pytest-xdist a worker's names neither)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "bmcore-stand-in-job"])
    deadline = time.monotonic() + 10  # until /proc shows its start time and command line
    while b"bmcore" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


@pytest.fixture
def stand_in_job() -> Iterator[dict]:
    """``pid`` and ``pid_start`` of a live stand-in job process (:func:`start_stand_in_job`), killed after the test."""

    proc = start_stand_in_job()
    yield {"pid": proc.pid, "pid_start": processes.process_start(proc.pid)}
    proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real labelled datasets in ../shared/data (SST-2, AG News, emotion, SMS spam)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT (2 layers, hidden 32) with the bundled MiniLM vocabulary."""
    from bmcore.tiny_models import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "tiny-bert", ["negative", "positive"])


@pytest.fixture(scope="session")
def multilabel_workspace(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Path:
    """A workspace with the tiny BERT trained once as a multi-label model on a GoEmotions sample (tests/_multilabel.py).
    Tests copy it into their own workspace (:func:`_multilabel.copy_workspace`) rather than write into it."""
    from _multilabel import train_goemotions

    ws = tmp_path_factory.mktemp("multilabel") / "workspace"
    ws.mkdir()
    train_goemotions(ws, tiny_model, shared_data)
    return ws


SMS_RARE = "sms-rare"


@pytest.fixture(scope="session")
def minilm_sms(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A workspace with one real fine-tune, made once for every test that needs a trained builtin:minilm: SMS spam cut
    to 2% spam in train (980 ham, 20 spam; 49:1), 250 validation and 300 test messages (50 spam), prepared as
    ``sms-rare``, and ``runs/rare`` trained on it through the CLI with every default but 3 epochs and
    ``--max-seq-length 64``. Tests that write copy it first (:func:`copy_workspace`). Its tests are marked
    ``xdist_group("minilm_sms")``, so one pytest-xdist worker builds it once."""
    import pandas as pd

    from bmcore import data as bdata
    from bmcore.cli import main

    ws = tmp_path_factory.mktemp("minilm-sms") / "workspace"
    ws.mkdir()
    sms = pd.read_csv(shared_data / "sms_spam" / "all.csv").sample(frac=1, random_state=0)
    ham, spam = sms[sms["label"] == "ham"], sms[sms["label"] == "spam"]
    frames = {"train": pd.concat([ham.iloc[:980], spam.iloc[:20]]),  # 49:1 (1,470 and 30 until the suite had to fit 20 min)
              "validation": pd.concat([ham.iloc[1720:1960], spam.iloc[80:90]]),
              "test": pd.concat([ham.iloc[1470:1720], spam.iloc[30:80]])}  # enough spam to measure its recall
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        bdata.save_prepared(bdata.prepare(bdata.RawData("sms", frames), SMS_RARE, use_source_splits=True, seed=0))
        # 3 epochs set, as before the small-data rule (which would train 1,000 rows in 150 plain steps, not about 30
        # grown ones): test_small_data_defaults_beat_tfidf holds the rule.
        assert main(["train", "--data", SMS_RARE, "--out", str(ws / "runs" / "rare"), "--max-seq-length", "64",
                     "--num-train-epochs", "3"]) == 0
    for checkpoint in (ws / "runs" / "rare").glob("checkpoint-*"):
        shutil.rmtree(checkpoint)  # the model is saved; copies stay small
    return ws


def copy_workspace(source: Path, workspace: Path) -> None:
    """Copy a session fixture's workspace into a test's own, so the test may write."""
    shutil.copytree(source, workspace, dirs_exist_ok=True)


@pytest.fixture
def bbc_small() -> str:
    """builtin:bbc-news with its default split and 300 training articles (60 a class), prepared as bbc-small: real
    data that needs no ../shared (which does not travel to a GPU machine, tests/test_cuda.py)."""
    from dataclasses import replace

    from bmcore import data as bdata

    ds = bdata.prepare(bdata.load_source("builtin:bbc-news"), "bbc-small")
    train = ds.splits["train"].groupby("label").sample(n=60, random_state=0)
    bdata.save_prepared(replace(ds, splits={**ds.splits, "train": train}))
    return "bbc-small"


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised ViT (32 px input, 8 px patches, 2 layers, hidden 32) with its image processor."""
    from bmcore.tiny_models import make_tiny_vit

    return make_tiny_vit(tmp_path_factory.mktemp("tiny") / "tiny-vit", ["class_0", "class_1"])


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised ResNet (two stages of basic blocks, 8 and 16 channels) with its image processor."""
    from bmcore.tiny_models import make_tiny_resnet

    return make_tiny_resnet(tmp_path_factory.mktemp("tiny") / "tiny-resnet", ["class_0", "class_1"])


@pytest.fixture(scope="session")
def image_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_vit: Path, tiny_resnet: Path) -> Path:
    """A workspace with the tiny ResNet and ViT each trained once on a Fashion-MNIST sample (tests/_images.py).
    Tests copy it into their own workspace (:func:`_images.copy_workspace`) rather than write into it."""
    from _images import train_image_runs

    ws = tmp_path_factory.mktemp("images") / "workspace"
    ws.mkdir()
    train_image_runs(ws, {"resnet": tiny_resnet, "vit": tiny_vit})
    return ws


@pytest.fixture
def sst_tiny(shared_data: Path) -> str:
    """200 SST-2 rows prepared into the workspace as sst-tiny (160 / 20 / 20): the Train page's tests' dataset."""
    import pandas as pd

    from bmcore import data as bdata

    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(200, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), "sst-tiny", seed=0))
    return "sst-tiny"
