"""Data shown as text, never interpreted: one home for escaping Markdown, chart labels and spreadsheet cells.

Everything that comes from data (texts, labels, column, file, dataset and run names) passes through here
on its way to a person:

* :func:`md` for anything Streamlit renders as Markdown (``st.markdown``/``caption``/``error``/``warning``/
  ``info``/``success``, metric, tab, expander, button and radio labels). Streamlit renders GitHub Markdown,
  raw-HTML-looking text, LaTeX between ``$``, ``:color[...]`` directives, emoji shortcodes and bare URLs;
  a label such as ``![t](http://host/t.png)`` would make every visitor's browser fetch that URL.
* :func:`plot_text` for plotly labels, ticks, titles and hover text (plotly renders a subset of HTML, ``<a href>``
  included, and typesets ``$...$`` when MathJax is present).
* :func:`csv_cell` / :func:`csv_frame` for CSV files meant to be opened in a spreadsheet: a cell starting with
  ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula there (OWASP "CSV injection"), so it gets a
  leading ``'``. Files meant for programs (Parquet, JSON) keep the raw values.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

__all__ = ["FORMULA_STARTS", "csv_cell", "csv_frame", "from_plot_text", "md", "md_code", "plot_text", "plot_texts",
           "url_without_password"]

# Backslash-escaped anywhere: CommonMark lets any ASCII punctuation be escaped, and an escaped character
# always renders as itself. These open inline syntax (code, emphasis, links and images, HTML and autolinks,
# entities, LaTeX, strikethrough, tables, directive attributes, headings).
_ALWAYS = re.compile(r"[\\`*\[\]<>&$~|{}#]")
# "_" opens emphasis only next to a non-alphanumeric character (max_seq_length stays as it is).
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# Block syntax that only counts at the start of a line: lists (- + 1. 1)), setext underlines (=) and quotes.
_LINE_START = re.compile(r"(?m)^([ \t]*)(?:([-+=])|(\d+)([.)]))")
# ":name" opens a text directive (":red[...]", Streamlit's colours and badges).
_DIRECTIVE = re.compile(r":(?=[A-Za-z])")
# Streamlit turns bare URLs, e-mail addresses and :shortcodes: into links and emoji *after* parsing, on the
# plain text, so escapes do not stop them: an invisible WORD JOINER (U+2060) splits the pattern instead.
WORD_JOINER = "\u2060"
_AFTER_PARSE = re.compile(r"(?i)(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)|(?<=:)(?=[\w+/-]+:)")


def md(value: Any) -> str:
    """``value`` as Markdown that Streamlit renders back as exactly that text (nothing linked, fetched or typeset).

    Use it for every piece of data inside a Markdown-rendering ``st.*`` call, or on a whole message that
    carries data (``st.error(md(str(exc)))``): the message reads the same, only its specials are inert.
    """
    text = str(value)
    text = _ALWAYS.sub(r"\\\g<0>", text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = _LINE_START.sub(lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)), text)
    text = _DIRECTIVE.sub(r"\\:", text)
    return _AFTER_PARSE.sub(WORD_JOINER, text)


def md_code(value: Any, in_table: bool = False) -> str:
    """``value`` as an inline code span: monospace and literal (no Markdown, HTML, LaTeX or links inside).

    The fence is one backtick longer than the longest run of backticks in the value, so it cannot be closed
    early. ``in_table``: a GitHub table cell, where ``|`` must be escaped even inside code.
    """
    text = " ".join(str(value).splitlines())
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


# Plotly's text renderer (svg_text_utils.convertToTspans) reads tags such as <b>, <a href> and <br>, then decodes the
# entities below in the text between them; nothing else. So only "<" and ">" (tags), "$" (LaTeX) and an "&" that opens
# one of these entities need escaping: "&", quotes and apostrophes otherwise show as they are, and escaping them
# (html.escape) would show "&quot;" in a legend, as plotly does not decode that entity.
_PLOT_ENTITY = re.compile(r"&(?=(?:#\d+|#x[\da-fA-F]+|[a-z]+);)")
_PLOT_ESCAPES = {"<": "&lt;", ">": "&gt;", "$": "&#36;"}
_PLOT_UNESCAPES = {"&amp;": "&", **{v: k for k, v in _PLOT_ESCAPES.items()}}


def plot_text(value: Any) -> str:
    """``value`` for a plotly label, tick, title or hover text, escaped once for plotly: it renders back as exactly
    ``value`` (no tag, link or LaTeX); ``&`` and quotes stay as they are unless they would read as an entity."""
    text = _PLOT_ENTITY.sub("&amp;", str(value))
    return re.sub(r"[<>$]", lambda m: _PLOT_ESCAPES[m.group()], text)


def plot_texts(values: Any) -> list[str]:
    """:func:`plot_text` over a sequence (category names, tick labels)."""
    return [plot_text(v) for v in values]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A spreadsheet-safe CSV cell: a string that a spreadsheet would read as a formula gets a leading ``'``.

    Numbers stay numbers (``-0.5`` is a value, not a formula, and is written by pandas as a number).
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` for a CSV that people open: string cells and column headers through :func:`csv_cell`."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(str(c)) for c in out.columns]
    return out


def from_plot_text(value: Any) -> str:
    """The original of a :func:`plot_text` (a category that came back from a click on a chart)."""
    return re.sub(r"&amp;|&lt;|&gt;|&#36;", lambda m: _PLOT_UNESCAPES[m.group()], str(value))


def url_without_password(url: str) -> str:
    """``url`` with its password masked (``postgresql://me:***@host/db``), for pages, logs and status files: a study
    storage or an MLflow tracking URI. A URL ``urlsplit`` cannot read is masked by pattern."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return re.sub(r"//([^:/@]+):[^/]*@", r"//\1:***@", url)
