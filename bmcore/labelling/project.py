"""A labelling project: ``<workspace>/labelling/NAME/`` with the texts, the classes and every label as it was given.

* ``texts.parquet`` - ``row`` (the row id, from 0), ``text`` and ``file_row`` (its row in the uploaded file);
* ``project.json`` - the classes in order, the source, the columns read, the number of rows, when it was created;
* ``labels.jsonl`` - append-only, one line per label as given: ``row``, ``label`` (null clears it), ``time``, and
  ``from`` (``file`` for the labels the upload brought, else ``user``). A later line for the same row wins. Each
  write is one ``write`` call (lines never interleave), flushed and fsynced before it returns: a closed browser or a
  killed server loses no label given.

What the loop writes beside them (``picks.json``, ``curve.jsonl``) is :mod:`bmcore.labelling.step`'s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BmcoreError
from ..files import append_json_lines, read_json, read_json_lines, write_json_atomic
from ..workspace import check_name, inside, labelling_dir
from .sources import choose_classes, read_labelling_texts

PROJECT_FILE = "project.json"
TEXTS_FILE = "texts.parquet"
LABELS_FILE = "labels.jsonl"


@dataclass
class Project:
    """A labelling project as stored: its classes in order, its texts (``row``, ``text``, ``file_row``), its
    ``project.json``."""

    name: str
    folder: Path
    classes: list[str]
    texts: pd.DataFrame
    meta: dict[str, Any]

    @property
    def rows(self) -> int:
        """How many texts there are to label."""
        return len(self.texts)


def project_dir(name: str) -> Path:
    """The folder of the labelling project ``name`` (the name checked for safety; the folder may not exist)."""
    return inside(labelling_dir(), check_name(name, "project name"))


def _meta(name: str) -> dict[str, Any]:
    folder = project_dir(name)
    if not (folder / PROJECT_FILE).is_file():
        raise BmcoreError(f"no labelling project named {name!r}; start one with: python -m bmcore label new {name} "
                          "--file FILE --classes A,B")
    meta = read_json(folder / PROJECT_FILE, f"labelling project {name!r}")
    classes, rows = meta.get("classes"), meta.get("rows")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or not isinstance(rows, int):
        raise BmcoreError(f"project.json of labelling project {name!r} is damaged: no list of classes or no row count")
    return meta


def create_project(name: str, source: str, text_column: str | None = None, label_column: str | None = None,
                   classes: list[str] | str | None = None, *, data: bytes | None = None,
                   sheet: str | None = None) -> Project:
    """Start the labelling project ``name`` on the texts of ``source`` (a file path, or the upload's name with its
    bytes in ``data``: CSV, TSV, JSON, JSONL, Parquet, Excel, or a ``.txt`` of one text per line).

    ``classes`` (a list, or names joined by commas) in the order shown; without them, the labels of ``label_column``.
    The labels ``label_column`` gives for some rows are recorded as the project's first labels. An existing project
    is never replaced.
    """
    folder = project_dir(name)
    if folder.exists():
        raise BmcoreError(f"a labelling project named {name!r} already exists; choose another name")
    frame, notes = read_labelling_texts(source, data, text_column, label_column, sheet)
    names = choose_classes(classes, frame["given"])
    meta = {"name": name, "classes": names, "source": Path(source).name if data is not None else str(source),
            "text_column": text_column, "label_column": label_column, "rows": len(frame), "notes": notes,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=labelling_dir()))
    try:
        texts = pd.DataFrame({"row": range(len(frame)), "text": frame["text"], "file_row": frame["file_row"]})
        texts.to_parquet(tmp / TEXTS_FILE, index=False)
        write_json_atomic(tmp / PROJECT_FILE, meta)
        (tmp / LABELS_FILE).touch()
        given = frame["given"]
        append_json_lines(tmp / LABELS_FILE, [_record(int(r), str(v), "file") for r, v in given.dropna().items()])
        os.rename(tmp, folder)  # fails when a project of that name appeared meanwhile: never replaced
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if folder.exists():
            raise BmcoreError(f"a labelling project named {name!r} already exists; choose another name") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_project(name)


def load_project(name: str) -> Project:
    """The labelling project ``name`` as stored; a missing or damaged one is a one-line :class:`BmcoreError`."""
    meta = _meta(name)
    folder = project_dir(name)
    try:
        texts = pd.read_parquet(folder / TEXTS_FILE)
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"the texts of labelling project {name!r} are damaged ({exc.__class__.__name__})") from exc
    if list(texts.columns[:2]) != ["row", "text"] or len(texts) != meta["rows"]:
        raise BmcoreError(f"the texts of labelling project {name!r} do not match its project.json")
    return Project(name=name, folder=folder, classes=list(meta["classes"]), texts=texts, meta=meta)


def list_projects() -> list[dict[str, Any]]:
    """Every labelling project in the workspace, newest first: ``name``, ``classes``, ``rows``, ``labelled``,
    ``created``. Damaged ones are left out."""
    out = []
    for folder in labelling_dir().iterdir():
        if folder.name.startswith(".") or not (folder / PROJECT_FILE).is_file():
            continue
        try:
            meta = _meta(folder.name)
            given = labels(folder.name)
        except BmcoreError:
            continue
        out.append({"name": folder.name, "classes": meta["classes"], "rows": meta["rows"], "labelled": len(given),
                    "created": str(meta.get("created", ""))})
    return sorted(out, key=lambda m: m["created"], reverse=True)


def _record(row: int, label: str | None, source: str = "user") -> dict[str, Any]:
    return {"row": row, "label": label, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "from": source}


def _check_row(name: str, meta: dict[str, Any], row: Any) -> int:
    try:
        number = int(row)
    except (TypeError, ValueError):
        raise BmcoreError(f"row {row!r} is not a row number") from None
    if isinstance(row, float) and row != number or not 0 <= number < meta["rows"]:
        raise BmcoreError(f"row {row} is outside labelling project {name!r} (rows 0 to {meta['rows'] - 1})")
    return number


def give_labels(name: str, given: Mapping[Any, str | None]) -> int:
    """Record labels for several rows at once (``{row: label}``; a label of None or "" clears the row's label);
    every row and label is checked before anything is written. Returns how many were recorded."""
    meta = _meta(name)
    lines = []
    for row, label in given.items():
        number = _check_row(name, meta, row)
        label = None if label is None or str(label) == "" else str(label)
        if label is not None and label not in meta["classes"]:
            raise BmcoreError(f"{label!r} is not a class of labelling project {name!r}; one of "
                              f"{', '.join(meta['classes'])}")
        lines.append(_record(number, label))
    append_json_lines(project_dir(name) / LABELS_FILE, lines)
    return len(lines)


def give_label(name: str, row: int, label: str | None) -> None:
    """Record ``label`` for ``row`` of the project (None or "" clears it): checked, then saved before returning."""
    give_labels(name, {row: label})


def clear_label(name: str, row: int) -> None:
    """Clear the label of ``row`` (a line with a null label: the history is kept)."""
    give_labels(name, {row: None})


def label_history(name: str) -> list[dict[str, Any]]:
    """Every line of ``labels.jsonl`` in order (``row``, ``label``, ``time``, ``from``); a half-written last line is
    skipped, a damaged line or one outside the project is a one-line :class:`BmcoreError`."""
    meta = _meta(name)

    def problem(record: Any) -> str | None:
        label = record.get("label") if isinstance(record, dict) else 0
        good = (isinstance(record, dict) and isinstance(record.get("row"), int)
                and 0 <= record["row"] < meta["rows"] and (label is None or label in meta["classes"]))
        return None if good else "is no label of this project"

    return read_json_lines(project_dir(name) / LABELS_FILE, f"labels.jsonl of {name!r}", problem)


def labels(name: str) -> dict[int, str]:
    """The current label of each labelled row, ``{row: label}``: the last line for a row wins, a cleared row is
    left out."""
    current: dict[int, str | None] = {}
    for record in label_history(name):
        current[record["row"]] = record["label"]
    return {row: label for row, label in sorted(current.items()) if label is not None}


def counts(name: str) -> dict[str, int]:
    """Labelled rows per class, in the project's class order."""
    given = list(labels(name).values())
    return {c: given.count(c) for c in _meta(name)["classes"]}
