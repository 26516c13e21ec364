"""The Pretrain page through AppTest: start a tiny run on a text file, see perplexity, hand the model to the Train page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import files, runs

TIMEOUT = 120  # the first run imports torch and transformers on 2 busy CPU cores


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/pretrain.py").run()
    assert not at.exception
    return at


def set_text_and_model(at: AppTest, text: Path, model: Path) -> AppTest:
    at.radio(key="pretrain_source").set_value("Text file").run()
    at.text_input(key="pretrain_path").input(str(text)).run()
    at.radio(key="pretrain_model_kind").set_value("Local folder").run()
    at.text_input(key="pretrain_model_path").input(str(model)).run()
    return at


def test_pretrain_then_fine_tune_from_it(tiny_model, tmp_path, shared_data):
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(100, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), "sst-tiny", seed=0))
    text = tmp_path / "reviews.txt"
    text.write_text("\n".join(df["text"].astype(str)), encoding="utf-8")

    at = set_text_and_model(open_page(), text, tiny_model)
    at.number_input(key="pretrain_max_steps").set_value(6)
    at.number_input(key="pretrain_eval_steps").set_value(3)
    at.number_input(key="pretrain_lr").set_value(2e-3)
    at.number_input(key="pretrain_max_seq_length").set_value(32)
    at.number_input(key="pretrain_batch_size").set_value(8).run()
    assert not at.exception and not at.error
    commands = [c.value for c in at.code]
    assert any(c.startswith(f"python -m bmcore pretrain --data {text} --model {tiny_model}") and "--max-steps 6" in c
               for c in commands), commands
    at.number_input(key="pretrain_max_steps").set_value(5)  # changed together with the click, as a blur does
    at.button(key="pretrain_start").click().run()
    assert not at.exception and not at.error
    run_name = at.session_state["pretrain_run"]
    run_dir = runs.find_run(run_name)
    assert files.read_json(run_dir / "config.json")["max_steps"] == 5
    status = runs.wait_for(run_dir, timeout=TIMEOUT)
    assert status["state"] == "completed", runs.log_tail(run_dir)

    at.run()
    assert not at.exception
    assert any("initialised fresh" in i.value for i in at.info)  # the tiny model has no masked-LM head
    shown = {m.label: m.value for m in at.metric}
    assert float(shown["Perplexity now"].replace(",", "")) < float(shown["Perplexity before"].replace(",", ""))
    at.button(key="pretrain_finetune").click().run()
    assert not at.exception
    assert at.radio(key="train_model_kind").value == "A finished run"
    assert at.selectbox(key="train_model_run").value == str(run_dir / runs.MODEL_DIR)
    assert any("--model " + str(run_dir / runs.MODEL_DIR) in c.value for c in at.code)


def test_empty_text_file_is_refused_and_nothing_is_written(tiny_model, tmp_path, workspace):
    text = tmp_path / "empty.txt"
    text.write_text("\n\n", encoding="utf-8")
    at = set_text_and_model(open_page(), text, tiny_model)
    assert not at.exception
    assert any("has no text" in e.value for e in at.error)
    assert "pretrain_start" not in [b.key for b in at.button]
    assert not list((workspace / "runs").glob("*"))


def test_pretrain_on_a_multi_label_dataset_then_fine_tune_it_as_multi_label(multilabel_workspace, workspace, tiny_model):
    # Pretraining reads a prepared dataset's texts only: a multi-label dataset (GoEmotions sample, 28 labels, each
    # row's labels a set) pretrains like any other, and the model it gives fine-tunes as a multi-label classifier.
    from _multilabel import DATASET, copy_workspace

    copy_workspace(multilabel_workspace, workspace)
    at = open_page()
    at.radio(key="pretrain_source").set_value("Prepared dataset").run()
    at.selectbox(key="pretrain_dataset").set_value(DATASET).run()
    at.radio(key="pretrain_model_kind").set_value("Local folder").run()
    at.text_input(key="pretrain_model_path").input(str(tiny_model)).run()
    at.number_input(key="pretrain_max_steps").set_value(4)
    at.number_input(key="pretrain_eval_steps").set_value(2)
    at.number_input(key="pretrain_max_seq_length").set_value(32)
    at.number_input(key="pretrain_batch_size").set_value(8).run()
    assert not at.exception and not at.error
    assert any(c.value.startswith(f"python -m bmcore pretrain --data {DATASET} ") for c in at.code)
    at.button(key="pretrain_start").click().run()
    assert not at.exception and not at.error
    run_dir = runs.find_run(at.session_state["pretrain_run"])
    status = runs.wait_for(run_dir, timeout=TIMEOUT)
    assert status["state"] == "completed", runs.log_tail(run_dir)
    assert (run_dir / runs.MODEL_DIR / "model.safetensors").is_file()

    at.run()
    assert not at.exception
    at.button(key="pretrain_finetune").click().run()
    assert not at.exception
    assert not at.error
    assert at.selectbox(key="train_dataset").value == DATASET  # the workspace's only dataset
    assert at.selectbox(key="train_model_run").value == str(run_dir / runs.MODEL_DIR)
    assert any("several labels" in i.value.lower() or "multi-label" in i.value.lower() for i in at.info), \
        [i.value for i in at.info]
    assert any(f"--model {run_dir / runs.MODEL_DIR}" in c.value and f"--data {DATASET}" in c.value for c in at.code)


def test_the_tracking_setting_reaches_the_command(tiny_model, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("the patient felt better on day two\nblood pressure fell after the dose\n" * 20, encoding="utf-8")
    at = set_text_and_model(open_page(), text, tiny_model)
    at.selectbox(key="pretrain_report_to").set_value("mlflow").run()
    assert not at.exception
    assert at.text_input(key="pretrain_experiment_name").placeholder == "notes"  # the data's name, as the run uses
    [command] = [c.value for c in at.code if c.value.startswith("python -m bmcore pretrain")]
    assert "--report-to mlflow" in command
