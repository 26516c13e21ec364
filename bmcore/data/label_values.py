"""Label values: one cell's labels cleaned, ordered, checked and, for multi-label data, encoded.

Single-label: :func:`normalise_labels` makes each value a clean class name, :func:`order_labels` puts the names in
order, :func:`label_notices` flags names that are likely a mistake. Multi-label: a raw cell is split into names
(:func:`split_cell`, on a delimiter of :data:`bmcore.labels.LABEL_DELIMITERS` or as a JSON list), and a prepared
row's set is stored as a JSON list (:func:`encode_label_set`) and read back (:func:`label_sets`, :func:`label_matrix`).
Which column holds the labels, and in which shape, is :mod:`bmcore.data.columns`' job.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BmcoreError

BINARY_VALUES = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}
LONG_LABEL = 200  # characters; a label this long is more likely a text column than a class name
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def normalise_labels(series: pd.Series, column: str) -> pd.Series:
    """Labels as clean strings: whitespace stripped, integer-valued floats as integers.

    Raises for non-integer numbers (a score to predict, not classes: :func:`score_values`).
    """
    # Integer and float columns (Parquet, JSON) cannot hold the string names: widen them to object.
    s = series.astype(object) if pd.api.types.is_numeric_dtype(series) else series.copy()
    nonnull = s.dropna()
    if nonnull.empty:
        raise BmcoreError(f"label column {column!r} is empty")
    as_num = pd.to_numeric(nonnull.astype(str).str.strip(), errors="coerce")
    if as_num.notna().all():
        if not np.allclose(as_num, np.round(as_num)):
            example = as_num[~np.isclose(as_num, np.round(as_num))].iloc[0]
            raise BmcoreError(f"label column {column!r} holds non-integer numbers (e.g. {example:g}); "
                              "classification needs class names or integer ids: read them as scores (regression)")
        s.loc[nonnull.index] = np.round(as_num).astype(np.int64).astype(str)
    else:
        s.loc[nonnull.index] = nonnull.astype(str).str.strip()
    return s.replace("", np.nan)


def score_values(series: pd.Series, column: str) -> pd.Series:
    """A score column as floats (an empty cell stays NaN: its row is dropped); one line naming the first value that
    is not a number."""
    as_num = pd.to_numeric(series.astype(str).str.strip().replace({"": np.nan, "nan": np.nan, "None": np.nan}),
                           errors="coerce")
    bad = series[as_num.isna() & series.notna() & (series.astype(str).str.strip() != "")]
    if len(bad):
        raise BmcoreError(f"score column {column!r} holds {str(bad.iloc[0])[:40]!r} in row {int(bad.index[0]) + 1}; "
                          "a score to predict must be a number in every row")
    if not np.isfinite(as_num.dropna().to_numpy(dtype=float)).all():
        raise BmcoreError(f"score column {column!r} holds an infinite value; a score must be a finite number")
    return as_num.astype(float)


def order_labels(labels: list[str] | set[str] | pd.Series) -> list[str]:
    """Sorted label names: numerically when all are integers, else alphabetically."""
    uniq = sorted({str(v) for v in labels})
    if all(v.lstrip("-").isdigit() for v in uniq):
        return sorted(uniq, key=int)
    return uniq


def _shown(label: str) -> str:
    """A label as a quoted literal, invisible characters escaped (\\u202e, \\n), long ones cut."""
    return repr(label[:40]) + (f"... ({len(label):,} characters)" if len(label) > 40 else "")


def label_notices(label_names: list[str]) -> list[str]:
    """Warnings for labels that are accepted but likely a mistake or a trick: direction controls (U+202E...),
    only invisible characters, a line break inside, or a text-sized length."""
    checks = (
        ("labels with invisible text-direction controls (they reorder what is shown)",
         lambda n: any(ch in BIDI_CONTROLS for ch in n)),
        ("labels made only of invisible characters",
         lambda n: all(unicodedata.category(ch) in ("Cf", "Zs", "Cc") for ch in n)),
        ("labels with a line break inside", lambda n: any(ch in n for ch in "\n\r\u2028\u2029")),
        (f"labels longer than {LONG_LABEL} characters (is this really the label column?)", lambda n: len(n) > LONG_LABEL),
    )
    out = []
    for what, odd in checks:
        found = [n for n in label_names if odd(n)]
        if found:
            out.append(f"{what}: {', '.join(_shown(n) for n in found[:5])}{', ...' if len(found) > 5 else ''}")
    return out


# --- multi-label ----------------------------------------------------------------------------


def encode_label_set(names: Iterable[str]) -> str:
    """A row's labels as stored in a prepared multi-label dataset: a JSON list, e.g. ``'["anger", "joy"]'``."""
    return json.dumps(list(names), ensure_ascii=False)


