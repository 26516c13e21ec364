"""Data shown as text (bmcore/display.py): Markdown, plotly labels, and every CSV the product writes for people."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import streamlit as st
from catalogue import FORMULAS, HTML, IMG, LATEX, LINK, rows
from conftest import ROOT
from markdown_it import MarkdownIt
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import evaluate as ev
from bmcore import evaluation_files as evf
from bmcore.display import csv_cell, csv_frame, from_plot_text, md, md_code, plot_text
from bmcore.report import evaluation as rev
from bmcore.report import examples as rex
from bmcore.tiny_models import make_tiny_bert

LABELS = ['=HYPERLINK("http://127.0.0.1:9/x","click")', "@neg"]  # class names a spreadsheet would run
PAYLOADS = (IMG, LINK, HTML, LATEX, "**bold** _it_ ~~s~~ `c` :red[x] :smile: www.example.com a@example.com",
            "# heading", "- item", "1. item", "> quote", "a | b", "\\$x$ \\", "&lt;b&gt;")


def rendered(markdown: str) -> str:
    """HTML from a CommonMark renderer with GitHub tables, as a stand-in for Streamlit's."""
    return MarkdownIt("commonmark").enable("table").render(markdown)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_md_renders_back_to_the_same_text(payload: str) -> None:
    html = rendered(md(payload)).strip()
    assert "<a" not in html and "<img" not in html and "<em" not in html and "<code" not in html and "<h1" not in html
    assert "<li" not in html and "<blockquote" not in html and "<table" not in html
    text = html.removeprefix("<p>").removesuffix("</p>")
    import html as h

    assert h.unescape(text).replace("\u2060", "") == payload.strip()


def test_md_leaves_ordinary_messages_readable() -> None:
    msg = "column 'label' has 3 classes (max_seq_length 128) in ../data/x.csv; 2.5% truncated"
    assert md(msg) == msg


def test_md_code_and_plot_text_cannot_be_broken_out_of() -> None:
    assert rendered(md_code("a`b`` <img src=x>")).count("<code>") == 1
    assert "<img" not in rendered(md_code("a`b`` <img src=x>"))
    assert md_code("a|b", in_table=True) == "`a\\|b`"
    shown = plot_text(HTML + LATEX)
    assert "<" not in shown and "$" not in shown and from_plot_text(shown) == HTML + LATEX


def test_csv_cell_neutralises_formulas_and_keeps_values() -> None:
    assert [csv_cell(v) for v in FORMULAS] == ["'" + v for v in FORMULAS]
    assert csv_cell("plain") == "plain" and csv_cell(-0.5) == -0.5 and csv_cell("'=x") == "'=x"


