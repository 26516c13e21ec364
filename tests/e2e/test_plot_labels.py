"""Chart labels in a real plotly.js: a class named with quotes and an ampersand reads as typed (no ``&quot;`` or
``&amp;``), and one that looks like a tag reads as text, not as bold."""

from __future__ import annotations

from pathlib import Path

import pytest
from _server import ARGS, CHROMIUM, need_chromium

from bmcore.report import examples as rex
from pages import _charts as charts

pytestmark = pytest.mark.e2e

NAMES = ["Tom & \"Jerry's\"", "<b>bold</b>", "a &amp; b", "$x$"]


def test_plotly_draws_labels_as_typed(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    need_chromium()
    metrics = {"per_class": {n: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3} for n in NAMES}}
    fig = charts.per_class_figure(rex.per_class_frame(metrics), NAMES)
    page_file = tmp_path / "chart.html"
    fig.write_html(page_file, include_plotlyjs=True, full_html=True)  # plotly.js inline: no network
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_selector("g.xtick text")
            ticks = page.eval_on_selector_all("g.xtick text", "els => els.map(e => e.textContent)")
            bold = page.eval_on_selector_all("g.xtick text tspan", "els => els.map(e => e.getAttribute('style') || '')")
        finally:
            browser.close()
    assert ticks == NAMES
    assert not [s for s in bold if "bold" in s]  # <b> was drawn as text, not as a bold tspan
