"""Few-shot training (``TrainConfig.few_shot``, :mod:`bmcore.fewshot`): SetFit on a few labels, saved as an ordinary
classifier that ``transformers.pipeline``, ``predict`` and the other pages open; refused where it cannot train."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import runs
from bmcore.config import TrainConfig
from bmcore.fewshot import few_shot_reason, fit_few_shot, fold_into, names_usable
from bmcore.inference import load_for_inference, predict
from bmcore.models import resolve_model
from bmcore.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent


def cut_emotion(shared_data: Path, folder: Path, per_class: int, *, seed: int = 0, evaluate: int = 200) -> Path:
    """Emotion with ``per_class`` training rows per class (seeded) and seeded samples of the official validation and
    test splits, as a folder ``bmcore data prepare`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(shared_data / "emotion" / "train.csv", keep_default_na=False)
    train.groupby("label").sample(n=per_class, random_state=seed).to_csv(folder / "train.csv", index=False)
    for split, name in (("val", "validation"), ("test", "test")):
        df = pd.read_csv(shared_data / "emotion" / f"{split}.csv", keep_default_na=False)
        df.sample(n=min(evaluate, len(df)), random_state=seed).to_csv(folder / f"{name}.csv", index=False)
    return folder


def bmcore_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bmcore", *args], capture_output=True, text=True, cwd=ROOT, timeout=900)


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_a_few_shot_run_saves_a_classifier_that_pipeline_and_predict_open(tmp_path, workspace, shared_data, tiny_model):
    from transformers import pipeline

    bmcore_cli("data", "prepare", str(cut_emotion(shared_data, tmp_path / "emo8", 8)), "--name", "emo8")
    done = bmcore_cli("train", "--data", "emo8", "--model", str(tiny_model), "--few-shot", "--max-steps", "6",
                      "--out", str(workspace / "runs" / "few"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert last_json(done.stdout)["state"] == runs.COMPLETED
    run_dir = workspace / "runs" / "few"
    status = runs.read_status(run_dir)
    assert status["few_shot"] is True and status["total_steps"] == 6 and "test_accuracy" in status
    meta = json.loads((run_dir / "model" / "bmcore.json").read_text())
    assert meta["few_shot"] == "setfit" and meta["label_names"] == ["anger", "fear", "joy", "love", "sadness", "surprise"]
    assert meta["few_shot_label_names"] is True  # emotion's class names are words: they were examples too
    card = (run_dir / "model" / "README.md").read_text()
    assert "SetFit" in card and "class names were training examples too" in card
    log = (run_dir / "train.log").read_text()
    assert "folded into bert's classification head" in log and "8 examples made of each class name" in log
    # The saved folder is an ordinary classifier: transformers.pipeline and bmcore's predict score it alike.
    texts = ["i feel so happy and loved today", "i am scared of what comes next", "this makes me furious"]
    pipe = pipeline("text-classification", model=str(run_dir / "model"), top_k=None)
    ours = predict(load_for_inference(str(run_dir / "model"), precision="fp32"), texts)
    for got, record in zip(pipe(texts), ours, strict=True):
        assert {d["label"]: d["score"] for d in got} == pytest.approx(record["scores"], abs=1e-4)


def test_the_folded_head_gives_the_setfit_heads_outputs_on_unseen_texts(shared_data, tiny_model):
    task = get_task("single_label_classification", "text")
    train = pd.read_csv(shared_data / "emotion" / "train.csv").groupby("label").sample(n=4, random_state=1)
    labels = sorted(train["label"].unique())
    targets = [labels.index(v) for v in train["label"]]
    mref = resolve_model(str(tiny_model))
    few = fit_few_shot(mref, task, train["text"].tolist(), targets, len(labels), max_steps=3, max_seq_length=64)
    classifier = task.load_model(mref, labels, TrainConfig(), {"attn_implementation": "eager"})
    assert fold_into(classifier, few, train["text"].tolist()) < 1e-4
    import torch

    unseen = pd.read_csv(shared_data / "emotion" / "test.csv")["text"].head(40).tolist()
    tok = few.setfit.model_body[0].tokenizer
    with torch.no_grad():
        got = classifier(**tok(unseen, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits.numpy()
    want = few.logits(few.embed(unseen))
    assert np.abs(got - want).max() < 1e-3
    assert (got.argmax(1) == want.argmax(1)).all()


def test_multi_label_few_shot_trains_with_a_head_per_label(tmp_path, workspace, shared_data, tiny_model):
    df = pd.read_csv(shared_data / "goemotions" / "train.csv", dtype=str, keep_default_na=False).head(300)
    ds = bdata.prepare(bdata.RawData("goemotions-sample", {"all": df}), "go", seed=0)
    bdata.save_prepared(ds)
    done = bmcore_cli("train", "--data", "go", "--model", str(tiny_model), "--few-shot", "--max-steps", "4",
                      "--max-seq-length", "64", "--out", str(workspace / "runs" / "go-few"))
    assert done.returncode == 0, done.stderr[-2000:]
    model_dir = workspace / "runs" / "go-few" / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and len(config["id2label"]) == len(ds.label_names)
    record = predict(load_for_inference(str(model_dir), precision="fp32"), ["thank you so much, this is great"])[0]
    assert set(record["thresholds"]) == set(ds.label_names)  # tuned on validation, as a fine-tune's are


def test_class_names_teach_only_where_they_are_words():
    assert names_usable(["anger", "joy"]) and names_usable(["World", "Sci/Tech"]) and names_usable(["1 star", "2 stars"])
    for codes in (["0", "1"], ["LABEL_0", "LABEL_1"], ["class 1", "class 2"], ["a", "b"], ["c1", "c2"], []):
        assert not names_usable(codes), codes


def test_few_shot_is_refused_in_one_line_where_it_cannot_train(tmp_path, workspace, shared_data, tiny_model):
    sts = pd.read_csv(shared_data / "stsb" / "train.csv", keep_default_na=False).head(200)
    bdata.save_prepared(bdata.prepare(bdata.RawData("stsb", {"all": sts}), "sts", seed=0))
    done = bmcore_cli("train", "--data", "sts", "--model", str(tiny_model), "--few-shot")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: few-shot training (SetFit) fits a classifier; regression has no "
                                                "few-shot head"]
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())  # nothing was started
    assert "takes texts" in few_shot_reason(get_task("single_label_classification", "image"))
    assert "text pairs" in few_shot_reason(get_task("single_label_classification", "text"), two_texts=True)
    assert few_shot_reason(get_task("multi_label_classification", "text")) == ""


def test_a_few_shot_run_is_cancelled_from_its_run_folder(tmp_path, workspace, shared_data, tiny_model):
    import time

    from bmcore import launch
    from bmcore.config import TrainConfig

    bmcore_cli("data", "prepare", str(cut_emotion(shared_data, tmp_path / "emo16", 16)), "--name", "emo16")
    run_dir = launch.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="emo16", few_shot=True,
                                           max_steps=5000, logging_steps=2, max_seq_length=64), "few-cancel")
    deadline = time.time() + 120
    while not [m for m in runs.read_metrics(run_dir) if m["kind"] == "train" and m["step"] >= 2]:
        assert time.time() < deadline and runs.read_status(run_dir)["state"] in runs.ACTIVE, runs.log_tail(run_dir)
        time.sleep(0.2)
    runs.request_stop(run_dir)
    status = runs.wait_for(run_dir, timeout=120)
    assert status["state"] == runs.CANCELLED, status
    assert not list(run_dir.glob("checkpoint-*")) and not (run_dir / "model").exists()  # nothing half-made is kept


FEW_SHOT_TEST_STEPS = 60


@pytest.mark.slow
def test_few_shot_with_minilm_beats_frozen_embeddings_at_8_per_class(shared_data):
    """Issue 30: 8 emotion texts per class (seed 0), builtin:minilm few-shot, against logistic regression on frozen
    embeddings of the same 48 texts, on 600 rows of the official test split neither saw. 60 pair steps, half the
    default cap, so the suite fits its 20 minutes: 0.397 against 0.275 here (the default 120: 0.440; other seeds at
    60 steps: -0.030 and +0.098). The defaults on the whole test split, three seeds: bench/few-shot-emotion-2026-12-07.md."""
    from sklearn.linear_model import LogisticRegression

    from bmcore.quality.features import embed_texts

    task = get_task("single_label_classification", "text")
    train = pd.read_csv(shared_data / "emotion" / "train.csv").groupby("label").sample(n=8, random_state=0)
    test = pd.read_csv(shared_data / "emotion" / "test.csv").sample(n=600, random_state=0)
    labels = sorted(train["label"].unique())
    y_train = np.array([labels.index(v) for v in train["label"]])
    y_test = np.array([labels.index(v) for v in test["label"]])
    few = fit_few_shot(resolve_model("builtin:minilm"), task, train["text"].tolist(), y_train.tolist(), len(labels),
                       seed=0, max_steps=FEW_SHOT_TEST_STEPS)
    few_shot = float(np.mean(few.scores(test["text"].tolist()).argmax(1) == y_test))
    frozen = LogisticRegression(max_iter=1000).fit(embed_texts("builtin:minilm", train["text"].tolist()), y_train)
    baseline = float(np.mean(frozen.predict(embed_texts("builtin:minilm", test["text"].tolist())) == y_test))
    assert few_shot > baseline + 0.05, (few_shot, baseline)
