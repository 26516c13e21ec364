"""The multi-label journey in a real browser: upload GoEmotions comments with comma-separated labels, train the tiny
model on them from the Train page, read the Evaluate page (tiles, thresholds, a click on the per-label confusion
grid) and try a sentence in the Playground. Screenshots in test-artifacts/e2e-multilabel/ (look at them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from _server import (
    ask_playground,
    fill,
    go,
    idle,
    need_chromium,
    open_app,
    set_up_tiny_run,
    shot,
    train_to_the_end,
    upload,
)
from conftest import ROOT

from bmcore import evaluation_files as evf
from bmcore import runs

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "e2e-multilabel"



def test_multi_label_journey(workspace: Path, shared_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    need_chromium()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    csv = tmp_path / "tickets.csv"  # GoEmotions comments: 1 to 5 emotions each, comma-separated
    pd.read_csv(shared_data / "goemotions" / "train.csv").sample(400, random_state=1).to_csv(csv, index=False)

    with open_app(workspace) as page:

        # 1. Data: the upload is detected as multi-label, with its label stats.
        upload(page, csv)
        body = page.inner_text("body")
        assert "multi-label" in body.lower() and "Labels per row (mean)" in body
        assert page.locator(".js-plotly-plot").count() >= 3  # rows per label, labels per row, co-occurrence
        fill(page, "Name", "tickets")
        page.get_by_role("button", name="Save").click()
        idle(page)
        page.get_by_text("Saved 'tickets'").wait_for()
        shot(page, ARTIFACTS, "1-data-multilabel")

        # 2. Train: the page says what multi-label training does; a short run of the tiny model.
        set_up_tiny_run(page, "tickets", tiny_model, 48, 24)
        assert "sigmoid" in page.inner_text("body")
        shot(page, ARTIFACTS, "2-train-settings")
        run_dir = train_to_the_end(page, workspace)
        assert runs.load_run_config(run_dir).problem_type == "auto"
        shot(page, ARTIFACTS, "3-train-finished")

        # 3. Evaluate: multi-label tiles, tuned thresholds, and a click on the first label's confusion matrix.
        result = evf.load_eval(run_dir / runs.EVALUATION_DIR / "test")
        first = result.label_names[0]
        (tn, fp), _ = result.metrics["label_confusion"]["matrices"][0]
        go(page, "Evaluate")
        page.get_by_role("heading", name="How good is it?").first.wait_for()
        body = page.inner_text("body")
        assert "Macro F1" in body and "Subset accuracy" in body and "Hamming loss" in body
        page.get_by_role("heading", name="Tuned thresholds against a flat 0.5").first.wait_for()
        grid = page.locator(".js-plotly-plot").filter(has_text="Per label: rows gold").first
        grid.scroll_into_view_if_needed()
        cell = grid.locator(".nsewdrag").first.bounding_box()
        page.mouse.click(cell["x"] + cell["width"] * 0.75, cell["y"] + cell["height"] * 0.25)  # gold no, predicted yes
        idle(page)
        page.get_by_text(f"{fp:,} false positives of {first}").first.wait_for()
        page.mouse.click(cell["x"] + cell["width"] * 0.25, cell["y"] + cell["height"] * 0.25)  # gold no, predicted no
        idle(page)
        page.get_by_text(f"{tn:,} true negatives of {first}").first.wait_for()
        shot(page, ARTIFACTS, "4-evaluate-multilabel")

        # 4. Playground: every label against its threshold, the predicted set, a label to explain.
        go(page, "Playground")
        ask_playground(page, "thank you so much, I <b>love</b> it")
        page.get_by_text("Labels predicted").first.wait_for()
        page.locator(".js-plotly-plot").filter(has_text="against its threshold").first.wait_for()
        idle(page, timeout=180)
        body = page.inner_text("body")
        assert "Predicted labels:" in body and "threshold" in body
        assert "<b>love</b>" not in page.content().replace("&lt;b&gt;", "")  # text, not HTML
        shot(page, ARTIFACTS, "5-playground-multilabel")
