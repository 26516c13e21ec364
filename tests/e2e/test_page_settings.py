"""Settings survive a visit to another page in a real browser, where app.py frames every page (AppTest runs a page
file on its own after switch_page, so this is the path users take): the Playground's text and its prediction."""

from __future__ import annotations

from pathlib import Path

import pytest
from _server import ARGS, CHROMIUM, Server, go, idle, need_chromium

pytestmark = pytest.mark.e2e

TEXT = "a charming and affecting film"


def test_the_playground_text_and_result_stay_across_pages(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    need_chromium()
    ws = tmp_path / "workspace"
    ws.mkdir(exist_ok=True)
    server = Server(ws)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(180_000)
            page.goto(server.url)
            idle(page)
            go(page, "Playground")  # the bundled builtin:minilm base model: no run needed
            box = page.get_by_label("Text", exact=True).first
            box.fill(TEXT)
            box.press("Control+Enter")
            idle(page, timeout=300)
            page.get_by_text("Attributions of P(").first.wait_for()
            for title in ("Data", "Evaluate", "Playground"):
                go(page, title)
            idle(page, timeout=300)
            assert page.get_by_label("Text", exact=True).first.input_value() == TEXT
            page.get_by_text("Attributions of P(").first.wait_for()  # the result is drawn again
            browser.close()
    finally:
        server.stop()