def assert_no_formula(data: bytes, where: str) -> list[list[str]]:
    """Every cell and header of a CSV: none starts with =, +, -, @, a tab or a carriage return."""
    table = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    bad = [c for row in table for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not bad, f"{where}: formula cells {bad[:5]}"
    return table


@pytest.fixture
def formula_model(tmp_path: Path) -> Path:
    return make_tiny_bert(tmp_path / "formula-bert", LABELS)


@pytest.fixture
def formula_data(workspace: Path) -> str:
    df = rows(60, tuple(LABELS))
    for i, t in enumerate(FORMULAS):
        df.loc[i * 10, "text"] = t  # spread over the splits, so the test split holds some
    bdata.save_prepared(bdata.prepare(bdata.RawData("formulas", {"all": df}), "formulas", seed=0))
    return "formulas"


def test_every_csv_the_product_writes_is_formula_safe(formula_model: Path, formula_data: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ds = bdata.load_prepared(formula_data)
    texts = set(ds.splits["test"]["text"])
    assert texts & set(FORMULAS), "the test split should hold formula texts"
    # 1. `evaluate` (CLI and the training job): predictions.csv for people, predictions.parquet raw.
    out = evf.evaluation_dir(formula_model, formula_data, "test")
    ev.evaluate_model(str(formula_model), ds, "test", out)
    table = assert_no_formula((out / evf.PREDICTIONS_FILE).read_bytes(), "predictions.csv")
    assert {"'" + t for t in texts & set(FORMULAS)} <= {r[0] for r in table[1:]}
    assert set(evf.load_eval(out).predictions["text"]) == texts  # the page reads the raw values back
    assert set(evf.load_eval(out).predictions["gold"]) <= set(LABELS)

    # 2. and 3. The Evaluate page's download and the Playground's batch CSV, as the browser would receive them.
    served: list[bytes] = []

    def recording(original):
        def download_button(*args, **kwargs):
            data = kwargs.get("data", next((a for a in args if isinstance(a, bytes)), None))
            if isinstance(data, bytes) and "text/csv" in (kwargs.get("mime"), *args):
                served.append(data)
            return original(*args, **kwargs)
        return download_button

    monkeypatch.setattr(st, "download_button", recording(st.download_button))
    monkeypatch.setattr(DeltaGenerator, "download_button", recording(DeltaGenerator.download_button))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="evaluate_source").set_value("Local model folder").run()
    at.text_input(key="evaluate_model_path").input(str(formula_model)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert served, "the Evaluate page offered no CSV download"
    assert served[-1] == (out / evf.PREDICTIONS_FILE).read_bytes()
    at.switch_page("pages/playground.py").run()
    at.selectbox(key="playground_model_choice").select("(another local folder)").run()
    at.text_input(key="playground_path").input(str(formula_model)).run()
    served.clear()
    at.text_area(key="playground_batch_lines").input("\n".join(FORMULAS[:4])).run()
    assert not at.exception and served, "the Playground offered no CSV download"
    table = assert_no_formula(served[-1], "the Playground's batch CSV")
    assert {"'" + t for t in FORMULAS[:4]} <= {r[0] for r in table[1:]}
    assert any(h.startswith("p(") for h in table[0])


def test_csv_frame_neutralises_headers_too() -> None:
    import pandas as pd

    frame = csv_frame(pd.DataFrame({"=x": ["=1", "ok"], "n": [-1.0, 2.0]}))
    assert list(frame.columns) == ["'=x", "n"] and frame["=x" if "=x" in frame else "'=x"].tolist() == ["'=1", "ok"]
    assert frame["n"].tolist() == [-1.0, 2.0]


AMPERSAND = "Tom & \"Jerry's\""  # what html.escape would turn into &amp; &quot; &#x27;, and plotly shows &quot; as is
BOLD = "<b>bold</b>"


def figure_texts(fig) -> list[str]:
    """Every string a figure carries (categories, ticks, legend names, titles, hover text)."""
    import json

    def walk(x):
        if isinstance(x, str):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from walk(v)
        elif isinstance(x, list):
            for v in x:
                yield from walk(v)

    return list(walk(json.loads(fig.to_json())))


def test_plot_text_escapes_once_for_plotly() -> None:
    assert plot_text(AMPERSAND) == AMPERSAND  # nothing plotly would read as a tag, an entity or LaTeX
    assert plot_text(BOLD) == "&lt;b&gt;bold&lt;/b&gt;"
    for raw in (AMPERSAND, BOLD, "&amp;", "&lt;b&gt;", "&#36;", "&#x27; $x$", "AT&T;", "&&lt;"):
        assert from_plot_text(plot_text(raw)) == raw
    assert plot_text("&lt;b&gt;") == "&amp;lt;b&amp;gt;"  # shown as typed, not as a tag nor as "<b>"


def test_charts_show_quotes_and_ampersands_as_they_are() -> None:
    from pages import _charts as charts

    names = [AMPERSAND, BOLD, "plain"]
    metrics = {"per_class": {n: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3} for n in names}}
    cmp = {"per_class": {n: {"f1_diff": d, "f1_a": 0.5, "f1_b": 0.5 + d} for n, d in zip(names, (0.1, -0.1, 0.0), strict=True)}}
    curves = {n: {"roc": {"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5}, "pr": {"recall": [0, 1], "precision": [1, 0], "ap": 0.5}}
              for n in names}
    figures = [charts.per_class_figure(rex.per_class_frame(metrics), names),
               charts.confusion_figure([[1, 0, 0], [0, 1, 0], [0, 0, 1]], names, False),
               charts.f1_diff_figure(rev.f1_diff_frame(cmp, plot_text("run & co")), names, plot_text("run & co")),
               *charts.roc_pr_figures(*rev.curve_frames(curves), 3, "")]
    for fig in figures:
        texts = figure_texts(fig)
        assert any(AMPERSAND in t for t in texts) and any("&lt;b&gt;bold&lt;/b&gt;" in t for t in texts)
        assert not [t for t in texts if "&quot;" in t or "&#x27;" in t or "&amp;" in t or "<b>bold" in t]
    heat = figures[1].data[0]
    assert list(heat.x) == [AMPERSAND, "&lt;b&gt;bold&lt;/b&gt;", "plain"]  # the categories exactly as plotly draws them
    assert figures[0].layout.xaxis.categoryarray[0] == AMPERSAND
