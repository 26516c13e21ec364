"""Image runs for page and export tests: the tiny random ResNet and ViT (tests/conftest.py) each trained 30 steps on a
small Fashion-MNIST sample (four classes, real images), in one workspace made once per session.

Their scores are barely better than chance; tests assert behaviour, never accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bmcore import data as bdata
from bmcore import runs
from bmcore.config import TrainConfig
from bmcore.train import run_training

DATASET = "fashion-tiny"
RUNS = {"resnet": "img-resnet", "vit": "img-vit"}
PER_CLASS = {"train": 30, "validation": 8, "test": 8}


def train_image_runs(ws: Path, models: dict[str, Path]) -> dict[str, Path]:
    """Prepare the Fashion-MNIST sample as ``fashion-tiny`` and train one run per model in workspace ``ws``."""
    from test_image_task import CLASSES, FASHION, fashion_frames

    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        mp.setenv("BMCORE_PRECISION", "fp32")
        frames = fashion_frames(PER_CLASS)
        bdata.save_prepared(bdata.PreparedDataset(name=DATASET, source="fashion-mnist idx files",
                                                  columns=bdata.Columns(["image"], "label"),
                                                  label_names=sorted(set(CLASSES.values())), splits=frames,
                                                  modality="image"))
        for key, model in models.items():
            cfg = TrainConfig(model_name_or_path=str(model), dataset=DATASET, max_steps=30, per_device_train_batch_size=16,
                              eval_strategy="steps", eval_steps=30, logging_steps=10, learning_rate=2e-3,
                              dataloader_num_workers=0)
            run_dir = runs.create_run(cfg, RUNS[key])
            assert run_training(run_dir)["state"] == runs.COMPLETED
            out[key] = run_dir
    return out


def copy_workspace(trained: Path, workspace: Path) -> dict[str, Path]:
    """Copy the trained workspace into ``workspace`` (mtimes kept); returns the run folders by model kind."""
    shutil.copytree(trained, workspace, dirs_exist_ok=True)
    return {k: workspace / "runs" / name for k, name in RUNS.items()}
