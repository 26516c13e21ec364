"""Resolving a source: a prepared dataset by its workspace name, or any raw source read and prepared on the fly.

What a training or scoring job calls when it is given a source it may not have seen prepared, and what the config
asks to learn a source's problem type and modality (:func:`kind_of`) without preparing anything.
"""

from __future__ import annotations

from ..files import read_json
from ..modalities import DEFAULT_MODALITY, get_modality, modality_of_source
from ..problem_types import DEFAULT_PROBLEM_TYPE
from .columns import choose_columns
from .dataset import PreparedDataset
from .preparation import prepare
from .readers import load_source, suggest_name
from .storage import DATASET_META, dataset_dir, is_prepared, load_prepared


def problem_type_of(source: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
                    label_columns: list[str] | str | None = None, label_delimiter: str | None = None) -> str:
    """The problem type of a prepared dataset (from its ``dataset.json``) or of a raw source (detected, as
    :func:`resolve_dataset` would), without preparing anything."""
    return kind_of(source, text_columns=text_columns, label_column=label_column, label_columns=label_columns,
                   label_delimiter=label_delimiter)[0]


def kind_of(source: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
            label_columns: list[str] | str | None = None, label_delimiter: str | None = None) -> tuple[str, str]:
    """``(problem_type, modality)`` of a prepared dataset or a raw source (see :func:`problem_type_of`)."""
    if is_prepared(source):
        meta = read_json(dataset_dir(source) / DATASET_META, f"prepared dataset {source!r}", "prepare it again")
        return str(meta.get("problem_type") or DEFAULT_PROBLEM_TYPE), str(meta.get("modality") or DEFAULT_MODALITY)
    if isinstance(label_columns, str):
        label_columns = [c.strip() for c in label_columns.split(",") if c.strip()]
    modality, raw = modality_of_source(source), None
    if modality is None:  # known once read (a table with an image column holds images)
        raw = load_source(source)
        modality = get_modality(raw.modality)
    return modality.detect_problem_type(raw, text_columns=text_columns, label_column=label_column,
                                        label_columns=label_columns, label_delimiter=label_delimiter), modality.name


def resolve_dataset(source: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
                    label_columns: list[str] | str | None = None, label_delimiter: str | None = None,
                    seed: int = 42, use_source_splits: bool = True, sheet: str | None = None) -> PreparedDataset:
    """A prepared dataset from a workspace name, or prepared on the fly from any source.

    ``label_columns`` (a list, or names joined by commas) and ``label_delimiter`` choose a multi-label shape
    (see :func:`~bmcore.data.columns.choose_columns`); without them the shape is detected.
    """
    if is_prepared(source):
        return load_prepared(source)
    raw = load_source(source, sheet=sheet)
    if isinstance(label_columns, str):
        label_columns = [c.strip() for c in label_columns.split(",") if c.strip()]
    cols = None
    notes: list[str] = []
    if text_columns or label_column or label_columns or label_delimiter:
        cols, notes = choose_columns(next(iter(raw.frames.values())), text_columns, label_column,
                                     label_columns=label_columns, label_delimiter=label_delimiter)
    ds = prepare(raw, name=suggest_name(source), columns=cols, use_source_splits=use_source_splits, seed=seed)
    ds.notes[len(raw.notes):len(raw.notes)] = notes
    return ds
