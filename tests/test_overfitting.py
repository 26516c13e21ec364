"""The overfitting warning: validation loss rising for several evaluations while the training loss falls, with what
to try from the run's own settings, for text and image runs, live and finished, on the Train and Evaluate pages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _images import copy_workspace
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import processes, report, runs
from bmcore.config import TrainConfig

TIMEOUT = 180
VAL_LOSSES = (0.42, 0.61, 0.85)  # the photo run: validation loss 0.42 -> 0.85 over three epochs
STEPS, EPOCHS = 21, 3  # 245 photos, three epochs of 7 optimiser steps


def three_epochs(train: dict | None = None, evaluation: dict | None = None, val_losses=VAL_LOSSES,
                 train_from: float = 0.69, train_to: float = 0.20) -> list[dict]:
    """metrics.jsonl of a small-data run as the training callback writes it: a training line every step (a CPU step on
    photos takes longer than the 5-second progress interval), an evaluation each epoch. ``train``/``evaluation``:
    a real run's records to copy the other fields from."""
    out = []
    losses = np.linspace(train_from, train_to, STEPS)
    every = STEPS // EPOCHS
    for step in range(1, STEPS + 1):
        out.append({**(train or {"kind": "train"}), "step": step, "total_steps": STEPS, "epoch": round(step / every, 4),
                    "loss": float(losses[step - 1])})
        if step % every == 0:
            out.append({**(evaluation or {"kind": "eval"}), "step": step, "epoch": step // every,
                        "eval_loss": val_losses[step // every - 1]})
    return out


def test_a_three_epoch_run_whose_validation_loss_rose_at_each_evaluation_is_named():
    note = report.overfitting_note(three_epochs())
    assert note.startswith("Overfitting: the validation loss rose 2 evaluations in a row, from 0.420 at step 7 to 0.850 "
                           "at step 21, while the training loss fell")
    for advice in ("fewer epochs", "set early_stopping_patience", "lower the learning rate", "add training examples",
                   "best validation macro_f1 (metric_for_best_model), not necessarily the last"):
        assert advice in note, advice
    # Below 1.5x the lowest, two rises in three evaluations still count; one rise, or rises while training loss also
    # rises (a learning rate too high, not overfitting), do not.
    assert report.overfitting(three_epochs(val_losses=(0.42, 0.50, 0.55)))["in_a_row"]
    assert report.overfitting(three_epochs(val_losses=(0.50, 0.42, 0.55))) is None
    assert report.overfitting(three_epochs(val_losses=(0.42, 0.50, 0.55), train_from=0.3, train_to=0.6)) is None
    # Settings of the run name what to try.
    note = report.overfitting_note(three_epochs(), best="loss", patience=3, more_data="add more")
    assert "best validation loss" in note and "lower early_stopping_patience (now 3)" in note and note.endswith("add more.")


def test_the_note_asks_the_run_s_settings_and_task(workspace: Path):
    cfg = TrainConfig(model_name_or_path="builtin:minilm", dataset="not-prepared.csv", early_stopping_patience=4,
                      metric_for_best_model="accuracy")
    run_dir = runs.create_run(cfg, "text-run")
    (run_dir / runs.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in three_epochs()))
    note = report.run_overfitting_note(run_dir)
    assert "best validation accuracy" in note and "(now 4)" in note and note.endswith("add training examples.")
    (run_dir / runs.CONFIG_FILE).write_text("{not json")  # a damaged config: the note stands, with the defaults
    assert report.run_overfitting_note(run_dir).endswith("add training examples.")


@pytest.fixture
def overfit_image_run(image_workspace: Path, workspace: Path) -> Path:
    """The tiny ResNet run on Fashion-MNIST (tests/_images.py), its metrics.jsonl rewritten as the issue's three-epoch
    photo run, the fields of each line copied from the run's own records."""
    run_dir = copy_workspace(image_workspace, workspace)["resnet"]
    records = runs.read_metrics(run_dir)
    train = next(r for r in records if r["kind"] == "train")
    evaluation = next(r for r in records if r["kind"] == "eval")
    (run_dir / runs.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in three_epochs(train, evaluation)))
    return run_dir


def overfitting_warnings(at: AppTest) -> list[str]:
    assert not at.exception
    return [w.value for w in at.warning if w.value.startswith("Overfitting:")]


def open_train(run: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_pick").select(run).run()
    return at


def test_image_run_warns_on_train_finished_and_live_and_on_evaluate(overfit_image_run: Path):
    name = overfit_image_run.name
    [note] = overfitting_warnings(open_train(name))
    assert note.startswith("Overfitting: the validation loss rose 2 evaluations in a row, from 0.420 at step 7 to "
                           "0.850 at step 21")
    assert note.endswith("or add training images and keep augmentation on (augment).")  # the image task's advice

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluate.py").run()
    at.selectbox(key="evaluate_run").select(name).run()
    assert overfitting_warnings(at) == [note]

    # While it trains: the same warning in the live view.
    runs.write_status(overfit_image_run, state=runs.RUNNING, **processes.own_process())
    assert overfitting_warnings(open_train(name)) == [note]
