"""The regression Evaluate page in a real browser: a tiny model trained through the CLI on STS-B pairs, then its
results (tiles beside the baseline, the predicted-against-gold scatter, the error by range, the error browser), and a
box dragged over the scatter lists the examples under it. Screenshots in test-artifacts/e2e-regression/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from _server import go, idle, need_chromium, open_app, shot
from conftest import ROOT

from bmcore import data as bdata
from bmcore.cli import main as cli_main
from bmcore.device import detect_device

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "e2e-regression"


def stsb(shared_data: Path, split: str, n: int, start: int = 0) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "stsb" / f"{split}.csv").iloc[start:start + n]
    return pd.DataFrame({"text": df["sentence1"], "text_pair": df["sentence2"], "label": df["score"].astype(float)})


def test_regression_evaluate_journey(workspace: Path, shared_data: Path, tiny_model: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    need_chromium()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    splits = {"train": stsb(shared_data, "train", 300), "validation": stsb(shared_data, "train", 80, 300),
              "test": stsb(shared_data, "dev", 120)}
    bdata.save_prepared(bdata.PreparedDataset(
        name="stsb-small", source="stsb", columns=bdata.Columns(["sentence1", "sentence2"], "score"),
        label_names=["score"], splits=splits, problem_type="regression"))
    with monkeypatch.context() as mp:
        mp.setenv("BMCORE_PRECISION", "fp32")  # a tiny random model's scores differ in the 4th digit: bf16 ties them
        detect_device.cache_clear()
        assert cli_main(["train", "--data", "stsb-small", "--model", str(tiny_model), "--out",
                         str(workspace / "runs" / "reg"), "--max-steps", "30", "--max-seq-length", "48",
                         "--learning-rate", "1e-3"]) == 0
    detect_device.cache_clear()

    with open_app(workspace) as page:
        go(page, "Evaluate")
        page.get_by_role("heading", name="How good is it?").first.wait_for()
        body = page.inner_text("body")
        assert all(t in body for t in ("Pearson", "Spearman", "RMSE", "MAE", "R²", "vs baseline"))
        assert "Which classes does it confuse?" not in body and "Calibration" not in body
        page.get_by_role("heading", name="Where is it off?").first.wait_for()
        page.get_by_text("Over all examples the model predicts").first.wait_for()

        # Drag a box over the whole plot area: every drawn point is selected, and listed below the chart.
        scatter = page.locator(".js-plotly-plot").filter(has_text="Predicted against gold").first
        scatter.scroll_into_view_if_needed()
        area = scatter.locator(".nsewdrag").first.bounding_box()
        page.mouse.move(area["x"] + 2, area["y"] + 2)
        page.mouse.down()
        page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2, steps=8)
        page.mouse.move(area["x"] + area["width"] - 2, area["y"] + area["height"] - 2, steps=8)
        page.mouse.up()
        idle(page)
        page.get_by_text("selected examples, largest error first").first.wait_for()
        selected = page.get_by_text("selected examples, largest error first").first.inner_text()
        assert int(selected.split()[0].replace(",", "")) > 0, selected
        shot(page, ARTIFACTS, "1-evaluate-regression")
