"""A regression model leaves the studio as a classifier does (issue 28): ``bmcore predict`` and ``bmcore evaluate``
through the CLI, the model card and its snippet, the ONNX parity check, and the Playground page (AppTest), on the
tiny random BERT trained once through the CLI on a cut of STS-B (real sentence pairs, scores 0 to 5).

Its scores are meaningless (a random model): tests assert behaviour, and that every path gives the same number as
``transformers.pipeline(..., function_to_apply="none")``."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_regression import stsb

from bmcore import data as bdata
from bmcore import runs
from bmcore.cli import main as cli_main
from bmcore.device import detect_device
from bmcore.evaluation_files import EVAL_METRICS_FILE, read_predictions
from bmcore.export.card import write_model_card
from bmcore.export.onnx import PARITY_ATOL, export_onnx
from bmcore.inference import load_for_inference, predict
from bmcore.report import playground as view
from bmcore.report.export import parity_summary

DATASET = "stsb-small"
RUN = "reg"
MAX_LEN = 48
PAIR = ("A man is playing a guitar.", "A man plays the guitar.")
TIMEOUT = 180  # the first AppTest run imports torch and transformers on 2 busy CPU cores


@pytest.fixture(scope="module")
def trained_workspace(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Path:
    """A workspace with ``stsb-small`` (300 train, 80 validation and 120 test pairs) and run ``reg``: the tiny BERT
    trained 30 steps on it through the CLI, in fp32 (bf16 would tie a random model's close scores)."""
    ws = tmp_path_factory.mktemp("regression") / "workspace"
    ws.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        mp.setenv("BMCORE_PRECISION", "fp32")
        detect_device.cache_clear()
        splits = {"train": stsb(shared_data, "train", 300), "validation": stsb(shared_data, "train", 80, 300),
                  "test": stsb(shared_data, "dev", 120)}
        bdata.save_prepared(bdata.PreparedDataset(name=DATASET, source="stsb",
                                                  columns=bdata.Columns(["sentence1", "sentence2"], "score"),
                                                  label_names=["score"], splits=splits, problem_type="regression"))
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_main(["train", "--data", DATASET, "--model", str(tiny_model), "--out", str(ws / "runs" / RUN),
                             "--max-steps", "30", "--max-seq-length", str(MAX_LEN), "--learning-rate", "1e-3",
                             "--eval-strategy", "steps", "--eval-steps", "10"]) == 0
    detect_device.cache_clear()
    return ws


@pytest.fixture
def fp32(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """fp32 inference, whatever an earlier test in this process detected (:func:`bmcore.device.detect_device` is
    cached): the pipeline's scores and bmcore's then agree to 1e-4."""
    monkeypatch.setenv("BMCORE_PRECISION", "fp32")
    detect_device.cache_clear()
    yield
    detect_device.cache_clear()  # the tests after this one detect the device as it is


@pytest.fixture
def run_dir(trained_workspace: Path, workspace: Path, fp32: None) -> Path:
    shutil.copytree(trained_workspace, workspace, dirs_exist_ok=True)
    return workspace / "runs" / RUN


def pipeline_scores(model_dir: Path, inputs: list) -> list[float]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(model_dir), function_to_apply="none")
    return [float((out[0] if isinstance(out, list) else out)["score"])
            for out in (pipe(x, truncation=True, max_length=MAX_LEN) for x in inputs)]


def json_lines(capsys: pytest.CaptureFixture) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_predict_prints_the_score_that_the_pipeline_gives(run_dir: Path, tmp_path: Path, capsys):
    model_dir = run_dir / runs.MODEL_DIR
    assert cli_main(["predict", "--model", str(model_dir), "--pair", PAIR[1], PAIR[0]]) == 0
    assert cli_main(["predict", "--model", str(model_dir), "a dog runs in the park"]) == 0
    pair, single = json_lines(capsys)
    assert set(pair) == {"text", "text_pair", "score", "truncated"}  # a score: no label, no class probabilities
    assert (pair["text"], pair["text_pair"]) == PAIR and isinstance(pair["score"], float)
    expected = pipeline_scores(model_dir, [{"text": PAIR[0], "text_pair": PAIR[1]}, "a dog runs in the park"])
    assert [pair["score"], single["score"]] == pytest.approx(expected, abs=1e-4)

    dev = pd.read_csv(ROOT.parent / "shared" / "data" / "stsb" / "dev.csv").iloc[200:206]
    (tmp_path / "pairs.csv").write_text(dev[["sentence1", "sentence2"]].to_csv(index=False))
    assert cli_main(["predict", "--model", str(model_dir), "--file", str(tmp_path / "pairs.csv")]) == 0
    lines = json_lines(capsys)
    assert [(r["text"], r["text_pair"]) for r in lines] == list(zip(dev["sentence1"], dev["sentence2"], strict=True))
    assert [r["score"] for r in lines] == pytest.approx(
        pipeline_scores(model_dir, [{"text": a, "text_pair": b} for a, b in zip(dev["sentence1"], dev["sentence2"],
                                                                                strict=True)]), abs=1e-4)
    assert len({round(r["score"], 6) for r in lines}) > 1  # real scores, not one constant

    clf = load_for_inference(str(model_dir), precision="fp32")
    pred = clf.predict_proba([PAIR[0]], [PAIR[1]])
    assert pred.probs.shape == (1, 1) and pred.probs[0, 0] == pytest.approx(pred.logits[0, 0])  # the raw output
    assert predict(clf, [PAIR[0]], [PAIR[1]])[0]["score"] == pytest.approx(pair["score"], abs=1e-5)

    assert cli_main(["predict", "--model", str(model_dir), "--explain", "--n-steps", "16", "a dog runs"]) == 0
    explained = json_lines(capsys)[0]
    assert explained["target"] == "score" and len(explained["attributions"]) == len(explained["tokens"])


def test_evaluate_prints_correlations_and_errors_next_to_the_baseline(run_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--model", str(run_dir / runs.MODEL_DIR), "--data", DATASET, "--out", str(out)]) == 0
    summary = json_lines(capsys)[-1]
    assert summary["problem_type"] == "regression" and summary["split"] == "test" and summary["n"] == 120
    assert "accuracy" not in summary and "ece" not in summary
    saved = json.loads((out / EVAL_METRICS_FILE).read_text())
    for key in ("pearson", "spearman", "rmse", "mae", "r2"):
        assert summary[key] == pytest.approx(saved[key]) and summary["baseline"][key] == pytest.approx(saved["baseline"][key])
    table = read_predictions(out)
    err = table["pred"] - table["gold"]
    assert summary["rmse"] == pytest.approx(float(np.sqrt((err ** 2).mean())))
    assert summary["mae"] == pytest.approx(float(err.abs().mean()))
    assert summary["pearson"] == pytest.approx(float(np.corrcoef(table["gold"], table["pred"])[0, 1]))
    assert summary["baseline"]["pearson"] > 0.3  # TF-IDF ridge on real pairs: better than chance


def test_the_model_card_gives_the_regression_results_and_a_snippet_that_works(run_dir: Path, capsys):
    card = write_model_card(run_dir).read_text()
    # The card gives the full evaluation that training wrote (bmcore's inference), not eval.json's (Trainer's batches).
    test = json.loads((run_dir / runs.EVALUATION_DIR / "test" / EVAL_METRICS_FILE).read_text())
    assert "A text regression model that predicts a score" in card
    assert "| model | Pearson correlation | Spearman correlation | RMSE | MAE | R² |" in card
    row = next(line for line in card.splitlines() if line.startswith("| this model |"))
    assert row == "| this model | " + " | ".join(f"{test[k]:.4f}" for k in ("pearson", "spearman", "rmse", "mae", "r2")) + " |"
    assert "| baseline: TF-IDF + ridge regression" in card and "| gold score | examples | MAE |" in card
    assert "- Target: a score" in card and "accuracy" not in card.lower() and "Classes:" not in card
    assert "- type: pearsonr" in card and f"value: {round(test['pearson'], 4)}" in card and "- type: spearmanr" in card

    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert 'function_to_apply="none"' in snippet
    exec(snippet.replace("path/to/this/folder", str(run_dir / runs.MODEL_DIR)), {})  # noqa: S102 - our own card
    printed = [ast.literal_eval(line) for line in capsys.readouterr().out.splitlines()]
    single, pair = printed[0][0], printed[1]
    assert single["label"] == pair["label"] == "score"
    clf = load_for_inference(str(run_dir / runs.MODEL_DIR), precision="fp32")
    assert [single["score"], pair["score"]] == pytest.approx(
        [predict(clf, ["your text here"])[0]["score"], predict(clf, ["a first text"], ["a second text"])[0]["score"]],
        abs=1e-4)


def test_onnx_parity_compares_the_scores(run_dir: Path):
    result = export_onnx(run_dir)
    p = result.parity
    assert result.passed and p["n"] == 120 and p["problem_type"] == "regression" and p["output"] == "score"
    assert p["score_agreement"] == 1.0 and "label_agreement" not in p and p["max_abs_diff"] <= PARITY_ATOL
    line = parity_summary(p)
    assert line.startswith("ONNX parity passed: max |score diff|") and "score agreement 100.0% on all 120" in line


def open_playground() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/playground.py").run()
    assert not at.exception
    return at


def test_the_playground_shows_the_score_and_explains_it(run_dir: Path):
    model_dir = (run_dir / runs.MODEL_DIR).resolve()
    test = json.loads((run_dir / runs.EVAL_FILE).read_text())["test"]
    at = open_playground()
    picker = at.selectbox(key="playground_model_choice")
    assert picker.value == str(model_dir)
    assert picker.format_func(picker.value) == f"{RUN} · {DATASET} · test Pearson correlation {test['pearson']:.3f}"

    at.text_area(key="playground_input").input(PAIR[0])
    at.text_area(key="playground_pair").input(PAIR[1]).run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    expected = pipeline_scores(model_dir, [{"text": PAIR[0], "text_pair": PAIR[1]}])[0]
    assert metrics["Predicted score"] == f"{expected:.3f}" and metrics["Latency"].endswith(" ms")
    assert "Prediction" not in metrics and "Probability" not in metrics
    lo, hi = view.score_range(DATASET)
    assert any(f"run from {lo:g} to {hi:g}" in c.value for c in at.caption)  # the training data's range
    assert len(at.get("plotly_chart")) == 4  # no probability bars: one head, rollout, all heads, [CLS]
    assert not [s for s in at.selectbox if s.key == "playground_target"]  # one output: nothing to choose
    assert "“score”" in at.get("html")[0].value
    assert any(c.value.startswith("Attributions of the score sum to") for c in at.caption)

    buttons = [b for b in at.button if b.key.startswith("playground_example_")]
    assert len(buttons) == 6  # two examples from each third of the test scores
    buttons[0].click().run()
    assert not at.exception
    true = next(m for m in at.metric if m.label == "True score")
    predicted = float(next(m.value for m in at.metric if m.label == "Predicted score"))
    assert true.delta == f"{predicted - float(true.value):+.3f} error"


def test_a_playground_batch_of_pairs_with_gold_scores(run_dir: Path, shared_data: Path):
    dev = pd.read_csv(shared_data / "stsb" / "dev.csv").iloc[300:330].rename(columns={"score": "label"})
    at = open_playground()
    at.radio(key="playground_batch_source").set_value("Upload a file").run()
    at.file_uploader(key="playground_batch_file").upload("dev.csv", dev.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table.columns) == ["text", "text_pair", "gold", "score", "truncated"]
    assert table["gold"].astype(float).tolist() == pytest.approx(dev["label"].tolist())
    shown = {m.label: m.value for m in at.metric}
    err = table["score"] - table["gold"].astype(float)
    assert shown["Labelled rows"] == "30" and shown["MAE"] == f"{err.abs().mean():.3f}"
    assert shown["RMSE"] == f"{np.sqrt((err ** 2).mean()):.3f}"
    assert shown["Pearson correlation"] == f"{np.corrcoef(table['gold'].astype(float), table['score'])[0, 1]:.3f}"
    assert any(c.value.startswith("30 texts · predicted scores from ") for c in at.caption)


def test_the_train_page_offers_what_a_regression_run_measures_and_shows_its_result(run_dir: Path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="train_dataset").value == DATASET
    best = at.selectbox(key="train_best_metric")
    assert best.options == ["loss", "pearson"] and best.value == "pearson"  # no accuracy to pick a checkpoint by
    assert any("--metric-for-best-model pearson" in c.value for c in at.code)

    test = json.loads((run_dir / runs.EVAL_FILE).read_text())["test"]
    metrics = {m.label: m.value for m in at.metric}  # the finished run's outcome
    assert metrics["Test Pearson correlation"] == f"{test['pearson']:.3f}" and "Test accuracy" not in metrics
    assert any('function_to_apply="none"' in c.value for c in at.code)
