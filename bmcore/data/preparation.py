"""Preparing: a source as read (:class:`~bmcore.data.readers.RawData`) becomes a :class:`PreparedDataset`.

Map the columns to the standard ones, clean the labels, drop rows with an empty text or label, and split into
train/validation/test (:mod:`bmcore.data.stratify`); :func:`drop_duplicates` then drops what the stats warn about.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import BmcoreError
from ..problem_types import MULTI_LABEL
from .columns import MAX_CLASSES, Columns, check_columns, detect_columns
from .dataset import FILE_ROW, SPLITS, PreparedDataset
from .label_values import (
    BINARY_VALUES,
    as_binary,
    encode_label_set,
    map_unique,
    normalise_labels,
    order_labels,
    score_values,
    split_cell,
)
from .readers import RawData
from .stats import text_keys
from .stratify import three_splits

IMAGE_COLUMNS = Columns(text=["image"], label="label")


def _label_lists(df: pd.DataFrame, cols: Columns, where: str) -> pd.Series:
    """Each row's label names as a list; ``None`` where a 0/1 cell is missing (the row is dropped)."""
    if cols.label_columns:
        flags = {}
        for c in cols.label_columns:
            b = as_binary(df[c])
            if b is None:
                bad = next(v for v in df[c] if BINARY_VALUES.get(str(v).strip().lower()) is None and not pd.isna(v))
                raise BmcoreError(f"label column {c!r} of {where} holds {str(bad)[:40]!r}; each label column must hold only 0 or 1")
            flags[c] = b
        mat = pd.DataFrame(flags).to_numpy(dtype=float)
        names = np.array(cols.label_columns, dtype=object)
        return pd.Series([None if np.isnan(r).any() else names[r == 1].tolist() for r in mat], index=df.index, dtype=object)
    d = str(cols.label_delimiter)

    def parse(v: Any) -> list[str]:
        try:
            return split_cell(v, d)
        except BmcoreError as exc:
            row = int(np.flatnonzero((df[cols.label] == v).to_numpy())[0])
            raise BmcoreError(f"label column {cols.label!r} of {where}, row {row + 1}: {exc}") from None

    return pd.Series(map_unique(df[cols.label], parse), index=df.index, dtype=object)


