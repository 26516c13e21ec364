"""The texts of a labelling project, read from an upload or a file: one text column, and optionally a label column
that holds labels for only some rows.

CSV, TSV, JSON, JSONL, Parquet and Excel go through bmcore's readers (:func:`bmcore.data.readers.load_source`, with
the deployment's caps); a ``.txt`` file is one text per line, without a header (the readers would take it for a CSV).
Rows with an empty text are dropped; each row keeps its row in the file (``file_row``, from 1 after a header).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.columns import LABEL_NAMES, MAX_CLASSES, TEXT_NAMES
from ..data.readers import load_source
from ..data.tables import decode_text
from ..errors import BmcoreError
from ..files import read_source_bytes
from ..limits import check_cell_chars, check_file_chars, check_file_rows, check_local_path, check_upload
from ..modalities import get_modality
from ..workspace import check_regular

LINES_SUFFIX = ".txt"  # a plain text file: one text per line


def _read_lines(source: str, data: bytes | None) -> tuple[pd.DataFrame, list[str]]:
    """A ``.txt`` file as a frame with one ``text`` column, a line each (empty lines dropped later)."""
    name = Path(source).name
    if data is None:
        path = Path(source).expanduser()
        check_local_path(path, "data path")
        check_regular(path)
        data = read_source_bytes(path, source)
    else:
        check_upload(name, len(data))
    notes: list[str] = []
    text = decode_text(data, name, notes)
    check_file_chars(name, len(text))
    lines = text.splitlines()
    check_file_rows(name, len(lines))
    check_cell_chars(name, max((len(line) for line in lines), default=0))
    return pd.DataFrame({"text": lines}), [*notes, f"{name}: one text per line"]


def _text_column(df: pd.DataFrame, label_column: str | None) -> str:
    """The column that holds the texts when none was chosen: the only one, one named like a text column, or else
    the one with the longest values."""
    others = [c for c in df.columns if c != label_column]
    if not others:
        raise BmcoreError("the file has no column for the texts besides the label column")
    if len(others) == 1:
        return others[0]
    lower = {str(c).lower(): c for c in others}
    named = next((lower[n] for n in TEXT_NAMES if n in lower), None)
    if named is not None:
        return named
    lengths = {c: df[c].dropna().astype(str).str.len().mean() for c in others}
    return max(others, key=lambda c: 0.0 if pd.isna(lengths[c]) else lengths[c])


def _cell(value: object) -> str | None:
    """A cell as stripped text, None when empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def read_labelling_texts(source: str, data: bytes | None = None, text_column: str | None = None,
               label_column: str | None = None, sheet: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The texts to label: a frame with ``text``, ``file_row`` and ``given`` (the label column's value, None where
    empty or without a label column), rows with an empty text dropped; and notes on what was read."""
    if Path(source).suffix.lower() == LINES_SUFFIX:
        if text_column or label_column:
            raise BmcoreError(f"{Path(source).name} is plain text, one text per line: it has no columns to choose")
        frame, notes = _read_lines(source, data)
    else:
        raw = load_source(source, data=data, sheet=sheet)
        if not get_modality(raw.modality).few_shot:
            raise BmcoreError(f"{source} holds {raw.modality}s; the labelling loop labels texts")
        frame, notes = raw.combined(), list(raw.notes)
    if label_column is not None and label_column not in frame.columns:
        raise BmcoreError(f"no label column {label_column!r}; the columns are {', '.join(map(str, frame.columns))}")
    if label_column is None:  # a column named like a label, beside the texts, gives labels for some rows
        label_column = next((c for c in frame.columns if str(c).lower() in LABEL_NAMES and c != text_column
                             and len(frame.columns) > 1), None)
        if label_column is not None:
            notes.append(f"labels for some rows from column {label_column!r}")
    text_column = text_column or _text_column(frame, label_column)
    if text_column not in frame.columns:
        raise BmcoreError(f"no text column {text_column!r}; the columns are {', '.join(map(str, frame.columns))}")
    if text_column == label_column:
        raise BmcoreError(f"column {text_column!r} cannot hold both the texts and the labels")
    texts = frame[text_column].map(_cell)
    given = frame[label_column].map(_cell) if label_column is not None else pd.Series([None] * len(frame))
    out = pd.DataFrame({"text": texts.to_numpy(), "file_row": np.arange(1, len(frame) + 1, dtype=np.int64),
                        "given": given.to_numpy()})
    keep = out["text"].notna().to_numpy()
    if not keep.any():
        raise BmcoreError(f"{Path(source).name} has no text in column {text_column!r}")
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} rows with an empty text")
    notes.append(f"texts from column {text_column!r}")
    return out[keep].reset_index(drop=True), notes


def file_columns(source: str, data: bytes | None = None, sheet: str | None = None) -> list[str]:
    """The columns of ``source`` to choose the texts and labels from; none for a ``.txt`` file (one text per line)."""
    if Path(source).suffix.lower() == LINES_SUFFIX:
        return []
    return [str(c) for c in load_source(source, data=data, sheet=sheet).combined().columns]


def choose_classes(classes: list[str] | str | None, given: pd.Series) -> list[str]:
    """The project's classes, in order: those named (a list, or names joined by commas), else the labels the file
    gives. Refused in one line: fewer than two, an empty or repeated one, one with a comma, or a label in the file
    that is not one of them."""
    found = [str(v) for v in given.dropna().unique()]
    if classes is None or (isinstance(classes, str) and not classes.strip()):
        if not found:
            raise BmcoreError("name the classes (--classes a,b,c): the file gives no labels to take them from")
        names = sorted(found)
    else:
        names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else [str(c).strip() for c in classes]
    if any(not n for n in names):
        raise BmcoreError("a class name is empty; give names separated by commas, e.g. --classes sports,politics")
    if any("," in n for n in names):
        raise BmcoreError("a class name holds a comma; class names are given separated by commas")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise BmcoreError(f"class {twice!r} is named twice")
    if not 2 <= len(names) <= MAX_CLASSES:
        raise BmcoreError(f"give between 2 and {MAX_CLASSES} classes; got {len(names)}")
    unknown = [v for v in found if v not in names]
    if unknown:
        raise BmcoreError(f"the file labels {int(given.isin(unknown).sum())} rows with classes that were not named "
                          f"(e.g. {unknown[0]!r}); name every class the file uses, or leave out --classes")
    return names
