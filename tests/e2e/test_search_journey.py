"""The Train page's Search tab in a real browser: a search of the tiny BERT (a local folder typed into the box) on an
SST-2 cut with two trials; the leaderboard fills while it runs; the budget sentence and the validation-test line when
it ends; Use the best; the best run open on the Evaluate page. Screenshots in test-artifacts/e2e-search/."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from _server import fill, go, idle, open_app, shot
from conftest import ROOT

from bmcore import data as bdata
from bmcore import files, processes, studies

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "e2e-search"
STUDY = "sst-search-search"


def wait_status(study: str, until, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while not until(status := studies.read_search_status(study)):
        assert time.time() < deadline, status
        time.sleep(0.5)
    return status


def test_search_journey(workspace: Path, shared_data: Path, tiny_model: Path) -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(400, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), "sst-search", seed=0))

    try:
        with open_app(workspace) as page:
            go(page, "Train")
            page.get_by_role("tab", name="Search").click()
            idle(page)
            page.get_by_text("Trials are compared on the").first.wait_for()
            models = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Candidate models").first
            models.locator("input").click()
            models.locator("input").press("Backspace")  # drop the built-in MiniLM: too slow for a browser test
            models.locator("input").press("Escape")
            idle(page)
            fill(page, "More models: local folders or Hub ids, comma-separated", str(tiny_model))
            fill(page, "Budget (minutes)", "5")
            fill(page, "Trials at most (0: no limit)", "2")
            command = f"python -m bmcore tune --data sst-search --budget 5m --study {STUDY} --models {tiny_model} --trials 2"
            page.locator('[data-testid="stCode"]').filter(has_text=command).first.wait_for()
            shot(page, ARTIFACTS, "1-search-settings")

            page.get_by_role("button", name="Start the search").click()
            idle(page)
            board = page.locator('[data-testid="stDataFrame"]').filter(has_text="outcome")
            wait_status(STUDY, lambda s: s.get("state") != studies.RUNNING or len(studies.trial_table(STUDY)) >= 1)
            board.first.wait_for(timeout=120_000)  # the live leaderboard, without a reload
            page.get_by_role("button", name="Cancel the search").wait_for()
            shot(page, ARTIFACTS, "2-search-running")

            status = wait_status(STUDY, lambda s: s.get("state") != studies.RUNNING)
            assert status["state"] == studies.COMPLETED, (status, (studies.study_dir(STUDY) / studies.SEARCH_LOG).read_text())
            page.get_by_text("bought 2 trials").first.wait_for(timeout=120_000)  # the page saw the end by itself
            idle(page)
            page.get_by_text("chosen on validation").first.wait_for()
            assert page.locator('[data-testid="stDataFrame"]').filter(has_text="outcome").count() == 1
            assert page.locator(".js-plotly-plot").count() >= 1  # Optuna's history; the others once trials differ
            shot(page, ARTIFACTS, "3-search-finished")

            best = Path(status["best_run"]).name
            page.get_by_role("button", name="Use the best").click()
            idle(page)
            page.get_by_text(f"{best} is now the run the Evaluate and Playground pages open").first.wait_for()
            shot(page, ARTIFACTS, "4-search-use-the-best")

            page.get_by_role("link", name="Open it on the Evaluate page").click()
            idle(page)
            page.get_by_role("heading", name="Evaluate", exact=True).first.wait_for()
            run_box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Finished run").first
            assert run_box.locator("input").input_value() == best
            page.get_by_role("heading", name="How good is it?").first.wait_for(timeout=180_000)
            idle(page, timeout=180)
            shot(page, ARTIFACTS, "5-evaluate-best")
    finally:  # a driver left running by a failed step: the workspace fixture stops runs and jobs, not searches
        for path in workspace.glob("studies/*/status.json"):
            processes.signal_job(path.parent, files.read_json(path), signal.SIGKILL, group=True)
