"""Scoring a source whole: a file, a folder or a zip that is no prepared dataset, every row or image of it.

``evaluate --data FILE|FOLDER|ZIP`` and the Evaluate page's upload score new data as it comes, with no split carved
out of it. The source's modality says how it becomes the dataset to score
(:meth:`bmcore.modalities.base.Modality.scoring_source`):

* a table of texts (:func:`text_dataset`): one file is scored whole (split ``all``); a folder of split files is
  prepared and scored on the split asked for (``test`` by default), as before;
* images (:func:`bmcore.images.datasets.image_dataset`): a folder or zip of class folders, the classes mapped to the
  model's ``id2label`` (a class the model does not know is refused in one line naming it). With split folders
  (train/, validation/, test/) every image is scored together (split ``all``), or only the split asked for, where the
  source's own train split trains the baseline and its validation split fits the temperature, as for a prepared
  dataset. The images are read by :mod:`bmcore.images` (class folders, zips, the pixel caps and the zip-bomb checks).
:func:`save_rows` and :func:`load_rows` hand what a page read to the background scoring job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .data.columns import Columns, check_columns, detect_columns, detect_label_shape
from .data.dataset import PreparedDataset
from .data.preparation import prepare, standardise
from .data.readers import RawData, canonical_split, load_source
from .errors import BmcoreError
from .files import read_json, write_json_atomic
from .limits import check_local_path
from .modalities import DEFAULT_MODALITY, get_modality
from .problem_types import DEFAULT_PROBLEM_TYPE
from .splits import WHOLE_SOURCE
from .tasks import get_task

ALL = WHOLE_SOURCE  # the split that holds every row of a source scored whole
ROWS_META = "scored.json"  # next to <split>.parquet in an evaluation folder: what the page read, for the job


def whole_dataset(source: str, task: Any, label_names: Sequence[str], *, data: bytes | None = None,
                  split: str | None = None, text_columns: list[str] | None = None, label_column: str | None = None,
                  seed: int = 42) -> tuple[PreparedDataset, str]:
    """``source`` (a path, or an upload's name with its bytes in ``data``) as the dataset to score with a model of
    ``task`` whose classes are ``label_names``, and the split to score. Refuses, in one line, data of another kind
    than the model's (images for a text model) and, for images, classes the model does not know."""
    if data is None:
        _check_not_empty(source)
    raw = load_source(source, data)
    if raw.modality != task.modality:
        raise BmcoreError(f"{Path(source).name or source} holds {raw.modality} data, but the model classifies "
                          f"{task.modality}; evaluate a{'n' if raw.modality[:1] in 'aeiou' else ''} {raw.modality} model on it")
    scored = get_modality(raw.modality).scoring_source(raw, list(label_names), split=split)
    if scored is not None:
        return scored
    return text_dataset(raw, split=split, text_columns=text_columns, label_column=label_column, seed=seed)


def _check_not_empty(source: str) -> None:
    """Refuse an empty folder in words that fit any model (the readers would ask for split files or class folders)."""
    path = Path(source).expanduser()
    check_local_path(path, "data path")  # first: no probing of the server's files where paths are turned off
    if path.is_dir() and not any(not p.name.startswith(".") for p in path.iterdir()):
        raise BmcoreError(f"folder {source} is empty: there is nothing to score")


# --- text ---------------------------------------------------------------------------------------


def text_dataset(raw: RawData, *, split: str | None = None, text_columns: list[str] | None = None,
                 label_column: str | None = None, seed: int = 42) -> tuple[PreparedDataset, str]:
    """A text source to score: a folder of split files prepared (scored on ``split``, default test), one file
    whole (split ``all``; its columns detected unless named)."""
    if raw.has_splits:
        cols = None
        if text_columns or label_column:
            guess = detect_columns(next(iter(raw.frames.values())))
            cols = Columns(list(text_columns or guess.text), label_column or guess.label)
        name = Path(raw.source).stem or "dataset"
        return prepare(raw, name=name, columns=cols, seed=seed), canonical_split(split) or "test"
    if canonical_split(split) not in (None, ALL):
        raise BmcoreError(f"{Path(raw.source).name} is one file, scored whole; leave out --split")
    return _single_file(raw, text_columns, label_column), ALL


def _single_file(raw: RawData, text_columns: list[str] | None, label_column: str | None) -> PreparedDataset:
    """A one-file source as a dataset whose only non-empty split is ``all``."""
    df = raw.frames[ALL]
    guess = detect_columns(df) if not (text_columns and label_column) else None
    if guess is not None and not (text_columns or label_column):
        cols = guess
    else:  # columns named on the command line: the label shape is still read from the data
        cols = Columns(list(text_columns or guess.text), label_column or guess.label)  # type: ignore[union-attr]
        if cols.label in df.columns:
            cols = detect_label_shape(df, cols)[0]
    check_columns(df, cols, raw.source)
    std, dropped = standardise(df, cols, raw.source)
    if std.empty:
        raise BmcoreError(f"{raw.source} has no rows with both a text and a label")
    task = get_task(cols.problem_type)  # the labels stored as prepared datasets store them (multi-label: JSON lists)
    names = task.found_labels(std["label"], cols)
    std["label"] = task.encode_found(std["label"])
    empty = std.iloc[0:0]
    notes = list(raw.notes) + ([f"dropped {dropped} rows with an empty text or label"] if dropped else [])
    return PreparedDataset(name=Path(raw.source).stem, source=raw.source, columns=cols, label_names=names,
                           splits={"train": empty, "validation": empty, ALL: std}, notes=notes,
                           problem_type=cols.problem_type)


# --- handing a page's read to the scoring job -----------------------------------------------------


def save_rows(ds: PreparedDataset, split: str, folder: str | Path) -> Path:
    """Write the dataset's splits (``<split>.parquet``; an image split is also what the Evaluate page's thumbnails
    read) and ``scored.json`` into ``folder``, for :func:`load_rows` in the scoring job."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in ds.splits.items():
        tmp = out / f".{name}.parquet.tmp"
        df.to_parquet(tmp, index=False)
        tmp.replace(out / f"{name}.parquet")
    write_json_atomic(out / ROWS_META, {"name": ds.name, "source": Path(ds.source).name, "split": split,
                                        "splits": {name: len(df) for name, df in ds.splits.items()}, "label_names": ds.label_names, "notes": ds.notes,
                                        "text_columns": ds.columns.text, "label_column": ds.columns.label,
                                        "label_delimiter": ds.columns.label_delimiter,
                                        "label_columns": ds.columns.label_columns, "problem_type": ds.problem_type,
                                        "modality": ds.modality})
    return out


def rows_meta(folder: str | Path) -> dict[str, Any]:
    """What :func:`save_rows` wrote into ``folder`` (``scored.json``: name, split, rows per split, label names,
    problem type, modality), without the rows; ``{}`` when there is none or it is damaged."""
    try:
        meta = read_json(Path(folder) / ROWS_META)
    except BmcoreError:
        return {}
    return meta if isinstance(meta, dict) else {}


def load_rows(folder: str | Path) -> tuple[PreparedDataset, str]:
    """The dataset and split :func:`save_rows` wrote into ``folder``."""
    out = Path(folder)
    try:
        meta = read_json(out / ROWS_META)
        splits = {str(s): pd.read_parquet(out / f"{s}.parquet") for s in meta["splits"]}
        cols = Columns(list(meta["text_columns"]), str(meta["label_column"]), label_columns=meta.get("label_columns"),
                       label_delimiter=meta.get("label_delimiter"))
        ds = PreparedDataset(name=str(meta["name"]), source=str(meta["source"]), columns=cols,
                             label_names=[str(n) for n in meta["label_names"]], splits=splits,
                             notes=[str(n) for n in meta.get("notes") or []],
                             problem_type=str(meta.get("problem_type") or DEFAULT_PROBLEM_TYPE),
                             modality=str(meta.get("modality") or DEFAULT_MODALITY))
        return ds, str(meta["split"])
    except (BmcoreError, OSError, ValueError, KeyError, TypeError) as exc:
        raise BmcoreError(f"the data to score in {out} is damaged ({exc.__class__.__name__}); upload it again") from exc