def decode_label_set(value: str) -> list[str]:
    """The label names of one prepared multi-label value. Raises :class:`BmcoreError` when it is not a JSON list of strings."""
    try:
        names = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise BmcoreError(f"label value {str(value)[:60]!r} is not a JSON list of label names ({exc.__class__.__name__})") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BmcoreError(f"label value {str(value)[:60]!r} is not a JSON list of label names")
    return names


def map_unique(series: pd.Series, fn: Callable[[Any], Any]) -> list[Any]:
    """``fn`` over each distinct value once (labels repeat a lot), in row order; ``fn(None)`` for missing values."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    done = [fn(u) for u in uniques]
    missing = fn(None)
    return [done[c] if c >= 0 else missing for c in codes]


def label_sets(series: pd.Series | Sequence[Any]) -> list[list[str]]:
    """The label names of every row of a prepared multi-label ``label`` column, a Series or a list of its cells
    (JSON lists of names; see :func:`decode_label_set`)."""
    if not isinstance(series, pd.Series):
        series = pd.Series(list(series), dtype=object)
    return map_unique(series, lambda v: [] if v is None else decode_label_set(v))


def label_matrix(series: pd.Series, label_names: list[str]) -> np.ndarray:
    """A rows x labels 0/1 matrix (``int8``) of a prepared multi-label ``label`` column, columns in ``label_names`` order."""
    index = {n: j for j, n in enumerate(label_names)}
    out = np.zeros((len(series), len(label_names)), dtype=np.int8)
    for i, names in enumerate(label_sets(series)):
        out[i, [index[n] for n in names if n in index]] = 1
    return out


def _label_part(value: Any) -> str:
    """One label name from a cell part: a stripped string, integral numbers without ``.0``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BmcoreError(f"{value!r} is not a label name")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def split_parts(text: str, delimiter: str) -> list[str]:
    """A cell's parts split on ``delimiter``, stripped; a part in double quotes may hold the delimiter, as in CSV
    (``"good, fun";pos`` is ``good, fun`` and ``pos``). Unbalanced quotes: a plain split."""
    if '"' not in text:
        return [p.strip() for p in text.split(delimiter)]
    try:
        return [p.strip() for p in next(csv.reader([text], delimiter=delimiter, skipinitialspace=True, strict=True))]
    except (csv.Error, StopIteration):
        return [p.strip() for p in text.split(delimiter)]


def split_cell(value: Any, delimiter: str) -> list[str]:
    """The distinct label names in one raw cell, in the order given (``[]`` for an empty cell); ``delimiter``
    ``"json"`` reads the cell as a JSON list."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    text = str(value).strip()
    if delimiter == "json":
        if not text:
            return []
        try:
            parts = json.loads(text)
        except ValueError as exc:
            raise BmcoreError(f"{text[:60]!r} is not a JSON list of label names ({exc.__class__.__name__})") from exc
        if not isinstance(parts, list):
            raise BmcoreError(f"{text[:60]!r} is not a JSON list of label names")
        parts = [_label_part(p) for p in parts]
    else:
        parts = split_parts(text, delimiter)
    return list(dict.fromkeys(p for p in parts if p))


def as_binary(series: pd.Series) -> pd.Series | None:
    """A 0/1 column as 0/1 (missing cells stay missing), or ``None`` when some value is not 0/1."""
    mapped = series.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v))
                        else BINARY_VALUES.get(str(v).strip().lower(), -1))
    return None if (mapped == -1).any() else mapped
