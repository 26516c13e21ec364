"""Columns: which columns of a table hold the text (one, or two for pairs) and the labels, and in which shape.

Detected from names and contents (:func:`detect_columns`), or taken from the user's choices with the rest detected
(:func:`choose_columns`). The label shape is single-label (one class name per row) or multi-label in one of two
shapes: one column of delimited names or JSON lists (GoEmotions), or one 0/1 column per label (Jigsaw toxic
comments); :func:`detect_label_shape` says which, and why. The problem type follows from the shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import BmcoreError
from ..labels import LABEL_DELIMITERS
from ..problem_types import PROBLEM_TYPE_OF_SHAPE
from .label_values import as_binary, score_values, split_parts

MULTI_EVIDENCE = 0.01  # share of rows with several labels needed (with recurring parts) to read a column as multi-label
MAX_CLASSES = 500
# A label column of numbers is read as a score to predict (regression) when some are not whole numbers, or when more
# than this many whole numbers are not the ids 0..k-1 or 1..k of classes (CLINC's 150 intents are ids 0-149).
MIN_SCORE_VALUES = 50

LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment", "intent", "emotion", "topic", "y")
TEXT_NAMES = ("text", "sentence", "content", "review", "message", "body", "document", "tweet", "comment", "title")
PAIR_NAMES = (("premise", "hypothesis"), ("sentence1", "sentence2"), ("question1", "question2"),
              ("question", "sentence"), ("question", "context"), ("text_a", "text_b"), ("text", "text_pair"),
              ("query", "passage"))


@dataclass
class Columns:
    """Which columns hold the text (one, or two for pairs) and the label(s).

    Single-label: ``label`` holds one class name per row. Multi-label, either ``label_delimiter`` is set
    (``label`` holds several names split by it, or ``"json"`` for a JSON list) or ``label_columns`` names
    several 0/1 columns, one per label (``label`` is then ``""``).
    """

    text: list[str]
    label: str
    label_columns: list[str] | None = None
    label_delimiter: str | None = None
    scores: bool = False  # ``label`` holds one number per row, a score to predict

    @property
    def problem_type(self) -> str:
        """What the label shape is learnt as (:data:`bmcore.problem_types.PROBLEM_TYPE_OF_SHAPE`): single-label,
        multi-label for either multi-label shape, regression for scores."""
        return PROBLEM_TYPE_OF_SHAPE[label_shape(self)]

    def describe_labels(self) -> str:
        """The label shape in words, e.g. ``several labels per row in column 'labels', separated by ','``."""
        if self.label_columns:
            return f"several labels per row: one 0/1 column per label ({', '.join(map(repr, self.label_columns))})"
        if self.label_delimiter == "json":
            return f"several labels per row in column {self.label!r}, as JSON lists"
        if self.label_delimiter:
            return f"several labels per row in column {self.label!r}, separated by {self.label_delimiter!r}"
        if self.scores:
            return f"one score per row in column {self.label!r} (a number to predict)"
        return f"one label per row in column {self.label!r}"


# The columns of every prepared image dataset (bmcore.images reads them so): the picture, and its class.
IMAGE_COLUMNS = Columns(text=["image"], label="label")


def _text_score(s: pd.Series) -> float:
    """Mean length of the column's values when most of them look like prose, else 0."""
    vals = s.dropna().astype(str).head(2000)
    if vals.empty:
        return 0.0
    numeric = pd.to_numeric(vals, errors="coerce").notna().mean()
    if numeric > 0.5:
        return 0.0
    lengths = vals.str.len()
    spaces = vals.str.contains(r"\s", regex=True).mean()
    unique = vals.nunique() / len(vals)
    if lengths.mean() < 3 or (unique < 0.2 and lengths.mean() < 30):
        return 0.0
    return float(lengths.mean() * (0.5 + spaces) * (0.5 + unique))


def detect_columns(df: pd.DataFrame, notes: list[str] | None = None) -> Columns:
    """Guess the text column(s), the label column and the label shape (:func:`detect_label_shape`); the note
    on the shape, if any, is appended to ``notes``. Raises :class:`BmcoreError` when no column fits.
    """
    cols, note = detect_label_shape(df, _detect_text_label(df))
    if note and notes is not None:
        notes.append(note)
    return cols


