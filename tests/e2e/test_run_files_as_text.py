"""Run files are data in a real browser (issue 26, item 2): a running run whose status.json ``phase``, ``precision`` and
``head_notice`` are Markdown images and HTML, and a failed run whose ``error`` is one, opened on the Train page.

A local listener records any request: a rendered ``![p](http://127.0.0.1:PORT/p.png)`` would reach it. The phase must
read as literal text. Screenshots go to test-artifacts/e2e/run-files-*.png.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from _server import ARGS, CHROMIUM, Server, choose, go, idle, need_chromium
from test_hostile_strings import ARTIFACTS, Listener, foreign_links

from bmcore import data as bdata
from bmcore import processes, runs
from bmcore.display import WORD_JOINER

pytestmark = pytest.mark.e2e


def _run(ws: Path, name: str, created: str, **status: object) -> Path:
    folder = ws / "runs" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_name_or_path": "builtin:minilm", "dataset": "films"}))
    (folder / "status.json").write_text(json.dumps({"created": created, **status}))
    return folder


def shown(page) -> str:
    """The page's text as a reader sees it: without the invisible word joiners that keep a URL from being linked."""
    return page.inner_text("body").replace(WORD_JOINER, "")


def test_a_runs_phase_and_other_status_fields_are_shown_as_text(workspace: Path) -> None:
    need_chromium()
    from playwright.sync_api import sync_playwright

    listener = Listener()
    url = f"http://127.0.0.1:{listener.port}"
    phase, precision = f"![p]({url}/p.png)", f"<img src={url}/q.png>"
    frame = pd.DataFrame({"text": [f"review number {i} of a film" for i in range(60)], "label": ["bad", "good"] * 30})
    bdata.save_prepared(bdata.prepare(bdata.RawData("films", {"all": frame}), "films", seed=0))
    # A live process stands in for the job (its pid and start time recorded as a job records them).
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "bmcore-phase-job"],
                           start_new_session=True)
    time.sleep(0.3)
    _run(workspace, "hostile-failed", "2026-01-01T00:00:00", state="failed", error=f"![e]({url}/e.png) went wrong")
    live = _run(workspace, "hostile-phase", "2026-01-02T00:00:00", state="running", pid=job.pid,
                pid_start=processes.process_start(job.pid), started_ts=time.time(), phase=phase, precision=precision,
                head_notice=f"![h]({url}/h.png)")
    (live / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "total_steps": 4, "epoch": 0.25,
                                                    "loss": 0.7, "learning_rate": 1e-4}) + "\n")
    assert runs.read_status(live)["state"] == runs.RUNNING
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = Server(workspace)
    dialogs: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 3000})
            page.set_default_timeout(90_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(server.url)
            idle(page)
            go(page, "Train")
            page.get_by_text("Running: ").first.wait_for()  # the newest run opens by default
            page.wait_for_timeout(2500)  # a poll of the live view, and any image would have loaded
            page.screenshot(path=str(ARTIFACTS / "run-files-running.png"), full_page=True)
            body = shown(page)
            assert f"Running: {phase}..." in body, body  # literal text
            assert precision in body and f"![h]({url}/h.png)" in body
            links = foreign_links(page, server.url)
            choose(page, "Open a run", "hostile-failed")
            page.get_by_text("went wrong").first.wait_for()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "run-files-failed.png"), full_page=True)
            assert f"![e]({url}/e.png) went wrong" in shown(page)
            links += foreign_links(page, server.url)
            browser.close()
    finally:
        server.stop()
        listener.close()
        job.kill()
        job.wait()
    assert not listener.requests, f"the browser fetched {listener.requests} from the listener"
    assert not dialogs, dialogs
    assert not links, links
