"""The Train page through AppTest: start a tiny run, see it finish, see it in the runs table; bad settings refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import jobs, run_list, runs

TIMEOUT = 120  # the first run imports torch and transformers on 2 busy CPU cores


def open_train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    return at


def set_tiny_run(at: AppTest, dataset: str, model: Path) -> AppTest:
    """Local tiny model, 10 steps, evaluation every 5 steps, short inputs."""
    at.selectbox(key="train_dataset").select(dataset).run()
    at.radio(key="train_model_kind").set_value("Local folder").run()
    at.text_input(key="train_model_path").input(str(model)).run()
    at.radio(key="train_length").set_value("steps").run()
    at.number_input(key="train_max_steps").set_value(10)
    at.number_input(key="train_lr").set_value(5e-4)
    at.number_input(key="train_batch_size").set_value(16)
    at.number_input(key="train_max_seq_length").set_value(64)
    at.radio(key="train_eval_strategy").set_value("steps").run()
    at.number_input(key="train_eval_steps").set_value(5)
    at.number_input(key="train_logging_steps").set_value(2)
    return at.run()


def test_no_dataset_points_to_the_data_page():
    at = open_train_page()
    assert any("Data page" in i.value for i in at.info)
    assert not at.button


@pytest.mark.slow
def test_start_a_tiny_run_and_see_it_finish(tiny_model, sst_tiny):
    at = set_tiny_run(open_train_page(), sst_tiny, tiny_model)
    at.number_input(key="train_hidden_dropout").set_value(0.1).run()
    assert not at.exception and not at.error
    commands = [c.value for c in at.code]
    assert any(c.startswith("python -m bmcore train --data sst-tiny --model ") and "--max-steps 10" in c
               and "--hidden-dropout 0.1" in c for c in commands)
    assert any(c.startswith("torchrun --nproc_per_node 2 -m bmcore train ") for c in commands)

    at.toggle(key="train_estimate").set_value(True).run()
    assert not at.exception and not at.error
    [job] = jobs.list_jobs("estimate")
    assert any(b.key == "train_estimate_job_cancel" for b in at.button)  # timed in the background
    assert jobs.wait(job, timeout=300)["state"] == runs.COMPLETED, runs.log_tail(job)
    at.run()
    assert any("About" in m.value and "10 steps" in m.value for m in at.markdown)

    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    rows = run_list.list_runs()
    assert len(rows) == 1
    assert at.session_state["train_run"] == rows[0].name
    assert runs.wait_for(Path(rows[0].path), timeout=300)["state"] == runs.COMPLETED, runs.log_tail(Path(rows[0].path))
    assert json.loads((Path(rows[0].path) / "config.json").read_text())["hidden_dropout"] == 0.1

    at.run()  # what a reload shows: everything comes from the run folder
    assert not at.exception and not at.error
    table = at.dataframe[0].value  # the runs table (AppTest does not expose dataframe keys)
    assert table.loc[0, "name"] == rows[0].name and table.loc[0, "state"] == "completed"
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Test accuracy"]) >= 0
    assert any("pipeline(" in c.value for c in at.code)

    fresh = open_train_page()  # a second browser sees the same run
    assert fresh.selectbox(key="train_pick").value == rows[0].name
    assert "Test accuracy" in {m.label for m in fresh.metric}


@pytest.mark.slow
def test_a_value_set_with_the_click_on_start_reaches_the_run(tiny_model, sst_tiny):
    """A value typed and then Start clicked at once: the browser commits the value (blur) with the click, in one rerun."""
    at = set_tiny_run(open_train_page(), sst_tiny, tiny_model)  # 10 steps, max_seq_length 64 on screen
    at.number_input(key="train_max_steps").set_value(4)
    at.number_input(key="train_max_seq_length").set_value(40)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    run_dir = Path(run_list.list_runs()[0].path)
    assert at.session_state["train_run"] == run_dir.name
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["max_steps"], config["max_seq_length"]) == (4, 40)
    status = runs.wait_for(run_dir, timeout=300)
    assert status["state"] == runs.COMPLETED and status["total_steps"] == 4, runs.log_tail(run_dir)


@pytest.mark.slow
def test_a_finished_run_shows_its_final_epoch_and_learning_rate(tiny_model, sst_tiny, workspace):
    # 7 steps logged every 5: without a line for the last step the page would show step 5's epoch and rate.
    run_dir = workspace / "runs" / "odd"
    out = subprocess.run([sys.executable, "-m", "bmcore", "train", "--data", sst_tiny, "--model", str(tiny_model),
                          "--out", str(run_dir), "--max-steps", "7", "--logging-steps", "5", "--eval-strategy", "epoch",
                          "--max-seq-length", "32", "--per-device-train-batch-size", "16"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    last = runs.progress(run_dir)["last"]
    assert last["step"] == 7
    at = open_train_page()
    shown = {m.label: m.value for m in at.metric}
    assert shown["Epoch"] == f"{last['epoch']:.2f}" and shown["Learning rate"] == f"{last['learning_rate']:.2e}"
    before = runs.progress(run_dir)["train"][-2]  # the line before the last step's (by step count, or by time)
    assert before["step"] < 7 and before["epoch"] < last["epoch"] and before["learning_rate"] != last["learning_rate"]


@pytest.mark.parametrize(("widget", "value", "message"), [
    ("train_lr", 0.0, "learning_rate must be positive"),
    ("train_model_path", "/no/such/model", "does not exist"),
])
def test_bad_settings_show_an_error_and_start_nothing(tiny_model, sst_tiny, widget, value, message):
    at = set_tiny_run(open_train_page(), sst_tiny, tiny_model)
    if widget == "train_lr":
        at.number_input(key=widget).set_value(value).run()
    else:
        at.text_input(key=widget).input(value).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)
    assert not _has_button(at, "train_start")
    assert run_list.list_runs() == []


def _has_button(at: AppTest, key: str) -> bool:
    return any(b.key == key for b in at.button)


def test_a_run_can_be_cancelled_from_the_page(tiny_model, sst_tiny):
    at = set_tiny_run(open_train_page(), sst_tiny, tiny_model)
    at.number_input(key="train_max_steps").set_value(5000).run()
    at.button(key="train_start").click().run()
    run_dir = Path(run_list.list_runs()[0].path)
    deadline = time.time() + 120
    while not _has_button(at, "train_cancel") and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    at.button(key="train_cancel").click().run()
    assert runs.stop_requested(run_dir)
    assert runs.wait_for(run_dir, timeout=300)["state"] == runs.CANCELLED
    at.run()
    assert not at.exception
    assert any("Cancelled" in i.value for i in at.info)


def test_the_estimate_toggle_stays_on_when_you_leave_and_come_back(tiny_model, sst_tiny):
    at = set_tiny_run(open_train_page(), sst_tiny, tiny_model)
    at.toggle(key="train_estimate").set_value(True).run()
    assert not at.exception and jobs.list_jobs("estimate")  # on: the timing job started
    for page in ("pages/playground.py", "pages/evaluate.py"):
        at.switch_page(page).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert at.toggle(key="train_estimate").value
    for job in jobs.list_jobs("estimate"):  # the timing jobs are not what this test is about
        jobs.cancel(job)


def test_the_page_says_when_a_run_makes_few_steps(sst_tiny):
    """Before the run starts: on auto epochs the small-data default is explained; 2 epochs set by hand are too few."""
    at = open_train_page()
    at.selectbox(key="train_dataset").select(sst_tiny).run()
    assert at.number_input(key="train_epochs").value == 0  # auto
    notes = [i.value for i in at.info if "optimiser steps" in i.value]
    assert len(notes) == 1 and notes[0].startswith("Small dataset: 160 training rows"), notes
    assert "trains 30 epochs in batches of 32 instead (150 steps)" in notes[0]
    at.number_input(key="train_epochs").set_value(2.0).run()
    notes = [i.value for i in at.info if "optimiser steps" in i.value]
    assert len(notes) == 1 and notes[0].startswith("Few optimiser steps: this run makes 3 to 10 (160 training rows)"), notes
    assert not at.exception


def test_a_score_dataset_is_not_offered_class_weights(sst_tiny, shared_data: Path):
    """Class weights weigh classes; a regression dataset (STS-B pairs with a 0-5 score) has none, so the page does not
    offer them, while a single-label one does."""
    df = pd.read_csv(shared_data / "stsb" / "train.csv").iloc[:200]
    raw = bdata.RawData("stsb-sample", {"all": df})
    bdata.save_prepared(bdata.prepare(raw, "stsb-tiny", seed=0, columns=bdata.Columns(["sentence1", "sentence2"], "score", scores=True)))
    at = open_train_page()
    at.selectbox(key="train_dataset").select("stsb-tiny").run()
    assert not at.exception and "train_class_weights" not in [w.key for w in at.selectbox]
    at.selectbox(key="train_dataset").select(sst_tiny).run()
    assert "train_class_weights" in [w.key for w in at.selectbox]


def test_few_shot_is_suggested_on_few_examples_per_class_and_reaches_the_run(tiny_model, shared_data: Path):
    """48 emotion rows (8 per class): the page suggests few-shot training, explains it, shows --few-shot in the
    command, and the started run trains few-shot. A score dataset is not offered it."""
    df = pd.read_csv(shared_data / "emotion" / "train.csv").groupby("label").sample(n=10, random_state=0)
    ds = bdata.prepare(bdata.RawData("emotion-sample", {"all": df}), "emo-few", seed=0)
    bdata.save_prepared(ds)
    at = open_train_page()
    at.selectbox(key="train_dataset").select("emo-few").run()
    assert any("examples per class" in i.value and "Few-shot training" in i.value for i in at.info), [i.value for i in at.info]
    assert any("pairs" in c.value for c in at.caption)  # the concept, in two sentences
    at.radio(key="train_model_kind").set_value("Local folder").run()
    at.text_input(key="train_model_path").input(str(tiny_model)).run()
    at.toggle(key="train_few_shot").set_value(True).run()
    at.radio(key="train_length").set_value("steps").run()
    at.number_input(key="train_max_steps").set_value(3).run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("python -m bmcore train --data emo-few") and "--few-shot" in c.value for c in at.code)
    assert at.checkbox(key="train_few_shot_names").value is True  # the class names teach too, unless unticked
    at.checkbox(key="train_few_shot_names").uncheck().run()
    assert any("--no-few-shot-label-names" in c.value for c in at.code), [c.value for c in at.code]
    at.checkbox(key="train_few_shot_names").check().run()
    assert not any("label-names" in c.value for c in at.code)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    run_dir = Path(run_list.list_runs()[0].path)
    assert json.loads((run_dir / "config.json").read_text())["few_shot"] is True
    status = runs.wait_for(run_dir, timeout=300)
    assert status["state"] == runs.COMPLETED and status["few_shot"] is True, runs.log_tail(run_dir)

    sts = pd.read_csv(shared_data / "stsb" / "train.csv", keep_default_na=False).head(200)
    bdata.save_prepared(bdata.prepare(bdata.RawData("stsb", {"all": sts}), "sts", seed=0))
    at = open_train_page()
    at.selectbox(key="train_dataset").select("sts").run()
    assert not at.exception and not any(t.key == "train_few_shot" for t in at.toggle)
