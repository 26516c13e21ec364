"""The label-quality job: which datasets it works on, and scoring every row of a prepared dataset, the features and
the checks asked of the dataset's task (:meth:`bmcore.tasks.base.Task.score_label_quality`: texts through
:mod:`bmcore.quality.texts`, images through :mod:`bmcore.quality.images`), summed up and stored with the dataset
(:mod:`bmcore.quality.results`). The one module of :mod:`bmcore.quality` that asks the task registry besides
:mod:`bmcore.quality.changes`: the modules the tasks call know no task.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from ..data.dataset import FILE_ROW, SPLITS, PreparedDataset
from ..data.storage import load_prepared
from ..errors import BmcoreError
from ..tasks import get_task
from .features import DEFAULT_FOLDS, Progress
from .results import QualityResult, save_quality
from .texts import describe_model


def _quiet(done: int, total: int, message: str) -> None:
    pass


def supports(meta: dict[str, Any] | PreparedDataset) -> bool:
    """True when the label check works on a dataset (a prepared one, or its ``dataset.json``): its task says so
    (single-label texts and images)."""
    get = meta.get if isinstance(meta, dict) else lambda k, d=None: getattr(meta, k, d)
    try:
        return get_task(get("problem_type"), get("modality") or "text").label_quality
    except BmcoreError:
        return False


def check_supported(ds: PreparedDataset) -> None:
    """Refuse, in one line, a dataset the label check cannot score (several labels per row)."""
    if not supports(ds):
        try:
            kind = get_task(ds.problem_type, ds.modality).title.lower()
        except BmcoreError:
            kind = f"{ds.modality} {ds.problem_type}"
        raise BmcoreError(f"label quality works on single-label datasets (texts or images); {ds.name!r} is "
                          f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} dataset")


def quality_encoders(ds: PreparedDataset | dict[str, Any]) -> tuple[str, ...]:
    """The features the label check can use on a dataset (a prepared one or its ``dataset.json``), the default first."""
    get = ds.get if isinstance(ds, dict) else lambda k, d=None: getattr(ds, k, d)
    return get_task(get("problem_type"), get("modality") or "text").quality_encoders


def all_rows(ds: PreparedDataset) -> pd.DataFrame:
    """Every row of every split: split, row, what shows it (``text``, and for images the file name and hash, from
    the task's :meth:`input_columns`), the given label and the row in the source file where kept."""
    task = get_task(ds.problem_type, ds.modality)
    parts = []
    for split in SPLITS:
        df = ds.splits[split]
        part = task.input_columns(df).drop(columns="row", errors="ignore")
        part.insert(0, "split", split)
        part.insert(1, "row", np.arange(len(df), dtype=np.int64))
        part["given"] = df["label"].astype(str).to_numpy()
        if FILE_ROW in df:
            part[FILE_ROW] = df[FILE_ROW].to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _label_ids(ds: PreparedDataset, rows: pd.DataFrame) -> np.ndarray:
    """The rows' given labels as class ids; refused when one is not a label name or only one class occurs."""
    index = {name: i for i, name in enumerate(ds.label_names)}
    labels = rows["given"].map(index).to_numpy()
    if np.isnan(labels.astype(float)).any():
        raise BmcoreError(f"dataset {ds.name!r} has labels outside its label names; prepare it again")
    labels = labels.astype(np.int64)
    if len(np.unique(labels)) < 2:
        raise BmcoreError(f"dataset {ds.name!r} has a single class in its rows; label quality needs two or more")
    return labels


def _summarise(ds: PreparedDataset, scores: pd.DataFrame, conflicts: pd.DataFrame, labels: np.ndarray,
               extra: dict[str, Any], *, encoder: str, folds: int, seed: int, t0: float) -> dict[str, Any]:
    """A result's ``summary``: what was checked how, and the counts, overall, per split and per class (``labels``:
    the class id of each of the scored rows)."""
    issue, outlier = scores["issue"].to_numpy(dtype=bool), scores["outlier"].to_numpy(dtype=bool)
    per_class = {name: {"rows": int((labels == i).sum()), "flagged": int((issue & (labels == i)).sum()),
                        "outliers": int((outlier & (labels == i)).sum())} for i, name in enumerate(ds.label_names)}
    per_split = {s: int(scores.loc[scores["split"] == s, "issue"].sum()) for s in SPLITS}
    oof_accuracy = float((scores["suggested"] == scores["given"]).mean())
    return {"dataset": ds.name, "content_hash": ds.content_hash(), "encoder": encoder, "folds": folds, "seed": seed,
            "model": describe_model(encoder),
            "rows": len(labels), "flagged": int(issue.sum()), "flagged_per_split": per_split, "per_class": per_class,
            "conflicts": int(len(conflicts)), "outliers": int(outlier.sum()), "oof_accuracy": round(oof_accuracy, 4),
            **extra, "to_review": int(scores["review"].sum()) if "review" in scores else int(issue.sum()),
            "seconds": round(time.perf_counter() - t0, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def score_dataset(ds: PreparedDataset, *, encoder: str | None = None, folds: int = DEFAULT_FOLDS, seed: int = 0,
                  precision: str = "auto", progress: Progress | None = None) -> QualityResult:
    """Score every row of every split of ``ds`` for how likely its label is wrong (see :mod:`bmcore.quality`); the
    features and the checks come from the dataset's task (:meth:`bmcore.tasks.base.Task.score_label_quality`).

    ``encoder`` None: the task's first (:func:`quality_encoders`). ``progress(done, total, message)`` reports the
    embedding and the folds.
    """
    check_supported(ds)
    task = get_task(ds.problem_type, ds.modality)
    encoder = encoder or task.quality_encoders[0]
    if encoder not in task.quality_encoders:
        raise BmcoreError(f"the encoder {encoder!r} does not read {ds.modality} data; {ds.name!r} takes "
                          f"{' or '.join(task.quality_encoders)}")
    if not 2 <= folds <= 20:
        raise BmcoreError("folds must be between 2 and 20")
    t0 = time.perf_counter()
    rows = all_rows(ds)
    labels = _label_ids(ds, rows)
    scores, conflicts, extra = task.score_label_quality(ds, rows, labels, encoder=encoder, folds=folds, seed=seed,
                                                        precision=precision, report=progress or _quiet)
    summary = _summarise(ds, scores, conflicts, labels, extra, encoder=encoder, folds=folds, seed=seed, t0=t0)
    return QualityResult(scores, conflicts, summary)


def run_quality(name: str, *, encoder: str | None = None, folds: int = DEFAULT_FOLDS, seed: int = 0,
                precision: str = "auto", progress: Progress | None = None) -> QualityResult:
    """Score the prepared dataset ``name`` and store the result with it."""
    result = score_dataset(load_prepared(name), encoder=encoder, folds=folds, seed=seed, precision=precision,
                           progress=progress)
    save_quality(name, result)
    return result
