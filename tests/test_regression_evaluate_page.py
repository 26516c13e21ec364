"""The Evaluate page on regression runs, through AppTest (issue 28): the sections the regression task names (tiles
beside the baseline, the predicted-against-gold scatter, the error by gold range, the error browser, the comparison
with another run), and none of a classifier's (no confusion matrix, calibration or per-class view).

Two tiny random BERTs trained through the CLI on STS-B pairs: their scores mean little, so the tests assert what the
page shows against what the saved evaluations say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore import runs
from bmcore.cli import main as cli_main
from bmcore.device import detect_device

TIMEOUT = 180  # the first run imports torch, transformers and scikit-learn on busy CPU cores
DATASET = "stsb-small"


def stsb(shared_data: Path, split: str, n: int, start: int = 0) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "stsb" / f"{split}.csv").iloc[start:start + n]
    return pd.DataFrame({"text": df["sentence1"], "text_pair": df["sentence2"], "label": df["score"].astype(float)})


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Path:
    """A workspace with stsb-small (300/80/120 STS-B pairs, scores 0-5) and two finished regression runs, reg and reg2,
    trained through the CLI as tests/test_regression.py does."""
    ws = tmp_path_factory.mktemp("reg-evaluate-ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        mp.setenv("BMCORE_PRECISION", "fp32")  # a tiny random model's scores differ in the 4th digit: bf16 ties them
        detect_device.cache_clear()  # an earlier test in this process may have cached a detection made without it
        splits = {"train": stsb(shared_data, "train", 300), "validation": stsb(shared_data, "train", 80, 300),
                  "test": stsb(shared_data, "dev", 120)}
        bdata.save_prepared(bdata.PreparedDataset(
            name=DATASET, source="stsb", columns=bdata.Columns(["sentence1", "sentence2"], "score"),
            label_names=["score"], splits=splits, problem_type="regression"))
        for name, steps in (("reg2", "10"), ("reg", "30")):
            assert cli_main(["train", "--data", DATASET, "--model", str(tiny_model), "--out", str(ws / "runs" / name),
                             "--max-steps", steps, "--max-seq-length", "48", "--learning-rate", "1e-3",
                             "--eval-strategy", "steps", "--eval-steps", "10"]) == 0
            assert (ws / "runs" / name / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE).is_file()
    detect_device.cache_clear()  # the next caller detects again, without the variable
    return ws


@pytest.fixture
def ws(finished: Path, workspace: Path) -> Path:
    shutil.copytree(finished, workspace, dirs_exist_ok=True)  # copy2 keeps mtimes, so the saved evaluations stay fresh
    return workspace


def saved(ws: Path, run: str = "reg") -> evf.EvalResult:
    return evf.load_eval(ws / "runs" / run / runs.EVALUATION_DIR / "test")


def open_page(run: str = "reg") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    if at.selectbox(key="evaluate_run").value != run:
        at.selectbox(key="evaluate_run").select(run).run()
    assert not at.exception and not at.error
    return at


def table(at: AppTest, column: str, index: int = 0) -> pd.DataFrame:
    """The ``index``-th table with ``column`` (a table nobody selects from has no key for AppTest to find it by)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) > index, f"no table with {column}"
    return found[index]


def test_a_regression_run_shows_its_own_sections_and_no_classifier_ones(ws: Path):
    at = open_page()
    result = saved(ws)
    m = result.metrics
    assert result.problem_type == "regression" and result.label_names == ["score"]

    # The tiles: each metric beside the baseline's, errors with the inverse colour (lower is better).
    tiles = {t.label: t for t in at.metric}
    for label, key in (("Pearson", "pearson"), ("Spearman", "spearman"), ("RMSE", "rmse"), ("MAE", "mae"), ("R²", "r2")):
        assert tiles[label].value == (f"{m[key]:.3f}" if m[key] is not None else "-"), label
        if m[key] is not None and m["baseline"].get(key) is not None:
            assert tiles[label].delta == f"{m[key] - m['baseline'][key]:+.3f} vs baseline"
    assert any("correlation" in t.value and "RMSE" in t.value for t in at.markdown)  # what they mean, for learners
    assert any("120 test examples of stsb-small" in c.value for c in at.caption)

    # The classifier's sections are gone: no confusion matrix, cell pickers, calibration, curves or per-class chart.
    heads = [h.value for h in at.subheader]
    assert heads[heads.index("How good is it?"):][:4] == ["How good is it?", "Predicted against gold", "Where is it off?",
                                                           "Error browser"]
    assert not any("confuse" in h or "Calibration" in h or "Per class" in h for h in heads)
    assert not [s for s in at.selectbox if s.key in ("evaluate_cell_gold", "evaluate_cell_pred", "evaluate_err_sort")]
    assert len(at.get("plotly_chart")) == 2  # the scatter and the error by range
    assert {"evaluate_download_csv", "evaluate_download_json"} <= {b.key for b in at.get("download_button")}
    assert any(i.value.startswith("Select points in the chart") for i in at.info)

    # Error by range: the bias sentence from the saved ranges.
    assert any(c.value.startswith("Over all examples the model predicts") for c in at.caption)

    # The error browser: every example, largest absolute error first, the texts as text.
    errors = table(at, "abs_error")
    assert len(errors) == m["n"] == 120
    assert errors["abs_error"].is_monotonic_decreasing
    assert errors["abs_error"].iloc[0] == pytest.approx(result.predictions["abs_error"].max())
    assert {"text", "text_pair", "gold", "pred", "error"} <= set(errors.columns)

    # Signed order, then a gold range: only examples inside it.
    at.selectbox(key="evaluate_score_sort").select("Predicted too high first").run()
    assert not at.exception
    assert table(at, "abs_error")["error"].is_monotonic_decreasing
    at.slider(key="evaluate_score_range").set_range(3.0, 5.0).run()
    assert not at.exception
    shown = table(at, "abs_error")
    expected = result.predictions[(result.predictions["gold"] >= 3.0) & (result.predictions["gold"] <= 5.0)]
    assert len(shown) == len(expected) > 0 and shown["gold"].between(3.0, 5.0).all()


def test_compare_two_regression_runs(ws: Path):
    at = open_page()
    at.selectbox(key="evaluate_compare_run").select("reg2").run()
    assert not at.exception and not at.error
    mine, theirs = saved(ws).metrics, saved(ws, "reg2").metrics
    tiles = {t.label: t for t in at.metric}
    assert tiles["Pearson"].delta == f"{mine['pearson'] - theirs['pearson']:+.3f} vs reg2"
    assert tiles["RMSE"].delta == f"{mine['rmse'] - theirs['rmse']:+.3f} vs reg2"
    worse, better = int(tiles["Further from gold"].value), int(tiles["Closer to gold"].value)
    assert 0 < worse + better <= 120
    further = table(at, "change")
    assert len(further) == worse and further["change"].is_monotonic_decreasing and (further["change"] > 0).all()

