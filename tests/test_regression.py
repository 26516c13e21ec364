"""Regression (issue 28): one score per example, as one task module. Engine tests on real STS-B pairs with a tiny
random model: standardised training, the scaling folded into a standard folder that ``pipeline`` loads, the metrics
and the baseline. (The real fine-tune that must reach Pearson 0.85 is ``test_regression_stsb.py``.)"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import report, run_list, runs
from bmcore.baseline import regression_baseline_metrics
from bmcore.cli import main as cli_main
from bmcore.device import detect_device
from bmcore.metrics import regression_metrics
from bmcore.tasks import get_task
from pages import _charts as charts


def stsb(shared_data: Path, split: str, n: int, start: int = 0) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "stsb" / f"{split}.csv").iloc[start:start + n]
    return pd.DataFrame({"text": df["sentence1"], "text_pair": df["sentence2"], "label": df["score"].astype(float)})


@pytest.fixture
def stsb_small(workspace: Path, shared_data: Path) -> str:
    splits = {"train": stsb(shared_data, "train", 300), "validation": stsb(shared_data, "train", 80, 300),
              "test": stsb(shared_data, "dev", 120)}
    ds = bdata.PreparedDataset(name="stsb-small", source="stsb", columns=bdata.Columns(["sentence1", "sentence2"], "score"),
                               label_names=["score"], splits=splits, problem_type="regression")
    bdata.save_prepared(ds)
    return "stsb-small"


def test_regression_metrics_on_known_values():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0])
    assert m["n"] == 4 and m["mae"] == pytest.approx(0.25) and m["rmse"] == pytest.approx(np.sqrt(0.125))
    assert m["pearson"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1.5, 2, 2.5, 4])[0, 1]) and m["spearman"] == 1.0
    assert m["r2"] == pytest.approx(1 - 0.5 / 5.0)
    assert sum(r["n"] for r in m["error_by_range"]) == 4 and m["error_by_range"][0]["low"] == 1.0
    flat = regression_metrics([1.0, 1.0], [0.5, 2.0])
    assert flat["pearson"] is None and flat["r2"] is None  # undefined on a constant gold, not NaN


def test_the_baseline_reads_both_texts_of_a_pair(shared_data: Path):
    m = regression_baseline_metrics(stsb(shared_data, "train", 2000), stsb(shared_data, "dev", 500))
    assert m["model"] == "tfidf-ridge" and m["train_rows"] == 2000 and m["pearson"] > 0.45


def test_the_standardisation_folds_into_a_standard_head(tiny_model: Path, tmp_path: Path):
    """Training predicts ``z * std + mean`` through a hook; folding it into the head's last layer changes no output,
    and the saved folder needs no hook."""
    import torch

    from bmcore.models import load_classifier, load_tokenizer

    task = get_task("regression")
    model = load_classifier(str(tiny_model), ["score"], problem_type="regression").eval()
    tok = load_tokenizer(str(tiny_model))
    batch = tok(["a man plays a guitar", "the cat sleeps"], return_tensors="pt", padding=True)
    with torch.no_grad():
        raw = model(**batch).logits.clone()
        assert "standardised" in task.init_model(model, [1.0, 3.0, 5.0], None)
        hooked = model(**batch).logits.clone()
        assert hooked == pytest.approx(raw * np.std([1.0, 3.0, 5.0]) + 3.0, abs=1e-5)
        assert "folded" in task.before_save(model)
        assert model(**batch).logits == pytest.approx(hooked, abs=1e-5)
    model.save_pretrained(tmp_path / "m")
    again = load_classifier(str(tmp_path / "m")).eval()
    with torch.no_grad():
        assert again(**batch).logits == pytest.approx(hooked, abs=1e-5)


def test_a_regression_run_is_an_ordinary_run(workspace: Path, stsb_small: str, tiny_model: Path, capsys, monkeypatch):
    """The job, the run folder and the CLI as for every task; eval.json in the data's units; the saved folder gives
    the score through ``pipeline(..., function_to_apply="none")``."""
    from transformers import pipeline

    monkeypatch.setenv("BMCORE_PRECISION", "fp32")  # a tiny random model's scores differ in the 4th digit: bf16 ties them
    detect_device.cache_clear()  # the device (and its precision) is read once per process: read it again in fp32

    out = workspace / "runs" / "reg"
    assert cli_main(["train", "--data", stsb_small, "--model", str(tiny_model), "--out", str(out), "--max-steps", "30",
                     "--max-seq-length", "48", "--learning-rate", "1e-3", "--eval-strategy", "steps",
                     "--eval-steps", "10"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["state"] == "completed" and isinstance(last["test_pearson"], float)
    ev = json.loads((out / runs.EVAL_FILE).read_text())
    assert ev["problem_type"] == "regression" and ev["headline"] == "pearson"
    assert {"pearson", "spearman", "rmse", "mae", "r2"} <= set(ev["test"])
    assert ev["test"]["rmse"] < 2.5  # in the data's units (scores 0 to 5), not standardised ones
    assert set(ev["baseline"]) == {"pearson", "spearman", "rmse", "mae"} and ev["baseline"]["pearson"] > 0.2
    assert any("eval_pearson" in r for r in runs.read_metrics(out))  # the best checkpoint is chosen by Pearson
    curves = report.train_curves_frame(out)  # the Train page's live chart draws the task's scores
    assert {"training loss", "validation loss", "validation Pearson correlation",
            "validation Spearman correlation"} <= set(curves["metric"])
    _, scores = charts.train_curves(curves)
    assert scores is not None and {d.name for d in scores.data} == {"validation Pearson correlation",
                                                                      "validation Spearman correlation"}
    assert "standardised for training" in (out / "train.log").read_text()
    config = json.loads((out / runs.MODEL_DIR / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    pipe = pipeline("text-classification", model=str(out / runs.MODEL_DIR), function_to_apply="none")
    pair = {"text": "A man is playing a guitar.", "text_pair": "A man plays the guitar."}
    got = pipe(pair)
    assert got["label"] == "score" and 0.0 <= got["score"] <= 5.0
    assert run_list.summarize_run(out).test_metric == "pearson"
