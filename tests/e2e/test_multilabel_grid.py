"""A click on a cell of the multi-label Evaluate page's per-label confusion grid lists that cell's examples
(real `streamlit run` and Chromium: AppTest cannot click a Plotly chart)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _server import ARGS, CHROMIUM, Server, go, idle, need_chromium

from bmcore import data as bdata
from bmcore import evaluate as ev
from bmcore import runs
from bmcore.config import TrainConfig

pytestmark = pytest.mark.e2e


def test_clicking_a_label_cell_lists_its_examples(workspace: Path, shared_data: Path, tiny_model: Path) -> None:
    from playwright.sync_api import sync_playwright

    from bmcore.train import run_training

    need_chromium()
    df = pd.read_csv(shared_data / "goemotions" / "train.csv").sample(300, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("goemotions-sample", {"all": df}), "goe-e2e", seed=0))
    run = runs.create_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="goe-e2e", max_steps=8,
                                      max_seq_length=32, per_device_train_batch_size=16), "ml-e2e")
    assert run_training(run)["state"] == runs.COMPLETED
    result = ev.load_eval(run / runs.EVALUATION_DIR / "test")
    first = result.label_names[0]
    (tn, fp), _ = result.metrics["label_confusion"]["matrices"][0]

    server = Server(workspace)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            page.goto(server.url)
            idle(page)
            go(page, "Evaluate")
            page.get_by_role("heading", name="Which labels does it miss or add?").first.wait_for()
            grid = page.locator(".js-plotly-plot").filter(has_text="Per label: rows gold").first
            grid.scroll_into_view_if_needed()
            cell = grid.locator(".nsewdrag").first.bounding_box()  # the first label's matrix
            page.mouse.click(cell["x"] + cell["width"] * 0.75, cell["y"] + cell["height"] * 0.25)  # gold no, predicted yes
            idle(page)
            page.get_by_text(f"{fp:,} false positives of {first}").first.wait_for()
            page.mouse.click(cell["x"] + cell["width"] * 0.25, cell["y"] + cell["height"] * 0.25)  # gold no, predicted no
            idle(page)
            page.get_by_text(f"{tn:,} true negatives of {first}").first.wait_for()
            browser.close()
    finally:
        server.stop()
