"""Data shown as text in a real browser: labels, column and file names made of Markdown images and links, raw HTML
and LaTeX, opened on every page (Data, Train, Evaluate with a confusion cell clicked, Playground) and in the model card.

A local HTTP listener records any request made to it: a rendered ``![t](http://127.0.0.1:PORT/t.png)`` or
``<img src=...>`` would reach it. The test also fails on any dialog (a ``javascript:`` link run) and on any ``<a>``
whose ``href`` the app did not write. Screenshots go to test-artifacts/e2e/hostile-*.png.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from _server import ARGS, CHROMIUM, Server, free_port, go, idle, need_chromium
from conftest import ROOT
from markdown_it import MarkdownIt

from bmcore import data as bdata
from bmcore.export.card import model_card

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "e2e"
APP_LINKS = ("/", "#", "https://docs.streamlit.io", "https://streamlit.io", "https://huggingface.co")


class Listener:
    """An HTTP server on 127.0.0.1 that records every request it gets (none should come)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                seen.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def payloads(port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}"
    return {"image": f"![t]({url}/t.png)", "IMAGE": f"![T]({url}/t.png)", "link": "[a](javascript:alert(1))",
            "anchor": f"<a href='{url}/x'>x</a>", "img": f"<img src={url}/i.png>", "latex": "$\\frac{a}{b}$"}


def hostile_csv(port: int) -> tuple[str, bytes, list[str]]:
    """A ;-separated file (so a note names the file) whose file name, columns and labels are all payloads."""
    p = payloads(port)
    labels = [p["image"], p["link"], p["anchor"], p["img"], p["latex"]]
    rows = [(f"review number {i} about a film that was {'good' if i % 2 else 'bad'}", labels[i % 5]) for i in range(100)]
    rows += [(f"one more review {i} of the film", p["IMAGE"]) for i in range(3)]  # tiny, and differs only in case
    frame = pd.DataFrame(rows, columns=[f"review ![c](http://127.0.0.1:{port}/c.png) $x$", "<b>label</b>"])
    # A file name cannot hold "/", but browsers read "\" as "/" in http URLs.
    name = f"![f](http:\\\\127.0.0.1:{port}\\f.png) <img src=http:\\\\127.0.0.1:{port}\\g.png>.csv"
    return name, frame.to_csv(index=False, sep=";").encode(), labels


def foreign_links(page, app_url: str) -> list[str | None]:
    # Resolved by the browser: the menu's page links are relative ("pretrain"); "//host/x" resolves to another host.
    hrefs = page.eval_on_selector_all("a", "els => els.map(e => e.hasAttribute('href') ? e.href : null)")
    return [h for h in hrefs if not h or not (h.startswith(app_url) or h.startswith(APP_LINKS))]


def test_data_from_files_is_shown_as_text_on_every_page(tiny_model: Path, workspace: Path) -> None:
    need_chromium()
    from playwright.sync_api import sync_playwright

    listener = Listener()
    name, raw, labels = hostile_csv(listener.port)
    ws = workspace
    loaded = bdata.load_source(name, data=raw)
    bdata.save_prepared(bdata.prepare(loaded, "hostile", columns=bdata.detect_columns(loaded.frames["all"]), seed=0))
    run = ws / "runs" / "hostile-run"
    subprocess.run([sys.executable, "-m", "bmcore", "train", "--data", "hostile", "--model", str(tiny_model),
                    "--max-steps", "2", "--max-seq-length", "32", "--out", str(run)],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = Server(ws)
    dialogs: list[str] = []
    found: dict[str, list] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(90_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            def check(step: str) -> None:
                page.wait_for_timeout(1500)  # images and charts load
                page.screenshot(path=str(ARTIFACTS / f"hostile-{step}.png"), full_page=True)
                found[step] = foreign_links(page, server.url)

            # Data: the upload, its note (file name), the preview, the column pickers, warnings and charts.
            page.goto(server.url)
            idle(page)
            page.get_by_text("Upload a file", exact=True).click()
            idle(page)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                {"name": name, "mimeType": "text/csv", "buffer": raw})
            idle(page, timeout=180)
            page.locator(".js-plotly-plot").nth(1).wait_for()
            body = page.inner_text("body")
            assert "differ only in case" in body and "classes too small" in body
            assert labels[0] in body and "\\frac{a}{b}" in body  # shown literally
            check("data")

            # Train: the dataset's classes, and the finished run.
            go(page, "Train")
            page.get_by_role("heading", name="hostile-run").first.wait_for()
            check("train")

            # Evaluate: captions, charts, and the examples of a clicked confusion cell.
            go(page, "Evaluate")
            page.get_by_role("heading", name="Which classes does it confuse?").first.wait_for()
            chart = page.locator(".js-plotly-plot").first
            box = chart.locator(".nsewdrag").first.bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            idle(page)
            page.get_by_text("most confident first").first.wait_for()
            check("evaluate")

            # Playground: the prediction, the explained class, the charts.
            go(page, "Playground")
            text = page.get_by_label("Text", exact=True).first
            text.fill(f"a film {labels[0]} {labels[2]}")
            text.press("Control+Enter")
            idle(page, timeout=180)
            page.get_by_text("Attributions of P(").first.wait_for()
            check("playground")

            # The model card, rendered as a Markdown viewer would, in the same browser.
            card = MarkdownIt("commonmark").enable("table").render(model_card(run))
            page.set_content(card)
            check("model-card")
            browser.close()
    finally:
        server.stop()
        listener.close()
    assert not listener.requests, f"the browser fetched {listener.requests} from the listener"
    assert not dialogs, dialogs
    assert not any(found.values()), found