def _detect_text_label(df: pd.DataFrame) -> Columns:
    """Guess the text column(s) and one label column (single-label)."""
    lower = {str(c).lower(): c for c in df.columns}
    text: list[str] = []
    for a, b in PAIR_NAMES:
        if a in lower and b in lower and _text_score(df[lower[a]]) and _text_score(df[lower[b]]):
            text = [lower[a], lower[b]]
            break
    label = next((lower[n] for n in LABEL_NAMES if n in lower and lower[n] not in text), None)
    if label is None:
        n = len(df)
        cands = [c for c in df.columns if c not in text and 1 < df[c].nunique(dropna=True) <= max(2, min(MAX_CLASSES, n // 2))]
        cands.sort(key=lambda c: (_text_score(df[c]) > 0, df[c].nunique()))
        label = cands[0] if cands else None
    if not text:
        scores = {c: _text_score(df[c]) for c in df.columns if c != label}
        named = [lower[n] for n in TEXT_NAMES if n in lower and scores.get(lower[n], 0) > 0]
        best = max(scores, key=scores.get) if scores else None  # type: ignore[arg-type]
        if best is not None and scores[best] > 0:
            # Prefer a conventionally named column unless another is clearly longer (e.g. body vs title).
            pick = named[0] if named and scores[named[0]] * 3 >= scores[best] else best
            text = [pick]
    if not text:
        raise BmcoreError(f"no text-like column found among {', '.join(map(str, df.columns))}; "
                          "the text column should hold sentences or documents")
    if label is None:
        raise BmcoreError(f"no label column found among {', '.join(map(str, df.columns))}; name it 'label' or choose it")
    return Columns(text=[str(c) for c in text], label=str(label))


def check_columns(df: pd.DataFrame, cols: Columns, name: str = "the data") -> None:
    """Refuse ``cols`` for ``df`` (``name`` says where it came from) in one line: a column missing, not one or two
    text columns, a column both text and label, one 0/1 label column, or an unknown label delimiter."""
    labels = cols.label_columns or [cols.label]
    for c in [*cols.text, *labels]:
        if c not in df.columns:
            raise BmcoreError(f"column {c!r} is missing from {name}; columns: {', '.join(map(str, df.columns))}")
    if len(cols.text) not in (1, 2):
        raise BmcoreError("choose one text column, or two for text pairs")
    both = [c for c in labels if c in cols.text]
    if both:
        raise BmcoreError(f"column {both[0]!r} cannot be both text and label")
    if cols.label_columns is not None and len(cols.label_columns) < 2:
        raise BmcoreError("give at least two 0/1 label columns (one per label); one 0/1 column is a single-label task")
    if cols.label_delimiter is not None and cols.label_delimiter not in LABEL_DELIMITERS:
        raise BmcoreError(f"label delimiter {cols.label_delimiter!r} is not one of {', '.join(LABEL_DELIMITERS)}")


def _delimiter_evidence(values: pd.Series, delimiter: str) -> tuple[int, float]:
    """Rows with several parts, and the share of those parts that also occur as a label on their own."""
    counts = values.value_counts()
    parts = {v: [p for p in split_parts(v, delimiter) if p] for v in counts.index}
    several = [v for v, ps in parts.items() if len(ps) > 1]
    if not several:
        return 0, 0.0
    alone = {ps[0] for ps in parts.values() if len(ps) == 1}
    seen = {p for v in several for p in parts[v]}
    return int(counts[several].sum()), len(seen & alone) / len(seen)


def detect_label_shape(df: pd.DataFrame, cols: Columns) -> tuple[Columns, str]:
    """The label shape of ``df`` given the text and label columns: ``cols`` made multi-label when the data is,
    and a note saying what was detected and why ("" when there is nothing to say).

    Multi-label when (a) two or more columns beside the text hold only 0/1 values, with some 1s, and the label
    column is one of them (Jigsaw toxic comments); (b) the label column holds JSON lists; or (c) splitting the
    label column on ``,`` ``;`` or ``|`` gives several parts in at least 1% of the rows *and* at least half of
    those parts are labels on their own rows, so a class named ``New York, NY`` that only occurs whole stays one label.
    """
    binary = [c for c in binary_columns(df) if c not in cols.text]
    if len(binary) >= 2 and (cols.label in binary or cols.label not in df.columns):
        return (Columns(cols.text, "", label_columns=binary),
                f"multi-label: {len(binary)} columns hold only 0/1 values, read as one label each: {', '.join(binary)}")
    if cols.label not in df.columns:
        return cols, ""
    values = df[cols.label].dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return cols, ""
    listed = values.str.startswith("[") & values.str.endswith("]")
    if listed.mean() >= 0.9:
        return (Columns(cols.text, cols.label, label_delimiter="json"),
                f"multi-label: column {cols.label!r} holds JSON lists of labels")
    best, considered = None, []
    for d in LABEL_DELIMITERS[1:]:
        rows, recur = _delimiter_evidence(values, d)
        if rows and (rows < max(2, MULTI_EVIDENCE * len(values)) or recur < 0.5):
            considered.append(d)
        elif rows and (best is None or rows > best[1]):
            best = (d, rows)
    if best is not None:
        d, rows = best
        quoted = values.str.contains('"', regex=False).any()
        return (Columns(cols.text, cols.label, label_delimiter=d),
                f"multi-label: column {cols.label!r} holds several labels separated by {d!r} "
                f"({rows / len(values):.1%} of rows have more than one)"
                + ("; parts in double quotes read whole, as in CSV" if quoted else ""))
    if considered:
        return cols, (f"column {cols.label!r} has labels containing {' '.join(map(repr, considered))} but is read as one "
                      "label per row: too few rows have several parts, or the parts are not labels on their own")
    if (why := scores_reason(values)) is not None:
        return Columns(cols.text, cols.label, scores=True), (f"regression: column {cols.label!r} holds {why}, read as a "
                                                             "score to predict; choose one label per row to read them as classes")
    return cols, ""


def scores_reason(values: pd.Series) -> str | None:
    """Why a label column's values read as scores rather than class names (None when they do not): numbers, some not
    whole, or more than :data:`MIN_SCORE_VALUES` whole numbers that are not the ids of classes."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or not np.isfinite(numbers.to_numpy(dtype=float)).all():
        return None
    distinct = np.unique(numbers.to_numpy(dtype=float))
    span = f"{len(distinct):,} distinct values from {distinct[0]:.4g} to {distinct[-1]:.4g}"
    if not np.allclose(distinct, np.round(distinct)):
        return f"numbers that are not whole ({span})"
    ids = distinct[0] in (0, 1) and distinct[-1] - distinct[0] == len(distinct) - 1
    return f"whole numbers ({span})" if len(distinct) > MIN_SCORE_VALUES and not ids else None


def label_shape(cols: Columns) -> str:
    """The shape of a :class:`Columns`' labels: ``single``, ``delimited``, ``columns`` or ``score`` (the keys of
    :data:`bmcore.report.data.LABEL_SHAPES`)."""
    return "columns" if cols.label_columns else "delimited" if cols.label_delimiter else "score" if cols.scores else "single"


def binary_columns(df: pd.DataFrame) -> list[str]:
    """Columns holding only 0/1 values, with some 1s: candidates for one-column-per-label data."""
    return [str(c) for c in df.columns if (b := as_binary(df[c])) is not None and (b == 1).any()]


def choose_columns(df: pd.DataFrame, text: list[str] | None = None, label: str | None = None, *,
                   label_columns: list[str] | None = None, label_delimiter: str | None = None,
                   single_label: bool = False, scores: bool = False) -> tuple[Columns, list[str]]:
    """Columns from the user's choices, the rest detected; and notes on what was detected.

    ``label_columns`` (several 0/1 columns) or ``label_delimiter`` (``,`` ``;`` ``|`` or ``json``) force a
    multi-label shape, ``single_label`` forces one label per row, ``scores`` one score per row (regression);
    otherwise the shape is detected.
    """
    if sum(bool(x) for x in (label_columns, label_delimiter, single_label, scores)) > 1:
        raise BmcoreError("choose one label shape: label columns, a label delimiter, single-label or scores")
    base = None if text and (label or label_columns) else _detect_text_label(df)
    cols = Columns(list(text or base.text), label or ("" if label_columns else base.label))  # type: ignore[union-attr]
    if label_columns:
        cols.label_columns = list(label_columns)
        cols.label = ""
    elif label_delimiter:
        cols.label_delimiter = label_delimiter
    cols.scores = scores
    if label_columns or label_delimiter or single_label or scores:
        check_columns(df, cols)
        if scores:
            score_values(df[cols.label], cols.label)  # numbers, or one line naming the first that is not
        return cols, [f"{'single-label' if single_label else 'regression'} (as chosen): {cols.describe_labels()}"
                      ] if single_label or scores else []
    cols, note = detect_label_shape(df, cols)
    return cols, [note] if note else []
