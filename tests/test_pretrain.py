"""Domain-adaptive MLM pretraining: the run completes and held-out perplexity drops; fine-tuning starts from its folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from bmcore import data as bdata
from bmcore import runs
from bmcore.cli import main as cli_main
from bmcore.config import PretrainConfig, TrainConfig, config_from_dict
from bmcore.models import is_base_model, resolve_model
from bmcore.pretrain import curves_frame, is_pretrain_run, load_texts, split_documents, start_pretraining
from bmcore.report.runs_table import runs_frame

SENTENCES = ["the patient was given {} mg of the drug and felt better on day {}",
             "blood pressure fell to {} over {} after the second dose",
             "the nurse noted a fever of {} degrees on day {} of the trial"]


def write_corpus(path: Path, n: int = 300) -> Path:
    path.write_text("\n".join(SENTENCES[i % 3].format(i % 7 + 1, i % 5 + 2) for i in range(n)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pretrained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 24-step pretraining run of the tiny BERT on a clinical-sounding text file, through the CLI,
    reporting to TensorBoard."""
    base = tmp_path_factory.mktemp("pretrain")
    corpus = write_corpus(base / "notes.txt")
    env = {**os.environ, "BMCORE_WORKSPACE": str(base / "ws")}
    (base / "ws").mkdir()
    out = subprocess.run([sys.executable, "-m", "bmcore", "pretrain", "--data", str(corpus), "--model", str(tiny_model),
                          "--out", str(base / "run"), "--max-steps", "24", "--eval-steps", "8", "--learning-rate", "2e-3",
                          "--max-seq-length", "32", "--per-device-train-batch-size", "16", "--logging-steps", "4",
                          "--report-to", "tensorboard"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fine-tune from it" in out.stdout
    return base / "run"


@pytest.mark.slow
def test_pretraining_completes_and_perplexity_drops(pretrained):
    status = runs.read_status(pretrained)
    assert status["state"] == "completed" and status["mlm_head"] == "fresh"
    evals = [m for m in runs.read_metrics(pretrained) if m["kind"] == "eval"]
    assert [m["step"] for m in evals] == [0, 8, 16, 24]  # before training, then every eval_steps
    assert evals[-1]["eval_perplexity"] < evals[0]["eval_perplexity"]
    assert evals[0]["eval_perplexity"] == pytest.approx(2.718281828 ** evals[0]["eval_loss"], rel=1e-6)
    assert status["perplexity_after"] == evals[-1]["eval_perplexity"]
    assert "masked-LM head was initialised fresh" in (pretrained / runs.LOG_FILE).read_text()
    assert [m["step"] for m in runs.read_metrics(pretrained) if m["kind"] == "train"][-1] == 24
    result = json.loads((pretrained / runs.EVAL_FILE).read_text())
    assert result["task"] == "masked_lm" and result["after"]["perplexity"] < result["before"]["perplexity"]
    meta = json.loads((pretrained / "model" / "bmcore.json").read_text())
    assert meta["task"] == "masked_lm" and meta["mlm_head"] == "fresh"
    assert is_pretrain_run(pretrained) and isinstance(runs.load_run_config(pretrained), PretrainConfig)
    frame = curves_frame(pretrained)
    assert {"training MLM loss", "validation MLM loss", "validation perplexity"} <= set(frame["metric"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(pretrained / "tensorboard"))  # --report-to tensorboard, as train's
    events.Reload()
    assert {8, 16, 24} <= {e.step for e in events.Scalars("eval/perplexity")} and events.Scalars("train/loss")[-1].step == 24


def test_finetune_from_the_pretrained_run_folder(pretrained, tiny_model, shared_data):
    from safetensors.torch import load_file

    from bmcore.train import run_training

    assert resolve_model(str(pretrained)).path == (pretrained / "model").resolve()
    assert is_base_model(str(pretrained))
    # The masked-LM model has no pooler: the save carries the base checkpoint's over, so fine-tuning keeps it.
    saved, base = load_file(pretrained / "model" / "model.safetensors"), load_file(tiny_model / "model.safetensors")
    assert (saved["bert.pooler.dense.weight"] == base["bert.pooler.dense.weight"]).all()
    assert not (saved["bert.encoder.layer.0.attention.self.query.weight"]
                == base["bert.encoder.layer.0.attention.self.query.weight"]).all()

    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(160, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), "sst-mini", seed=0))
    run_dir = runs.create_run(TrainConfig(model_name_or_path=str(pretrained), dataset="sst-mini", max_steps=6,
                                          per_device_train_batch_size=16, max_seq_length=32, eval_strategy="steps",
                                          eval_steps=6, logging_steps=2), "from-pretrained")
    status = run_training(run_dir)
    assert status["state"] == "completed" and 0 <= status["test_accuracy"] <= 1
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert not is_base_model(str(run_dir))
    assert runs_frame().set_index("name").loc["from-pretrained", "model"] == pretrained.name  # the base, readable


def test_split_documents_by_line_or_blank_line_block():
    assert split_documents("one\ntwo\n\n") == ["one", "two"]
    assert split_documents("first para\nstill first\n\n second \n\n\nthird\n") == ["first para still first", "second", "third"]


def test_prepared_dataset_texts_ignore_labels_and_hold_out_validation(shared_data):
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(100, random_state=0)
    ds = bdata.prepare(bdata.RawData("s", {"all": df}), "sst-texts", seed=0)
    bdata.save_prepared(ds)
    train, held, described = load_texts("sst-texts")
    assert train == ds.splits["train"]["text"].tolist() and held == ds.splits["validation"]["text"].tolist()
    assert not set(ds.splits["test"]["text"]) & set(train + held)  # the locked test split is never read
    assert "labels ignored" in described


def test_task_dispatch_in_config_json():
    assert isinstance(config_from_dict({"task": "mlm", "dataset": "x"}), PretrainConfig)
    assert config_from_dict({"task": "mlm", "dataset": "x"}).task == "masked_lm"  # a run folder of before 2026-12-06
    assert isinstance(config_from_dict({"task": "masked_lm", "dataset": "x"}), PretrainConfig)
    assert type(config_from_dict({"dataset": "x"})) is TrainConfig
    with pytest.raises(ValueError, match="unknown task"):
        config_from_dict({"task": "ner", "dataset": "x"})


@pytest.mark.parametrize("make, extra, message", [
    (lambda p: p.write_text("\n\n  \n", encoding="utf-8"), [], "has no text"),
    (lambda p: p.write_text("only one document\n", encoding="utf-8"), [], "at least 2"),
    (lambda p: None, [], "does not exist"),
    (write_corpus, ["--mlm-probability", "1.5"], "mlm_probability must be between 0 and 1"),
    (write_corpus, ["--model", "/nowhere/model"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(make, extra, message, tmp_path, workspace, capsys):
    path = tmp_path / "text.txt"
    make(path)
    code = cli_main(["pretrain", "--data", str(path), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list((workspace / "runs").glob("*"))


@pytest.mark.slow
def test_cancel_then_resume_a_pretraining_run(tiny_model, tmp_path):
    corpus = write_corpus(tmp_path / "notes.txt", 2000)
    run_dir = start_pretraining(PretrainConfig(model_name_or_path=str(tiny_model), dataset=str(corpus), max_steps=40,
                                               eval_steps=20, max_seq_length=32, per_device_train_batch_size=8,
                                               logging_steps=1), "cancel-me")
    deadline = time.time() + 120
    while not [m for m in runs.read_metrics(run_dir) if m["kind"] == "train" and m["step"] >= 2]:
        assert time.time() < deadline, runs.log_tail(run_dir)
        time.sleep(0.2)
    runs.request_stop(run_dir)
    status = runs.wait_for(run_dir, timeout=120)
    assert status["state"] == "cancelled", status
    assert (run_dir / "model" / "model.safetensors").exists() and runs.last_checkpoint(run_dir) is not None
    # The same job command resumes it (python -m bmcore train RUN_DIR --resume), without a second step-0 evaluation.
    out = subprocess.run([sys.executable, "-m", "bmcore", "train", str(run_dir), "--resume"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    assert runs.read_status(run_dir)["state"] == "completed"
    evals = [m["step"] for m in runs.read_metrics(run_dir) if m["kind"] == "eval"]
    assert evals == [0, 20, 40]
