"""Preparing: a source as read (:class:`~bmcore.data.readers.RawData`) becomes a :class:`PreparedDataset`.

Map the columns to the standard ones, clean the labels, drop rows with an empty text or label, and split into
train/validation/test (:mod:`bmcore.data.stratify`); :func:`drop_duplicates` then drops what the stats warn about.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BmcoreError
from ..modalities import get_modality
from ..tasks import get_task
from .columns import Columns, check_columns, detect_columns
from .dataset import FILE_ROW, SPLITS, PreparedDataset
from .readers import RawData
from .stats import text_keys
from .stratify import three_splits


def standardise(df: pd.DataFrame, cols: Columns, where: str,
                file_rows: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """Standard columns, and each row's number in its file (``file_rows``, by default 1, 2, ...) as
    :data:`~bmcore.data.dataset.FILE_ROW`. The task of the label shape reads the labels
    (:meth:`bmcore.tasks.base.Task.read_labels`: multi-label rows get a list of names, encoded once the label order
    is known). Returns the rows kept (those with a text and a label) and how many were dropped."""
    out = pd.DataFrame({"text": df[cols.text[0]]})
    if len(cols.text) == 2:
        out["text_pair"] = df[cols.text[1]]
    out["label"] = get_task(cols.problem_type).read_labels(df, cols, where)
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
    a note says what was found). The task of that shape names, stores and stratifies the labels
    (:meth:`bmcore.tasks.base.Task.prepared_labels`: multi-label rows become JSON lists split by iterative
    stratification, scores are stratified on their range); the modality prepares a source that has no columns to map
    (:meth:`bmcore.modalities.base.Modality.prepare_source`: images).
    """
    if len(ratios) != 3 or min(ratios) <= 0 or abs(sum(ratios) - 1) > 1e-6:
        raise BmcoreError("split ratios must be three positive numbers that sum to 1, e.g. 0.8 0.1 0.1")
    frames = raw.frames if (use_source_splits and raw.has_splits) else {"all": raw.combined()}
    own = get_modality(raw.modality).prepare_source(raw, frames, name, ratios, seed)
    if own is not None:  # images: classes from their folders, no columns to map
        return own
    # Each row's number in its own file (the combined frame is the files one after the other).
    file_rows = {s: np.arange(1, len(df) + 1) for s, df in frames.items()} if frames is raw.frames else {
        "all": np.concatenate([np.arange(1, len(df) + 1) for df in raw.frames.values()])}
    first = next(iter(frames.values()))
    notes = list(raw.notes)
    cols = columns or detect_columns(first, notes)
    task = get_task(cols.problem_type)
    std: dict[str, pd.DataFrame] = {}
    dropped: dict[str, int] = {}
    for split, df in frames.items():
        where = f"the {split} split" if split != "all" else raw.source
        check_columns(df, cols, where)
        std[split], dropped[split] = standardise(df, cols, where, file_rows[split])
        if dropped[split]:
            notes.append(f"dropped {dropped[split]} {split} rows with an empty text or label")
    label_names, strata, key = task.prepared_labels(std, cols)
    _note_case_clashes(label_names, notes)
    splits = three_splits(std, ratios, seed, strata, notes, key=key)
    if key != "label":  # a column the task added to stratify on
        splits = {s: df.drop(columns=key, errors="ignore") for s, df in splits.items()}
    return PreparedDataset(name=name, source=raw.source, columns=cols, label_names=label_names, splits=splits,
                           notes=notes, dropped_empty=dropped, problem_type=cols.problem_type)


def _note_case_clashes(label_names: list[str], notes: list[str]) -> None:
    """A note naming the labels that differ only in case (``Spam`` / ``spam``), if any."""
    folded: dict[str, list[str]] = {}
    for n in label_names:
        folded.setdefault(n.casefold(), []).append(n)
    clashes = [v for v in folded.values() if len(v) > 1]
    if clashes:
        notes.append("labels that differ only in case: " + "; ".join(" / ".join(v) for v in clashes))


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
