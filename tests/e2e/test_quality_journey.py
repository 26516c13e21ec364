"""Label quality in a real browser: check a noisy dataset, review three flagged rows (relabel one, drop one, keep one),
save a new version, train on it. Screenshots go to test-artifacts/e2e/quality-*.png."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _server import ARGS, CHROMIUM, Server, go, idle, need_chromium, set_up_tiny_run, wait_job_result
from conftest import ROOT

from bmcore import data as bdata
from bmcore import runs

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "e2e"


@pytest.fixture
def server(workspace: Path, shared_data: Path):
    need_chromium()
    df = pd.read_csv(shared_data / "sms_spam" / "all.csv").sample(800, random_state=0).reset_index(drop=True)
    rng = np.random.default_rng(0)
    flips = rng.choice(600, 30, replace=False)
    df.loc[flips, "label"] = df.loc[flips, "label"].map({"ham": "spam", "spam": "ham"})
    raw = bdata.RawData("sms", {"train": df.iloc[:600], "validation": df.iloc[600:700], "test": df.iloc[700:]})
    bdata.save_prepared(bdata.prepare(raw, "sms", columns=bdata.Columns(["text"], "label")))
    srv = Server(workspace)
    yield srv
    srv.stop()


def pick_row(page, n: int) -> None:
    """Choose the ``n``-th flagged row (0 = first) in the row picker with the keyboard."""
    field = page.locator('[data-testid="stSelectbox"]').filter(has_text="Row to review").first.locator("input")
    field.click()
    for _ in range(n):
        field.press("ArrowDown")
    field.press("Enter")
    idle(page)


def test_review_save_a_version_and_train_on_it(server: Server, workspace: Path, tiny_model: Path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.goto(server.url)
        idle(page)
        go(page, "Data")
        page.get_by_text("Label quality: find the labels that are wrong").click()
        idle(page)
        page.get_by_text("TF-IDF only (fast)", exact=True).click()
        idle(page)
        page.get_by_role("button", name="Find label issues").click()
        wait_job_result(page, "Look mislabeled", workspace)
        idle(page)
        page.screenshot(path=str(ARTIFACTS / "quality-1-flagged.png"), full_page=True)
        for n, action in enumerate(("relabel", "drop", "keep")):
            pick_row(page, n)
            page.get_by_text(action, exact=True).first.click()
            idle(page)
            page.get_by_role("button", name="Record").click()
            idle(page)
        page.get_by_text("3 decisions: 1 keep, 1 relabel, 1 drop").wait_for()
        page.screenshot(path=str(ARTIFACTS / "quality-2-decisions.png"), full_page=True)
        page.get_by_role("button", name="Save as a new version").click()
        page.get_by_text("Saved the reviewed dataset as 'sms-v2'").wait_for()
        new = bdata.load_prepared("sms-v2")
        assert new.version["relabelled"] == 1 and new.version["dropped"] == 1 and new.version["kept"] == 1

        set_up_tiny_run(page, "sms-v2", tiny_model, 32, 4)
        page.get_by_role("button", name="Start training").click()
        idle(page)
        deadline = time.time() + 300
        while not page.get_by_text("completed", exact=True).count():
            assert time.time() < deadline, "the run did not finish in the browser"
            page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "quality-3-trained.png"), full_page=True)
        browser.close()
    (run,) = [r for r in runs.list_runs()]
    assert run.dataset == "sms-v2" and run.state == runs.COMPLETED
    assert not errors, errors
