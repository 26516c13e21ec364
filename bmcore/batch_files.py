"""Files of many inputs for one prediction batch: what the Playground's batch tabs and ``predict --file`` read.

* :func:`read_batch`: texts (and text pairs) from a ``.txt`` file or a table, with :func:`read_batch_labels`, the gold
  labels a table may carry (a multi-label cell is a set: :func:`gold_label_set`);
* :func:`batch_scores`: a batch's predictions scored against those gold labels;
* :func:`read_image_batch`: the images of an uploaded zip, read in memory after the dataset reader's checks.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data.columns import LABEL_NAMES, PAIR_NAMES, TEXT_NAMES
from .data.label_values import decode_label_set, normalise_labels
from .data.tables import read_table
from .errors import BmcoreError
from .images.codec import total_pixels
from .images.sources import zip_members
from .labels import LABEL_DELIMITERS
from .metrics import compute_metrics, multi_label_metrics, regression_metrics


def read_batch(name: str, data: bytes) -> tuple[list[str], list[str] | None]:
    """Texts (and text pairs) from an uploaded file: ``.txt`` is one text per line; a table needs a text column.

    Columns are found as the ``predict`` CLI finds them (``text``/``sentence``..., a pair
    such as ``premise``/``hypothesis``, or a single column).
    """
    if Path(name).suffix.lower() in ("", ".txt"):
        lines = data.decode("utf-8", errors="replace").splitlines()
        return [line for line in lines if line.strip()], None
    df, _ = read_table(name, data=data)
    lower = {str(c).lower(): c for c in df.columns}
    for a, b in PAIR_NAMES:
        if a in lower and b in lower:
            return df[lower[a]].fillna("").astype(str).tolist(), df[lower[b]].fillna("").astype(str).tolist()
    column = next((lower[n] for n in TEXT_NAMES if n in lower), None)
    if column is None and len(df.columns) == 1:
        column = df.columns[0]
    if column is None:
        raise BmcoreError(f"{name} has no text column among {', '.join(map(str, df.columns))}; name it 'text'")
    return df[column].fillna("").astype(str).tolist(), None


def read_batch_labels(name: str, data: bytes) -> list[str | None] | None:
    """The gold labels of an uploaded batch table, one per text of :func:`read_batch` (None where a row has none),
    or None when the file has no label column (``label``, ``class``, ``category``... as the Data page finds it)."""
    if Path(name).suffix.lower() in ("", ".txt"):
        return None
    df, _ = read_table(name, data=data)
    lower = {str(c).lower(): c for c in df.columns}
    column = next((lower[n] for n in LABEL_NAMES if n in lower), None)
    if column is None:
        return None
    try:
        labels = normalise_labels(df[column], str(column))
    except BmcoreError:  # numbers with decimals (gold scores, for a regression model), or an empty column
        labels = df[column].map(lambda v: None if pd.isna(v) else str(v).strip())
    return [v if isinstance(v, str) and v else None for v in labels]


def gold_label_set(value: str) -> list[str]:
    """The label names of one gold cell of a multi-label batch file: a JSON list (``["anger", "joy"]``), or names
    separated by ``,``, ``;`` or ``|`` (the first of these the cell holds)."""
    value = str(value).strip()
    if value.startswith("["):
        return decode_label_set(value)
    sep = next((d for d in LABEL_DELIMITERS if d != "json" and d in value), None)
    parts = value.split(sep) if sep else [value]
    return [p.strip() for p in parts if p.strip()]


def _multi_label_batch_scores(gold: Sequence[str | None], records: Sequence[dict[str, Any]],
                              label_names: Sequence[str]) -> dict[str, Any]:
    rows = [(gold_label_set(g), r["labels"]) for g, r in zip(gold, records, strict=True) if g is not None]
    unknown = sorted({n for g, _ in rows for n in g} - set(label_names))
    if unknown or not rows:
        return {"n": 0, "unknown": unknown}
    index = {n: j for j, n in enumerate(label_names)}
    y, p = np.zeros((len(rows), len(index)), dtype=np.int64), np.zeros((len(rows), len(index)), dtype=np.int64)
    for i, (g, pred) in enumerate(rows):
        y[i, [index[n] for n in g]] = 1
        p[i, [index[n] for n in pred]] = 1
    m = multi_label_metrics(y, p, None, list(label_names))
    return {"n": m["n"], "subset_accuracy": m["subset_accuracy"], "micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"],
            "unknown": []}


def _score_batch_scores(gold: Sequence[str | None], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for g, r in zip(gold, records, strict=True):
        try:
            value = float(g) if g is not None else None
        except ValueError:
            value = None  # not a number: no gold score for this row
        if value is not None and np.isfinite(value):
            rows.append((value, float(r["score"])))
    if not rows:
        return {"n": 0, "unknown": []}
    m = regression_metrics([g for g, _ in rows], [p for _, p in rows])
    return {"n": m["n"], "pearson": m["pearson"], "rmse": m["rmse"], "mae": m["mae"], "unknown": []}


def batch_scores(gold: Sequence[str | None], records: Sequence[dict[str, Any]], label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro F1 of batch predictions against gold labels; rows without a gold label are left out.

    Returns ``n``, ``accuracy`` and ``macro_f1``, or ``unknown`` (the gold labels that are not classes of the
    model, then no scores: the file's labels do not match the model's) with ``n`` 0 when nothing can be scored.
    For a multi-label model (records with ``labels``) each gold cell is a set (:func:`gold_label_set`), and
    ``subset_accuracy`` (the whole set right), ``micro_f1`` and ``macro_f1`` are given. For a regression model
    (records with ``score``) each gold cell is a number (cells that are not are left out): ``pearson``, ``rmse``, ``mae``.
    """
    if records and "labels" in records[0]:
        return _multi_label_batch_scores(gold, records, label_names)
    if records and "score" in records[0]:
        return _score_batch_scores(gold, records)
    pairs = [(g, r["label"]) for g, r in zip(gold, records, strict=True) if g is not None]
    unknown = sorted({g for g, _ in pairs} - set(label_names))
    if unknown or not pairs:
        return {"n": 0, "unknown": unknown}
    m = compute_metrics([g for g, _ in pairs], [p for _, p in pairs], None, list(label_names))
    return {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "unknown": []}


