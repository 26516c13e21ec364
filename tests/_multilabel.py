"""A multi-label model for tests: the tiny random BERT trained 20 steps on a GoEmotions sample (28 labels).

Its scores are meaningless (a random model); tests assert behaviour, never accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import runs
from bmcore.config import TrainConfig
from bmcore.problem_types import MULTI_LABEL
from bmcore.train import run_training

DATASET = "emo"
RUN = "emo-run"
ROWS = 600  # GoEmotions rows: about 470 train / 65 validation / 60 test, every one of the 28 labels present


def train_goemotions(ws: Path, tiny_model: Path, shared_data: Path) -> Path:
    """Prepare the GoEmotions sample as ``emo`` and train run ``emo-run`` in workspace ``ws``; return the run folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        mp.setenv("BMCORE_PRECISION", "fp32")  # training's own test scores and the full evaluation then agree exactly
        df = pd.read_csv(shared_data / "goemotions" / "train.csv", dtype=str, keep_default_na=False).head(ROWS)
        ds = bdata.prepare(bdata.RawData("goemotions-sample", {"all": df}), DATASET, seed=0)
        assert ds.problem_type == MULTI_LABEL
        bdata.save_prepared(ds)
        cfg = TrainConfig(model_name_or_path=str(tiny_model), dataset=DATASET, max_seq_length=64, max_steps=20,
                          per_device_train_batch_size=16, eval_strategy="steps", eval_steps=10, logging_steps=5,
                          learning_rate=5e-4)
        run_dir = runs.create_run(cfg, RUN)
        assert run_training(run_dir)["state"] == runs.COMPLETED
    return run_dir


def copy_workspace(trained: Path, workspace: Path) -> Path:
    """Copy the trained workspace into ``workspace`` (copy2 keeps mtimes, so saved evaluations stay fresh); returns
    the run folder."""
    shutil.copytree(trained, workspace, dirs_exist_ok=True)
    return workspace / "runs" / RUN
