"""The small-data rule (bmcore.schedule): how many epochs and steps a run on its defaults makes, said before it starts."""

from __future__ import annotations

import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import report, runs
from bmcore.config import TrainConfig
from bmcore.estimate import count_evaluations, estimate_duration, total_steps
from bmcore.schedule import MAX_AUTO_EPOCHS, planned_steps, resolve_schedule
from bmcore.tasks import get_task

MIN = get_task("single_label_classification").min_train_steps


def test_text_tasks_ask_for_150_steps_and_images_for_100():
    assert MIN == 150
    assert get_task("multi_label_classification").min_train_steps == 150
    assert get_task("single_label_classification", "image").min_train_steps == 100  # tests/test_image_small_data.py


@pytest.mark.parametrize(("rows", "epochs", "steps"), [
    (300, 15, 150),
    (480, 10, 150),  # issue 27's 480 questions: 12 steps on the old defaults
    (600, 8, 152),
    (1000, 5, 160),
    (2000, 3, 189),  # epochs as before, batches no longer grown: 189 steps, not as few as 48
    (50, MAX_AUTO_EPOCHS, 60),  # capped: more epochs would mostly memorise
])
def test_small_data_trains_more_epochs_in_plain_batches(rows, epochs, steps):
    sched = resolve_schedule(TrainConfig(), rows, MIN)
    assert sched.small_data and sched.epochs == epochs and sched.batch_growth == 1
    assert planned_steps(sched, TrainConfig()) == steps
    assert f"{rows:,} training rows" in sched.reason and f"make {steps:,} optimiser steps" in sched.reason
    resolved = sched.apply(TrainConfig())
    assert (resolved.num_train_epochs, resolved.batch_growth) == (epochs, 1)
    # The estimate counts the same steps and one evaluation per epoch
    assert total_steps(resolved, rows) == steps
    assert count_evaluations(resolved, rows) == epochs


@pytest.mark.parametrize("settings", [{"num_train_epochs": 3.0}, {"max_steps": 12}, {"num_train_epochs": 1.0, "batch_growth": 1}])
def test_epochs_or_steps_set_by_the_user_are_kept(settings):
    config = TrainConfig(**settings)
    sched = resolve_schedule(config, 300, MIN)
    assert not sched.small_data and sched.apply(config) is config


@pytest.mark.parametrize("rows", [6400, 67_349])
def test_large_data_keeps_its_defaults(rows):
    """SST-2-sized data (and anything whose grown batches still make 150 steps in 3 epochs) trains as before."""
    config = TrainConfig()
    sched = resolve_schedule(config, rows, MIN)
    assert not sched.small_data and sched.apply(config) is config and sched.batch_growth == 4


def test_bbc_news_makes_the_same_steps():
    """BBC News' 1,780 long articles fill every batch at 32 either way: 3 epochs of 56 steps, as before the rule."""
    sched = resolve_schedule(TrainConfig(), 1780, MIN)
    assert sched.epochs == 3 and planned_steps(sched, TrainConfig()) == 3 * 56 == total_steps(TrainConfig(), 1780)


def test_no_minimum_leaves_the_config_alone():
    assert not resolve_schedule(TrainConfig(), 100, 0).small_data  # a task without a minimum (masked LM)


def test_a_public_demo_caps_the_epochs(monkeypatch):
    monkeypatch.setenv("BMCORE_MAX_EPOCHS", "3")
    sched = resolve_schedule(TrainConfig(), 300, MIN)
    assert sched.epochs == 3 and sched.batch_growth == 1  # still plain batches: 30 steps, not 8


def test_gradient_accumulation_and_processes_count():
    config = TrainConfig(gradient_accumulation_steps=2)
    assert resolve_schedule(config, 640, MIN).epochs == 15  # 10 optimiser steps an epoch
    assert resolve_schedule(TrainConfig(), 640, MIN, world_size=2).epochs == 15


def test_the_note_before_a_run():
    note = report.schedule_note(TrainConfig(), 480, MIN)
    assert note.startswith("Small dataset: 480 training rows could make as few as 12 optimiser steps")
    assert "trains 10 epochs in batches of 32 instead (150 steps)" in note
    assert "batch growth off" in report.schedule_note(TrainConfig(), 2000, MIN)
    few = report.schedule_note(TrainConfig(num_train_epochs=3.0), 480, MIN)
    assert few.startswith("Few optimiser steps: this run makes 12 to 45 (480 training rows)") and "batch growth to 1" in few
    assert report.schedule_note(TrainConfig(max_steps=20), 480, MIN).startswith("Few optimiser steps: this run makes 20 ")
    assert report.schedule_note(TrainConfig(max_steps=500), 480, MIN) is None
    assert report.schedule_note(TrainConfig(), 67_349, MIN) is None
    assert report.schedule_note(TrainConfig(), 300, 0) is None


def _prepare(name: str, rows: int) -> str:
    frame = pd.DataFrame({"text": [f"sentence {i} about a {'film' if i % 2 else 'match'}" for i in range(rows)],
                          "label": ["a", "b"] * (rows // 2)})
    bdata.save_prepared(bdata.prepare(bdata.RawData(name, {"all": frame}), name, seed=0))
    return name


def test_the_note_reads_a_prepared_dataset():
    name = _prepare("small-rows", 100)  # 80 train
    assert report.run_schedule_note(TrainConfig(dataset=name)).startswith("Small dataset: 80 training rows")
    assert report.run_schedule_note(TrainConfig(dataset="a-file.csv")) is None  # a raw source: the job says it


def test_the_cli_says_it_before_the_run(tiny_model, capsys, monkeypatch):
    from bmcore import train
    from bmcore.cli import main

    name = _prepare("cli-rows", 100)
    monkeypatch.setattr(train, "run_training", lambda run_dir, resume=False: {"state": runs.COMPLETED})  # the line comes first
    assert main(["train", "--data", name, "--model", str(tiny_model), "--max-steps", "2", "--out", str(runs.runs_dir() / "c")]) == 0
    assert "notice: Few optimiser steps: this run makes 2 (80 training rows)" in capsys.readouterr().err


def test_the_job_resolves_logs_and_records_the_rule(tiny_model, monkeypatch):
    """Every default on 64 training rows in batches of 64 under a 3-epoch cap: 3 epochs of one step, one evaluation
    each (the estimate counts the same), and the reason in status.json and train.log."""
    from bmcore.train import run_training

    monkeypatch.setenv("BMCORE_MAX_EPOCHS", "3")  # the rule's 30 epochs would cost 30 checkpoints here
    name = _prepare("job-rows", 80)  # 64 train
    config = TrainConfig(model_name_or_path=str(tiny_model), dataset=name, max_seq_length=32, per_device_train_batch_size=64)
    est = estimate_duration(config, probe_steps=2)  # the estimate resolves the schedule as the job does
    run_dir = runs.create_run(config, "small")
    status = run_training(run_dir)
    assert status["state"] == runs.COMPLETED and status["total_steps"] == 3 == est["total_steps"]
    assert est["evaluations"] == 3
    assert status["schedule"].startswith("small dataset: 64 training rows, so the default 3 epochs in batches of 64")
    assert "small dataset: 64 training rows" in (run_dir / runs.LOG_FILE).read_text()
    assert len([r for r in runs.read_metrics(run_dir) if r["kind"] == "eval"]) == 3
    assert runs.load_run_config(run_dir).num_train_epochs is None  # config.json keeps what the user asked for
    assert "| epochs and batches | `small dataset: 64 training rows" in (run_dir / "model" / "README.md").read_text()
