"""Scoring a source whole: a file, a folder or a zip that is no prepared dataset, every row or image of it.

``evaluate --data FILE|FOLDER|ZIP`` and the Evaluate page's upload score new data as it comes, with no split carved
out of it. The model's task says how a source becomes the dataset it scores (:meth:`bmcore.tasks.base.Task.scoring_dataset`):

* text (:func:`text_dataset`): one file is scored whole (split ``all``); a folder of split files is prepared and
  scored on the split asked for (``test`` by default), as before;
* images (:func:`image_dataset`): a folder or zip of class folders, the classes mapped to the model's ``id2label``
  (a class the model does not know is refused in one line naming it). With split folders (train/, validation/,
  test/) every image is scored together (split ``all``), or only the split asked for, where the source's own train
  split trains the baseline and its validation split fits the temperature, as for a prepared dataset.

The images are read by :mod:`bmcore.images` (class folders, zips, the pixel caps and the zip-bomb checks).
:func:`save_rows` and :func:`load_rows` hand what a page read to the background scoring job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .data.columns import Columns, check_columns, detect_columns, detect_label_shape
from .data.dataset import SPLITS, PreparedDataset
from .data.label_values import encode_label_set, normalise_labels, order_labels
from .data.preparation import IMAGE_COLUMNS, prepare, standardise
from .data.readers import SPLIT_ALIASES, RawData, load_source, suggest_name
from .errors import BmcoreError
from .files import write_json_atomic
from .limits import check_local_path
from .problem_types import MULTI_LABEL, SINGLE_LABEL
from .splits import WHOLE_SOURCE

ALL = WHOLE_SOURCE  # the split that holds every row of a source scored whole
ROWS_META = "scored.json"  # next to <split>.parquet in an evaluation folder: what the page read, for the job
SHOWN_CLASSES = 10


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
    return task.scoring_dataset(raw, label_names, split=split, text_columns=text_columns, label_column=label_column,
                                seed=seed)


def _check_not_empty(source: str) -> None:
    """Refuse an empty folder in words that fit any model (the readers would ask for split files or class folders)."""
    path = Path(source).expanduser()
    check_local_path(path, "data path")  # first: no probing of the server's files where paths are turned off
    if path.is_dir() and not any(not p.name.startswith(".") for p in path.iterdir()):
        raise BmcoreError(f"folder {source} is empty: there is nothing to score")


def _split_name(split: str | None) -> str | None:
    return None if split is None else SPLIT_ALIASES.get(split.strip().lower(), split.strip())


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
        return prepare(raw, name=name, columns=cols, seed=seed), _split_name(split) or "test"
    if _split_name(split) not in (None, ALL):
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
    if cols.problem_type == MULTI_LABEL:  # label sets, stored as prepared datasets store them (JSON lists)
        names = order_labels({n for ls in std["label"] for n in ls} | set(cols.label_columns or []))
        std["label"] = [encode_label_set(ls) for ls in std["label"]]
    else:
        names = order_labels(std["label"])
    empty = std.iloc[0:0]
    notes = list(raw.notes) + ([f"dropped {dropped} rows with an empty text or label"] if dropped else [])
    return PreparedDataset(name=Path(raw.source).stem, source=raw.source, columns=cols, label_names=names,
                           splits={"train": empty, "validation": empty, ALL: std}, notes=notes,
                           problem_type=cols.problem_type)


# --- images -------------------------------------------------------------------------------------


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:SHOWN_CLASSES]) + (f", ... ({len(names)} in all)" if len(names) > SHOWN_CLASSES else "")


def check_classes(found: Sequence[str], label_names: Sequence[str], where: str) -> None:
    """Refuse, in one line naming them, class folders the model has no class for (their images would be scored
    against a label it can never predict, or dropped unseen)."""
    unknown = sorted(set(found) - set(label_names))
    if unknown:
        raise BmcoreError(f"{where} has {len(unknown)} class{'es' if len(unknown) > 1 else ''} the model does not "
                          f"know ({_listed(unknown)}); the model's classes are {_listed(list(label_names))}: rename "
                          "the class folders to those names, or leave them out")


def image_dataset(raw: RawData, label_names: Sequence[str], *,
                  split: str | None = None) -> tuple[PreparedDataset, str]:
    """An image source to score: every image (split ``all``), or the source's split folder ``split``, with the
    classes (folder names) mapped to the model's ``label_names``."""
    where = Path(raw.source).name or raw.source
    frames = {s: df.assign(label=normalise_labels(df["label"], "label")) for s, df in raw.frames.items()}
    frames = {s: df[df["label"].notna()].reset_index(drop=True) for s, df in frames.items()}
    # A built-in dataset (builtin:fashion-mnist) is a benchmark with its own test split: that is what it is scored on.
    wanted = _split_name(split) or ("test" if raw.source.startswith("builtin:") else None)
    own = [s for s in SPLITS if s in frames]  # the source's split folders, if it has them
    if wanted not in (None, ALL) and wanted not in own:
        raise BmcoreError(f"{where} has no {wanted} folder" + (f"; its splits: {', '.join(own)} (or all)" if own else
                          ": it has no split folders (train/, validation/, test/), so it is scored whole; leave out --split"))
    scored = {ALL: pd.concat(list(frames.values()), ignore_index=True)} if wanted in (None, ALL) else {wanted: frames[wanted]}
    check_classes(list(dict.fromkeys(pd.concat(list(frames.values()))["label"])), label_names, where)
    name, df = next(iter(scored.items()))
    if df.empty:
        raise BmcoreError(f"{where} has no labelled images" + (f" in its {name} folder" if name != ALL else ""))
    empty = df.iloc[0:0]
    notes = list(raw.notes)
    if name == ALL:
        sizes = ", ".join(f"{s} {len(frames[s]):,}" for s in own)
        notes.append(f"scored all {len(df):,} images of {where}" + (f", its splits together ({sizes})" if own else "")
                     + ("; --split test scores the test folder alone, next to a baseline trained on train/" if own else ""))
        splits = {"train": empty, "validation": empty, ALL: df}
    else:
        notes.append(f"scored the {name} folder of {where}: {len(df):,} images")
        splits = {"train": frames.get("train", empty), "validation": frames.get("validation", empty), name: df}
    return PreparedDataset(name=suggest_name(raw.source), source=raw.source, columns=IMAGE_COLUMNS,
                           label_names=list(label_names), splits=splits, notes=notes, modality="image"), name


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
        meta = json.loads((Path(folder) / ROWS_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def load_rows(folder: str | Path) -> tuple[PreparedDataset, str]:
    """The dataset and split :func:`save_rows` wrote into ``folder``."""
    out = Path(folder)
    try:
        meta = json.loads((out / ROWS_META).read_text(encoding="utf-8"))
        splits = {str(s): pd.read_parquet(out / f"{s}.parquet") for s in meta["splits"]}
        cols = Columns(list(meta["text_columns"]), str(meta["label_column"]), label_columns=meta.get("label_columns"),
                       label_delimiter=meta.get("label_delimiter"))
        ds = PreparedDataset(name=str(meta["name"]), source=str(meta["source"]), columns=cols,
                             label_names=[str(n) for n in meta["label_names"]], splits=splits,
                             notes=[str(n) for n in meta.get("notes") or []],
                             problem_type=str(meta.get("problem_type") or SINGLE_LABEL),
                             modality=str(meta.get("modality") or "text"))
        return ds, str(meta["split"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BmcoreError(f"the data to score in {out} is damaged ({exc.__class__.__name__}); upload it again") from exc
