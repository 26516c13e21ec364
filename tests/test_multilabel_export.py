"""A multi-label model through export (model card, zip, ONNX parity), transformers' pipeline, and the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from _multilabel import DATASET, copy_workspace

from bmcore import data as bdata
from bmcore import runs
from bmcore.cli import main
from bmcore.export.bundle import export_zip
from bmcore.export.card import write_model_card
from bmcore.export.onnx import PARITY_ATOL, PARITY_FILE, export_onnx, onnx_dir
from bmcore.inference import load_for_inference, predict
from bmcore.model_meta import read_model_meta
from bmcore.problem_types import MULTI_LABEL
from bmcore.report.export import parity_summary

TEXTS = ["Thank you so much, this made my day!", "I can't believe they did that again, so annoying.",
         "What do you mean by that?"]


@pytest.fixture
def run_dir(multilabel_workspace: Path, workspace: Path) -> Path:
    return copy_workspace(multilabel_workspace, workspace)


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_pipeline_top_k_none_gives_bmcores_sigmoid_scores_and_the_card_recipe_its_labels(run_dir: Path):
    from transformers import pipeline

    model_dir = run_dir / runs.MODEL_DIR
    clf = load_for_inference(str(model_dir), precision="fp32")
    assert clf.problem_type == MULTI_LABEL
    records = predict(clf, TEXTS)
    pipe = pipeline("text-classification", model=str(model_dir), top_k=None)
    thresholds = json.loads((model_dir / "bmcore.json").read_text())["thresholds"]
    assert set(thresholds) == set(clf.label_names) and all(0 < t < 1 for t in thresholds.values())
    for text, rec in zip(TEXTS, records, strict=True):
        scores = pipe([text], truncation=True, max_length=64)[0]  # as the model card says
        got = {s["label"]: s["score"] for s in scores}
        assert set(got) == set(clf.label_names)
        for name, p in rec["scores"].items():
            assert got[name] == pytest.approx(p, abs=1e-4)
        assert sum(got.values()) > 1.5  # one sigmoid per label, not a softmax over labels
        # The card's recipe (scores at the thresholds in bmcore.json) gives bmcore's predicted set.
        assert sorted(s["label"] for s in scores if s["score"] >= thresholds[s["label"]]) == sorted(rec["labels"])
        assert rec["thresholds"] == thresholds


def test_model_card_names_the_problem_the_thresholds_and_the_multi_label_metrics(run_dir: Path):
    from huggingface_hub import ModelCard

    card_path = write_model_card(run_dir)
    text = card_path.read_text(encoding="utf-8")
    meta = read_model_meta(run_dir / runs.MODEL_DIR)
    metrics = json.loads((run_dir / runs.EVALUATION_DIR / "test" / "metrics.json").read_text())
    assert "A multi-label text classifier with 28 labels" in text
    assert 'pipeline("text-classification", model="path/to/this/folder", top_k=None)' in text
    assert "bmcore.json" in text and '["thresholds"]' in text
    assert 'scores = classifier(["your text here"], truncation=True, max_length=64)[0]' in text
    assert "| model | micro F1 | macro F1 | samples F1 | subset accuracy | Hamming loss |" in text
    assert f"| this model | {metrics['micro_f1']:.4f} | {metrics['macro_f1']:.4f} | {metrics['samples_f1']:.4f} | " \
           f"{metrics['subset_accuracy']:.4f} | {metrics['hamming_loss']:.4f} |" in text
    assert "tuned on the validation split" in text
    for name, t in meta["thresholds"].items():  # each label's tuned threshold, in its row of the per-label table
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} | "))
        assert row.split(" | ")[1] == f"{t:.2f}"
    card = ModelCard.load(card_path)
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results["Test micro F1"] == round(metrics["micro_f1"], 4)
    assert results["Test subset accuracy (whole label set right)"] == round(metrics["subset_accuracy"], 4)


def test_zip_carries_the_thresholds_and_onnx_parity_compares_label_sets(run_dir: Path, tmp_path: Path):
    path = export_zip(run_dir)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"config.json", "model.safetensors", "bmcore.json", "README.md"} <= names
        assert json.loads(zf.read("bmcore.json"))["thresholds"] == read_model_meta(run_dir / runs.MODEL_DIR)["thresholds"]
        assert json.loads(zf.read("config.json"))["problem_type"] == MULTI_LABEL

    result = export_onnx(run_dir)
    p = result.parity
    assert result.passed, p
    assert p["problem_type"] == MULTI_LABEL and p["label_agreement"] == 1.0
    assert p["n"] == len(bdata.load_prepared(DATASET).splits["test"]) and p["max_abs_diff"] < PARITY_ATOL

    parity = json.loads((onnx_dir(run_dir) / PARITY_FILE).read_text())
    assert parity["passed"] and parity["problem_type"] == MULTI_LABEL
    assert "ONNX parity passed" in parity_summary(parity) and "label agreement 100.0%" in parity_summary(parity)


def test_cli_predict_prints_the_predicted_set_scores_and_thresholds(run_dir: Path, capsys):
    model = str(run_dir / runs.MODEL_DIR)
    assert main(["predict", "--model", model, "--precision", "fp32", *TEXTS[:2]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == TEXTS[:2]
    for rec in lines:
        assert set(rec["scores"]) == set(rec["thresholds"]) and len(rec["scores"]) == 28
        assert rec["labels"] == [n for n in rec["scores"] if rec["scores"][n] >= rec["thresholds"][n]]
        assert rec["label"] == max(rec["scores"], key=rec["scores"].get)

    assert main(["predict", "--model", model, "--explain", "--n-steps", "8", TEXTS[0]]) == 0
    rec = json.loads(capsys.readouterr().out)
    top = max(rec["labels"] or rec["scores"], key=rec["scores"].get)
    assert rec["target"] == top and len(rec["attributions"]) == len(rec["tokens"])

    assert main(["predict", "--model", model, "   "]) == 2
    assert "empty" in one_error_line(capsys)
    assert main(["predict", "--model", model, "--explain", "--target", "no-such-label", TEXTS[0]]) == 2
    assert "unknown target class 'no-such-label'" in one_error_line(capsys)


def test_cli_evaluate_prints_multi_label_metrics_and_the_per_label_table(run_dir: Path, tmp_path: Path, capsys,
                                                                         shared_data: Path):
    model = str(run_dir / runs.MODEL_DIR)
    assert main(["evaluate", "--model", model, "--data", DATASET, "--out", str(tmp_path / "ev")]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert out["problem_type"] == MULTI_LABEL and out["n"] == saved["n"]
    for key in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss"):
        assert out[key] == saved[key] and out["baseline"][key] == saved["baseline"][key]
    thresholds = read_model_meta(model)["thresholds"]
    assert list(out["per_label"]) == list(thresholds) and out["thresholds_fitted_on"] == "validation"
    for name, row in out["per_label"].items():
        assert row["threshold"] == thresholds[name] and row["f1"] == saved["per_class"][name]["f1"]

    # Single-label data for a multi-label model: one line, exit 2, nothing written.
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(120, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst", {"all": df}), "sst", seed=0))
    assert main(["evaluate", "--model", model, "--data", "sst", "--out", str(tmp_path / "bad")]) == 2
    assert "do not match dataset labels" in one_error_line(capsys) and not (tmp_path / "bad").exists()


def test_cli_evaluate_scores_a_multi_label_file_whole(run_dir: Path, tmp_path: Path, capsys, shared_data: Path):
    dev = pd.read_csv(shared_data / "goemotions" / "dev.csv", dtype=str, keep_default_na=False).head(150)
    dev.to_csv(tmp_path / "dev.csv", index=False)
    model = str(run_dir / runs.MODEL_DIR)
    for extra in ([], ["--text-column", "text", "--label-column", "labels"]):  # detected, or named: the same shape
        assert main(["evaluate", "--model", model, "--data", str(tmp_path / "dev.csv"), "--out", str(tmp_path / "ev"),
                     *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["problem_type"] == MULTI_LABEL and out["split"] == "all" and out["n"] == 150
        assert sum(row["support"] for row in out["per_label"].values()) == sum(len(v.split(",")) for v in dev["labels"])
