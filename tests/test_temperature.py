"""Temperature scaling is kept only where it can be trusted: enough validation examples, and a lower log loss on
validation examples it was not fitted on; otherwise none is saved, and every place that shows calibration says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore.baseline import baseline_probs, fit_baseline
from bmcore.cli import main
from bmcore.data import load_prepared, load_source, prepare, save_prepared
from bmcore.evaluate import evaluate_model
from bmcore.inference import load_for_inference
from bmcore.model_meta import read_model_meta, write_model_meta
from bmcore.report import evaluation as rev
from bmcore.tasks.single_label_classification import (
    MIN_TEMPERATURE_ROWS,
    decide_temperature,
    fit_temperature,
    nll,
)

EMOTION = ["sadness", "joy", "love", "anger", "fear", "surprise"]  # the dataset's id order


@pytest.fixture(scope="module")
def emotion_logits(shared_data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real logits: the TF-IDF baseline trained on 4,000 emotion training rows (log-probabilities, [n, 6]) on the
    official validation and test splits (2,000 rows each), with their gold ids."""
    read = lambda f: pd.read_csv(shared_data / "emotion" / f, dtype=str, keep_default_na=False)  # noqa: E731
    model = fit_baseline(read("train.csv").head(4000), EMOTION)
    out = {}
    for split, f in (("validation", "val.csv"), ("test", "test.csv")):
        df = read(f)
        probs = baseline_probs(model, df, EMOTION)
        out[split] = (np.log(np.clip(probs, 1e-12, 1.0)), df["label"].map(EMOTION.index).to_numpy())
    return out


def test_a_small_validation_split_gets_no_temperature_and_says_why(emotion_logits):
    z, y = emotion_logits["validation"]
    d = decide_temperature(z[:25], y[:25])
    assert d["temperature"] is None and d["fitted"] is None and d["validation_rows"] == 25
    assert d["reason"] == (f"the validation split has 25 examples; at least {MIN_TEMPERATURE_ROWS} are needed to trust "
                           "a fitted temperature")


def test_a_temperature_that_helps_on_held_out_rows_is_kept_and_helps_on_test(emotion_logits):
    (z, y), (zt, yt) = emotion_logits["validation"], emotion_logits["test"]
    d = decide_temperature(z[:400], y[:400])  # logistic regression here is under-confident: T < 1 sharpens it
    assert d["reason"] is None and d["temperature"] == d["fitted"] < 0.8
    assert d["nll_heldout_after"] < d["nll_heldout_before"] and d["folds"] == 5
    assert nll(zt, yt, d["temperature"]) < nll(zt, yt) - 0.05  # and on the test split, which it never saw


def test_a_temperature_that_does_not_help_on_held_out_rows_is_dropped(emotion_logits):
    (z, y), (zt, yt) = emotion_logits["validation"], emotion_logits["test"]
    calibrated = z / fit_temperature(zt, yt)  # a model already calibrated (on other data): nothing left to fix
    d = decide_temperature(calibrated, y)
    assert d["temperature"] is None and d["fitted"] is not None and abs(d["fitted"] - 1) < 0.05
    assert d["nll_heldout_after"] >= d["nll_heldout_before"]
    assert d["reason"].startswith(f"a fitted temperature (T = {d['fitted']:.2f}) made the log loss worse on validation "
                                  "examples it was not fitted on (")


@pytest.fixture
def sst_25(shared_data: Path) -> str:
    """SST-2 dev prepared, its validation split cut to 25 rows (the issue's 25 validation images, in text)."""
    ds = prepare(load_source(str(shared_data / "sst2" / "dev.csv")), name="sst-25", seed=0)
    ds.splits["validation"] = ds.splits["validation"].head(25)
    save_prepared(ds)
    return "sst-25"


def test_evaluation_saves_no_temperature_over_a_stale_one_and_every_view_says_why(tiny_model, sst_25, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    write_model_meta(model, temperature=1.8)  # a temperature an earlier evaluation saved
    rc = main(["evaluate", "--model", str(model), "--data", sst_25, "--out", str(tmp_path / "eval"), "--save-temperature"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    reason = "the validation split has 25 examples; at least 100 are needed to trust a fitted temperature"
    assert summary["temperature"] is None and summary["ece_calibrated"] is None and summary["temperature_reason"] == reason
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["calibration"]["reason"] == reason and metrics["calibration"]["saved"]
    # The model folder no longer carries the stale temperature: prediction has no calibrated scores, and says why.
    meta = read_model_meta(model)
    assert meta["temperature"] is None and meta["temperature_reason"] == reason
    assert load_for_inference(str(model)).predict_proba(["a fine film"]).calibrated_probs is None
    assert rev.model_temperature_note(meta) == ("No calibrated probabilities: no temperature was saved with this "
                                                   f"model, as {reason}.")
    assert rev.no_temperature_text(metrics) == f"No temperature was saved: {reason}. The probabilities are the model's own."
    assert rev.calibration_text(metrics) == (None, None)

    # Scored again without fitting: the reason saved with the model is the one given.
    again = evaluate_model(str(model), load_prepared(sst_25), "test", fit_calibration=False, baseline=False)
    assert again.metrics["temperature"] is None and again.metrics["calibration"]["reason"] == reason


def test_reasons_from_files_are_shown_as_text():
    evil = "![x](http://evil.example/x.png) <b>25</b>"
    text = rev.no_temperature_text({"temperature": None, "calibration": {"reason": evil}})
    note = rev.model_temperature_note({"temperature": None, "temperature_reason": evil})
    for shown in (text, note):
        assert "\\[x\\]" in shown and "![x](" not in shown and "<b>" not in shown  # Markdown-escaped
    assert rev.no_temperature_text({}) == "No temperature was fitted (the dataset has no validation split)."
    assert rev.no_temperature_text({"temperature": 1.4}) is None
    assert rev.model_temperature_note({"temperature": 1.4}) is None
    assert rev.model_temperature_note({}).startswith("No calibrated probabilities: no temperature is saved")