BATCH_IMAGES_MAX = 1000  # images in one Playground batch zip: predictions for more belong to `bmcore evaluate`


def read_image_batch(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """The image files of an uploaded zip as (path inside the zip, bytes), in path order; read in memory (nothing is
    extracted) after the dataset reader's checks: no unsafe paths or links, a cap on the unpacked size, and on the
    pixels of all the images together (``BMCORE_MAX_TOTAL_PIXELS``, from their headers). The bytes stay encoded:
    :func:`bmcore.inference.predict_images` decodes them a batch at a time."""
    if not data:
        raise BmcoreError(f"{name} is empty (0 bytes)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BmcoreError(f"{name} is not a readable zip file; give a .zip of images") from None
    with zf:
        members = sorted(zip_members(zf, name), key=lambda i: i.filename)
        if not members:
            raise BmcoreError(f"{name} holds no image files (.png, .jpg, ...)")
        if len(members) > BATCH_IMAGES_MAX:
            raise BmcoreError(f"{name} holds {len(members):,} images; the Playground takes at most {BATCH_IMAGES_MAX:,} "
                              "at once (evaluate a prepared dataset for more)")
        try:
            total_pixels(name, ((i.filename, lambda i=i: zf.open(i)) for i in members))  # headers: nothing decoded
            return [(i.filename, zf.read(i)) for i in members]
        except BmcoreError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
            raise BmcoreError(f"{name} cannot be unpacked ({exc.__class__.__name__}); the zip is damaged") from None
