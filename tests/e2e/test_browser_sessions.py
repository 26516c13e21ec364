"""Several browser sessions on one server, and a server that restarts under a running job (real `streamlit run`)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from _server import ARGS, CHROMIUM, Server, fill, go, idle, need_chromium, set_up_tiny_run, wait_code, wait_runs_ended

from bmcore import data as bdata
from bmcore import files, run_list, runs

pytestmark = pytest.mark.e2e

DATASET = "words"


def words(n: int = 160) -> pd.DataFrame:
    good, bad = ("great", "lovely", "superb", "fine"), ("awful", "dull", "poor", "bad")
    return pd.DataFrame([{"text": f"review {i}: the plot was {(good if i % 2 else bad)[i % 4]}",
                          "label": "positive" if i % 2 else "negative"} for i in range(n)])


@pytest.fixture
def ws(workspace: Path) -> Path:
    """This test's workspace (BMCORE_WORKSPACE is set to it) with a small prepared dataset."""
    need_chromium()
    bdata.save_prepared(bdata.prepare(bdata.RawData("words", {"all": words()}), DATASET, seed=0))
    return workspace


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def session(browser, url: str):
    """A new browser context (its own cookies, so its own Streamlit session) on the app."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    idle(page)
    return page


def set_up_training(page, tiny_model: Path, steps: int | None) -> None:
    """The tiny model on the words dataset, max_seq_length 32, and ``steps`` (None: leave Steps for the test to type)."""
    set_up_tiny_run(page, DATASET, tiny_model, 32, steps)
    # The command line is drawn from the settings the server holds: every value has reached it.
    wait_code(page, "python -m bmcore train", f"--model {tiny_model}", "--max-seq-length 32",
              *([f"--max-steps {steps}"] if steps is not None else []))


def run_config(name: str) -> tuple[int, int]:
    """(max_steps in config.json, total_steps in status.json) of a run."""
    run_dir = runs.runs_dir() / name
    return files.read_json(run_dir / runs.CONFIG_FILE)["max_steps"], runs.read_status(run_dir).get("total_steps")


def table(page) -> list[str]:
    """The cells of the page's runs table (st.dataframe draws on a canvas; its accessible grid holds the text)."""
    return [c.text_content() or "" for c in page.locator('[data-testid="stDataFrame"] [role="gridcell"]').all()]


def wait_table(page, *texts: str, times: int = 1, timeout: float = 120) -> None:
    """Wait until the page's runs table shows each of ``texts`` (at least ``times`` times): the live view redraws it."""
    deadline = time.time() + timeout
    while not all(table(page).count(t) >= times for t in texts):
        assert time.time() < deadline, (texts, table(page))
        page.wait_for_timeout(500)


def test_two_sessions_press_train_at_once(ws: Path, browser, tiny_model: Path) -> None:
    server = Server(ws)
    try:
        a, b = session(browser, server.url), session(browser, server.url)
        for page in (a, b):
            set_up_training(page, tiny_model, steps=30)
        button_a = a.get_by_role("button", name="Start training")
        button_b = b.get_by_role("button", name="Start training")
        button_a.click()
        button_b.click()  # within a fraction of a second of the first
        deadline = time.time() + 120
        while len(run_list.list_runs()) < 2:
            assert time.time() < deadline, [r.name for r in run_list.list_runs()]
            time.sleep(0.1)
        names = {r.name for r in run_list.list_runs()}
        assert len(names) == 2
        seen = wait_runs_ended([runs.runs_dir() / n for n in names])
        statuses = {n: runs.read_status(runs.runs_dir() / n) for n in names}
        assert all(s["state"] == runs.COMPLETED for s in statuses.values()), statuses
        assert {n: run_config(n) for n in names} == dict.fromkeys(names, (30, 30))  # each session's steps reached its run
        first, second = sorted(statuses.values(), key=lambda s: s["started_ts"])
        # One device, one job at a time: the second started only after the first had ended; it waited queued.
        assert second["started_ts"] >= first["ended_ts"], (first, second)
        waited = next(n for n in names if statuses[n] is second)
        assert "queued: another job is using the device" in runs.log_tail(runs.runs_dir() / waited, 400)
        assert seen[waited][0] == runs.QUEUED, seen
        for page in (a, b):
            wait_table(page, *names)  # each session's table lists both runs, completed
            wait_table(page, runs.COMPLETED, times=2, timeout=60)
    finally:
        server.stop()


