"""One journey through the product in a real browser: Playwright drives Debian's Chromium against `streamlit run`.

Screenshots of every step are kept in test-artifacts/e2e/ (look at them).
"""

from __future__ import annotations

import shutil
import time

import pandas as pd
import pytest
from _server import (
    ARGS,
    CHROMIUM,
    Server,
    ask_playground,
    choose,
    fill,
    go,
    idle,
    need_chromium,
    set_up_tiny_run,
    shot,
    upload,
    wait_runs_ended,
)
from conftest import ROOT

from bmcore import runs

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """`streamlit run app.py` on a free localhost port with a temporary workspace."""
    need_chromium()
    ws = tmp_path_factory.mktemp("e2e-workspace")
    srv = Server(ws)
    yield {"url": srv.url, "workspace": ws}
    srv.stop()


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(f"{m.text} @ {m.location.get('url', '')}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.console_errors = errors  # type: ignore[attr-defined]
        yield page
        browser.close()



def test_journey(server, browser_page, tiny_model, shared_data, tmp_path):
    page = browser_page
    page.goto(server["url"])
    idle(page)

    # 1. Data: the built-in BBC News set, charts, save.
    page.get_by_role("heading", name="Data").first.wait_for()
    page.get_by_text("Built-in: BBC News", exact=True).click()
    idle(page)
    page.locator(".js-plotly-plot").nth(1).wait_for()
    assert page.locator(".js-plotly-plot").count() >= 2
    shot(page, ARTIFACTS, "1-data-bbc")
    fill(page, "Name", "bbc")
    page.get_by_role("button", name="Save").click()
    idle(page)
    page.get_by_text("Saved 'bbc'").wait_for()

    # ... then a small uploaded CSV: auto-detected columns, save.
    csv = tmp_path / "reviews.csv"
    sample = pd.read_csv(shared_data / "sst2" / "train.csv").sample(300, random_state=0)
    sample.rename(columns={"text": "review", "label": "sentiment"}).to_csv(csv, index=False)
    upload(page, csv)
    text_box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Text column").first
    label_box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Label column").first
    assert text_box.locator("input").input_value() == "review"
    assert label_box.locator("input").input_value() == "sentiment"
    fill(page, "Name", "reviews")
    page.get_by_role("button", name="Save").click()
    idle(page)
    page.get_by_text("Saved 'reviews'").wait_for()
    shot(page, ARTIFACTS, "2-data-upload")

    # ... and the upload outlives a visit to another page (Streamlit forgets an uploader's file when its page is left).
    go(page, "Train")
    go(page, "Data")
    page.get_by_text("Current file: reviews.csv").wait_for()
    page.get_by_role("heading", name="Stats").first.wait_for()
    idle(page)
    assert page.get_by_role("radio", name="Upload a file").is_checked()
    assert label_box.locator("input").input_value() == "sentiment"
    assert page.get_by_label("Name", exact=True).first.input_value() == "reviews"
    assert page.locator(".js-plotly-plot").count() >= 2
    shot(page, ARTIFACTS, "2b-data-upload-kept")

    # 2. Train: a short run of the tiny model on the uploaded reviews; watch it finish.
    set_up_tiny_run(page, "reviews", tiny_model, 64, 40)
    shot(page, ARTIFACTS, "3-train-settings")
    page.get_by_role("button", name="Start training").click()
    idle(page)
    page.locator('[data-testid="stProgress"]').first.wait_for()
    shot(page, ARTIFACTS, "4-train-running")
    (run_dir,) = (server["workspace"] / "runs").iterdir()
    assert wait_runs_ended([run_dir])[run_dir.name][-1] == "completed", runs.log_tail(run_dir)
    deadline = time.time() + 120  # the run has ended: the live view shows it at its next poll, without a reload
    while not page.get_by_text("completed", exact=True).count():  # the table's cells are hidden (a canvas grid)
        assert time.time() < deadline, "the page did not show the finished run"
        page.wait_for_timeout(1000)
    idle(page)
    run_name = run_dir.name
    assert (server["workspace"] / "runs" / run_name / "model" / "model.safetensors").exists()
    shot(page, ARTIFACTS, "5-train-finished")

    # 3. Evaluate: metric cards, the confusion matrix, a cell's examples.
    go(page, "Evaluate")
    page.get_by_role("heading", name="How good is it?").first.wait_for()
    body = page.inner_text("body")
    assert "Baseline accuracy" in body and "Macro F1" in body
    page.get_by_role("heading", name="Which classes does it confuse?").first.wait_for()
    choose(page, "Gold label (row)", "negative")
    choose(page, "Predicted label (column)", "positive")
    page.get_by_text("examples of negative predicted as positive").first.wait_for()
    assert "Click a cell of the matrix" not in page.inner_text("body")
    shot(page, ARTIFACTS, "6-evaluate")

    # 4. Playground: a sentence, its prediction, an attention heatmap and highlighted attributions.
    go(page, "Playground")
    ask_playground(page, "a gripping, beautifully acted <b>film</b>")
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_role("heading", name="Attention").first.wait_for()  # explained: idle() can look before the run starts
    idle(page, timeout=180)
    page.wait_for_timeout(1500)
    shot(page, ARTIFACTS, "7-playground")
    body = page.inner_text("body")
    assert "negative" in body and "positive" in body
    assert page.locator(".js-plotly-plot").count() >= 2  # probabilities + attention heatmap
    assert page.locator("mark, span[style*='background']").count() > 0  # attributions shaded
    assert "<b>film</b>" not in page.content().replace("&lt;b&gt;", "")  # rendered as text, not HTML
    explain_box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Explain the class").first
    assert explain_box.locator("input").input_value() == "the predicted class"  # not an empty "Choose an option"
    shot(page, ARTIFACTS, "7-playground")

    assert not page.console_errors, page.console_errors  # type: ignore[attr-defined]