def standardise(df: pd.DataFrame, cols: Columns, where: str,
                file_rows: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """Standard columns, and each row's number in its file (``file_rows``, by default 1, 2, ...) as
    :data:`~bmcore.data.dataset.FILE_ROW`; multi-label rows get a list of names (encoded once the label order is
    known). Returns the rows kept (those with a text and a label) and how many were dropped."""
    out = pd.DataFrame({"text": df[cols.text[0]]})
    if len(cols.text) == 2:
        out["text_pair"] = df[cols.text[1]]
    if cols.problem_type == MULTI_LABEL:
        out["label"] = _label_lists(df, cols, where)
    elif cols.scores:
        out["label"] = score_values(df[cols.label], cols.label).to_numpy()
    else:
        out["label"] = normalise_labels(df[cols.label], cols.label)
    for c in [c for c in ("text", "text_pair") if c in out]:
        out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    keep = out["label"].notna() & out["text"].notna() & (out["text"].str.strip().str.len() > 0)
    if "text_pair" in out:
        keep &= out["text_pair"].notna() & (out["text_pair"].str.strip().str.len() > 0)
    out[FILE_ROW] = np.arange(1, len(out) + 1) if file_rows is None else np.asarray(file_rows, dtype=np.int64)
    return out[keep].reset_index(drop=True), int((~keep).sum())


def prepare(raw: RawData, name: str = "dataset", columns: Columns | None = None, *, use_source_splits: bool = True,
            ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42) -> PreparedDataset:
    """Map columns, clean labels, drop empty texts and split into train/validation/test.

    The source's own splits are used when it has them and ``use_source_splits`` is true;
    missing validation or test splits are carved, stratified, out of train. Otherwise all
    rows are split with ``ratios`` and ``seed``. The test split is meant to be scored once.

    Without ``columns`` the columns and the label shape are detected (:func:`~bmcore.data.columns.detect_label_shape`;
    a note says what was found). Multi-label rows become JSON lists (:func:`~bmcore.data.label_values.encode_label_set`)
    and the splits are made by iterative stratification (Sechidis et al. 2011), which keeps each label's share close
    in every split.
    """
    if len(ratios) != 3 or min(ratios) <= 0 or abs(sum(ratios) - 1) > 1e-6:
        raise BmcoreError("split ratios must be three positive numbers that sum to 1, e.g. 0.8 0.1 0.1")
    frames = raw.frames if (use_source_splits and raw.has_splits) else {"all": raw.combined()}
    if raw.modality == "image":
        return _prepare_images(raw, frames, name, ratios, seed)
    # Each row's number in its own file (the combined frame is the files one after the other).
    file_rows = {s: np.arange(1, len(df) + 1) for s, df in frames.items()} if frames is raw.frames else {
        "all": np.concatenate([np.arange(1, len(df) + 1) for df in raw.frames.values()])}
    first = next(iter(frames.values()))
    notes = list(raw.notes)
    cols = columns or detect_columns(first, notes)
    multi = cols.problem_type == MULTI_LABEL
    std: dict[str, pd.DataFrame] = {}
    dropped: dict[str, int] = {}
    for split, df in frames.items():
        where = f"the {split} split" if split != "all" else raw.source
        check_columns(df, cols, where)
        std[split], dropped[split] = standardise(df, cols, where, file_rows[split])
        if dropped[split]:
            notes.append(f"dropped {dropped[split]} {split} rows with an empty text or label")
    label_names = SCORE_NAMES if cols.scores else _label_names(std, cols, multi)
    if cols.scores:
        _check_scores(std, cols.label)
        bins = score_bins(pd.concat([d["label"] for d in std.values()]))
        for df in std.values():
            df[SCORE_BIN] = bins(df["label"])
    if multi:
        rank = {n: i for i, n in enumerate(label_names)}
        for df in std.values():
            df["label"] = [encode_label_set(sorted(names, key=rank.__getitem__)) for names in df["label"]]
    strata = label_names if multi else None
    _note_case_clashes(label_names, notes)
    splits = three_splits(std, ratios, seed, strata, notes, key=SCORE_BIN if cols.scores else "label")
    splits = {s: df.drop(columns=SCORE_BIN, errors="ignore") for s, df in splits.items()}
    return PreparedDataset(name=name, source=raw.source, columns=cols, label_names=label_names, splits=splits,
                           notes=notes, dropped_empty=dropped, problem_type=cols.problem_type)


SCORE_NAMES = ["score"]  # a score dataset's one output, as the regression task names it
SCORE_BIN = "_score_bin"  # a temporary column: the splits of scores are stratified on their quantile range
SCORE_BINS = 5


def score_bins(scores: pd.Series) -> Any:
    """A function giving each score its quantile range (of :data:`SCORE_BINS`) among ``scores``, so every split holds
    low, middle and high scores alike."""
    edges = np.unique(np.quantile(scores.to_numpy(dtype=float), np.linspace(0, 1, SCORE_BINS + 1)[1:-1]))
    return lambda s: np.searchsorted(edges, s.to_numpy(dtype=float), side="right").astype(str)


def _check_scores(std: dict[str, pd.DataFrame], column: str) -> None:
    """Refuse, in one line, scores a model cannot learn: none, or one value only."""
    scores = pd.concat([d["label"] for d in std.values()])
    if scores.empty:
        raise BmcoreError(f"score column {column!r} is empty or every text is empty")
    if scores.nunique() < 2:
        raise BmcoreError(f"every score in column {column!r} is {scores.iloc[0]:g}; regression needs scores that vary")


def _label_names(std: dict[str, pd.DataFrame], cols: Columns, multi: bool) -> list[str]:
    """The label names of the standardised splits, in order; refused when there are fewer than two or more than
    :data:`~bmcore.data.columns.MAX_CLASSES`."""
    labels_all = pd.concat([d["label"] for d in std.values()])
    what = "label columns " + ", ".join(map(repr, cols.label_columns)) if cols.label_columns else f"column {cols.label!r}"
    if labels_all.empty:
        raise BmcoreError(f"{what if cols.label_columns else 'label ' + what} is empty or every text is empty")
    label_names = order_labels({n for names in labels_all for n in names} | set(cols.label_columns or [])
                               if multi else labels_all)
    if len(label_names) < 2:
        raise BmcoreError(f"only one class ({label_names[0]!r}) in {what}; classification needs at least two"
                          if label_names else f"{what} holds no label at all")
    if len(label_names) > MAX_CLASSES:
        raise BmcoreError(f"{what} has {len(label_names)} classes (more than {MAX_CLASSES}); is it really the label column?")
    return label_names


def _note_case_clashes(label_names: list[str], notes: list[str]) -> None:
    """A note naming the labels that differ only in case (``Spam`` / ``spam``), if any."""
    folded: dict[str, list[str]] = {}
    for n in label_names:
        folded.setdefault(n.casefold(), []).append(n)
    clashes = [v for v in folded.values() if len(v) > 1]
    if clashes:
        notes.append("labels that differ only in case: " + "; ".join(" / ".join(v) for v in clashes))


def _prepare_images(raw: RawData, frames: dict[str, pd.DataFrame], name: str, ratios: tuple[float, float, float],
                    seed: int) -> PreparedDataset:
    """An image source's frames (already decoded by :mod:`bmcore.images`) split and labelled as text is."""
    notes = list(raw.notes)
    std = {}
    for split, df in frames.items():
        df = df.assign(label=normalise_labels(df["label"], "label"))
        std[split] = df[df["label"].notna()].reset_index(drop=True)
    labels_all = pd.concat([d["label"] for d in std.values()])
    if labels_all.empty:
        raise BmcoreError(f"{raw.source} has no labelled images")
    label_names = order_labels(labels_all)
    if len(label_names) < 2:
        raise BmcoreError(f"only one class ({label_names[0]!r}) in {raw.source}; classification needs at least two")
    if len(label_names) > MAX_CLASSES:
        raise BmcoreError(f"{raw.source} has {len(label_names)} classes (more than {MAX_CLASSES}); is each folder a class?")
    splits = three_splits(std, ratios, seed, None, notes)
    return PreparedDataset(name=name, source=raw.source, columns=IMAGE_COLUMNS, label_names=label_names,
                           splits=splits, notes=notes, modality="image")


def drop_duplicates(ds: PreparedDataset) -> dict[str, int]:
    """Drop what :func:`~bmcore.data.stats.compute_stats` warns about, and say so in ``ds.notes``; returns the rows
    dropped per split.

    Within each split a repeated text keeps its first row. A train text that is also in validation or
    test, and a validation text that is also in test, leaves train or validation: test is what the model
    is scored on, so it keeps its rows. Compute the stats after this.
    """
    keys = {s: text_keys(ds.splits[s]) for s in SPLITS}
    later = {"train": ("validation", "test"), "validation": ("test",), "test": ()}
    dropped: dict[str, int] = {}
    parts: list[str] = []
    for split in SPLITS:
        repeated = keys[split].duplicated()
        shared = keys[split].isin(set().union(*(set(keys[o]) for o in later[split]))) & ~repeated
        drop = (repeated | shared).to_numpy()
        ds.splits[split] = ds.splits[split][~drop].reset_index(drop=True)
        dropped[split] = int(drop.sum())
        if repeated.any():
            parts.append(f"{int(repeated.sum())} repeated in {split}")
        if shared.any():
            parts.append(f"{int(shared.sum())} {split} texts also in {' or '.join(later[split])}")
    if parts:
        ds.notes.append(f"dropped {sum(dropped.values())} duplicate rows: " + ", ".join(parts))
    return dropped