def test_a_typed_value_reaches_the_run_when_start_is_clicked_at_once(ws: Path, browser, tiny_model: Path) -> None:
    """A quick user: type Steps, Tab to max_seq_length, type it and click Start at once, without Enter and without
    waiting for the page. The Tab starts a rerun and the click commits the second value (blur) while it runs."""
    server = Server(ws)
    try:
        page = session(browser, server.url)
        set_up_training(page, tiny_model, steps=None)
        page.get_by_label("Steps", exact=True).first.fill("7")
        page.keyboard.press("Tab")
        page.get_by_label("max_seq_length (tokens)", exact=True).first.fill("40")
        page.get_by_role("button", name="Start training").click()
        deadline = time.time() + 120
        while not run_list.list_runs():
            assert time.time() < deadline, "no run was started"
            time.sleep(0.1)
        (row,) = run_list.list_runs()
        assert wait_runs_ended([row.path])[row.name][-1] == runs.COMPLETED, runs.log_tail(Path(row.path))
        assert run_config(row.name) == (7, 7)
        assert files.read_json(Path(row.path) / runs.CONFIG_FILE)["max_seq_length"] == 40
        wait_code(page, "--max-steps 7", "--max-seq-length 40")  # the page kept the typed values too
    finally:
        server.stop()


def progress_step(page) -> int:
    text = page.locator('[data-testid="stProgress"]').first.inner_text()
    return int(text.split("step ", 1)[1].split(" ")[0])


def test_server_restart_during_a_run(ws: Path, browser, tiny_model: Path) -> None:
    server = Server(ws)
    page = session(browser, server.url)
    set_up_training(page, tiny_model, steps=20000)
    fill(page, "Run name (optional)", "survivor")
    page.get_by_role("button", name="Start training").click()
    run_dir = ws / "runs" / "survivor"
    deadline = time.time() + 120
    while not [m for m in runs.read_metrics(run_dir) if m.get("kind") == "train" and m["step"] >= 5]:
        assert time.time() < deadline, runs.log_tail(run_dir)
        time.sleep(0.2)

    server.kill()  # the server and everything in its process group; the job runs in a session of its own
    page.close()
    step = runs.progress(run_dir)["step"]
    deadline = time.time() + 60
    while runs.progress(run_dir)["step"] <= step:  # the job goes on without its server
        assert runs.read_status(run_dir)["state"] == runs.RUNNING and time.time() < deadline
        time.sleep(0.2)

    restarted = Server(ws)
    try:
        page = session(browser, restarted.url)
        go(page, "Train")
        page.get_by_role("heading", name="survivor").first.wait_for()
        wait_table(page, "survivor", runs.RUNNING)
        first = progress_step(page)
        deadline = time.time() + 60
        while progress_step(page) <= first:  # the live fragment redraws as the job goes on, no reload
            assert time.time() < deadline, "the progress bar did not move"
            page.wait_for_timeout(500)
        # The restarted UI controls the run it found: Cancel stops it gracefully (a quiet machine would
        # otherwise finish thousands of tiny steps in the time a slow one takes to restart the server).
        page.get_by_role("button", name="Cancel").click()
        assert runs.wait_for(run_dir, timeout=300)["state"] == runs.CANCELLED
        wait_table(page, "survivor", runs.CANCELLED)
        assert (run_dir / runs.MODEL_DIR / "model.safetensors").exists()  # cancelled runs keep their model
    finally:
        restarted.stop()
