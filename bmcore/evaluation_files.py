"""Saved evaluations: where an evaluation of a model on a dataset's split is kept, writing it, reading it back, and
whether it is still fresh.

An evaluation folder holds ``metrics.json`` (the metrics, the baseline, calibration, notes), ``predictions.parquet``
(the raw prediction rows, what the Evaluate page reads) and ``predictions.csv`` (the same rows for people, with cells a
spreadsheet would run as formulas neutralised). :func:`bmcore.evaluate.evaluate_model` writes one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .display import csv_frame
from .errors import BmcoreError
from .files import atomic_path, named_os_error, read_json, write_json_atomic
from .metrics import check_scores
from .runs import CONFIG_FILE, EVALUATION_DIR, MODEL_DIR, is_run_dir
from .tasks import get_task
from .workspace import workspace_dir

EVAL_METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"  # for people: spreadsheet-safe cells (a leading ' before =, +, -, @)
RAW_PREDICTIONS_FILE = "predictions.parquet"  # for programs and the Evaluate page: the raw values
EVALUATIONS_DIR = "evaluations"  # <workspace>/evaluations/<model-key>-<dataset>-<split>/ for models outside runs


@dataclass
class EvalResult:
    """An evaluation: the JSON-ready metrics and one prediction row per example."""

    metrics: dict[str, Any]
    predictions: pd.DataFrame
    out_dir: Path | None = None
    logits: np.ndarray | None = field(default=None, repr=False)  # [n, classes], not saved

    @property
    def label_names(self) -> list[str]:
        """Class (or label) names in the model's order."""
        if "confusion_matrix" in self.metrics:
            return list(self.metrics["confusion_matrix"]["labels"])
        return list(self.metrics.get("label_names") or self.metrics["label_confusion"]["labels"])

    @property
    def problem_type(self) -> str:
        """What was scored, by Hugging Face's ``problem_type`` name (single-label when the metrics do not say)."""
        return str(self.metrics.get("problem_type") or get_task().problem_type)


# --- writing and reading one -------------------------------------------------------------------


def save_eval(result: EvalResult, out_dir: str | Path) -> Path:
    """Write ``metrics.json``, ``predictions.csv`` and ``predictions.parquet`` into ``out_dir`` (each atomically).

    The CSV is for people: cells that a spreadsheet would run as formulas are neutralised
    (:func:`bmcore.display.csv_frame`). The Parquet file keeps the raw values, and is what
    :func:`load_eval` reads back. The CSV is written last, so its modification time dates the evaluation.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / EVAL_METRICS_FILE, result.metrics, default=_json_default)
    for name, write in ((RAW_PREDICTIONS_FILE, lambda tmp: result.predictions.to_parquet(tmp, index=False)),
                        (PREDICTIONS_FILE, lambda tmp: csv_frame(result.predictions).to_csv(tmp, index=False))):
        try:
            with atomic_path(out / name) as tmp:
                write(tmp)
        except OSError as exc:  # a full disk: the error names the file
            raise named_os_error(exc, out / name) from exc
    result.out_dir = out
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_eval(out_dir: str | Path) -> EvalResult:
    """Read an evaluation back from ``metrics.json`` and its predictions (cache it by path and mtime).

    The predictions come from the raw ``predictions.parquet``; an evaluation saved before that file
    existed has only ``predictions.csv``, whose cells were then written raw too.
    """
    out = Path(out_dir)
    mpath, ppath = out / EVAL_METRICS_FILE, out / PREDICTIONS_FILE
    if not mpath.is_file() or not ppath.is_file():
        raise BmcoreError(f"{out} has no {EVAL_METRICS_FILE} and {PREDICTIONS_FILE}; run the evaluation first")
    metrics = read_json(mpath, f"{EVAL_METRICS_FILE} of the evaluation in {out}", "run it again")
    try:
        preds = read_predictions(out)
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"the evaluation in {out} is damaged ({exc.__class__.__name__}); run it again") from exc
    metrics = check_scores(metrics, f"{EVAL_METRICS_FILE} of the evaluation in {out}")  # legacy key names upgraded
    for col in ("correct", "truncated"):
        if col in preds and preds[col].dtype != bool:
            preds[col] = preds[col].astype(str).str.lower() == "true"
    return EvalResult(metrics, preds, out)


def read_predictions(out_dir: str | Path) -> pd.DataFrame:
    """The raw prediction rows of a saved evaluation (``predictions.parquet``, else an older raw ``predictions.csv``)."""
    out = Path(out_dir)
    if (out / RAW_PREDICTIONS_FILE).is_file():
        return pd.read_parquet(out / RAW_PREDICTIONS_FILE)
    # Text and labels stay strings ("NA", "0" and "1" are texts and class names, not missing values or numbers).
    return pd.read_csv(out / PREDICTIONS_FILE, dtype={"text": str, "text_pair": str, "gold": str, "pred": str},
                       keep_default_na=False)


# --- where one is kept, and whether it is fresh ----------------------------------------------------


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")[:40] or "x"


def evaluation_dir(model_dir: str | Path, dataset: str, split: str, run_dataset: str | None = None) -> Path:
    """Where the evaluation of a model folder on ``dataset``/``split`` is kept, so a rerun is instant.

    A run's model (``<run>/model``) keeps its evaluations in the run: its own test split in
    ``<run>/evaluation/test`` (what the training job writes), others in
    ``<run>/evaluation/<dataset>-<split>``. Any other folder uses
    ``<workspace>/evaluations/<folder-name>-<path-hash>-<dataset>-<split>``.
    """
    model = Path(model_dir).expanduser().resolve()
    if model.name == MODEL_DIR and is_run_dir(model.parent):
        run = model.parent
        if run_dataset is None:
            try:
                run_dataset = str(read_json(run / CONFIG_FILE).get("dataset", ""))
            except BmcoreError:
                run_dataset = ""
        name = split if (dataset == run_dataset and split == "test") else f"{_slug(dataset)}-{_slug(split)}"
        return run / EVALUATION_DIR / name
    digest = hashlib.sha1(str(model).encode("utf-8")).hexdigest()[:8]
    return workspace_dir() / EVALUATIONS_DIR / f"{_slug(model.name)}-{digest}-{_slug(dataset)}-{_slug(split)}"


def evaluation_mtime(out_dir: str | Path) -> float | None:
    """The newer modification time of ``metrics.json`` and ``predictions.csv``; None unless both exist."""
    out = Path(out_dir)
    try:
        return max((out / EVAL_METRICS_FILE).stat().st_mtime, (out / PREDICTIONS_FILE).stat().st_mtime)
    except OSError:
        return None


def is_fresh(out_dir: str | Path, model_dir: str | Path | None = None, dataset_dir: str | Path | None = None) -> bool:
    """True when a saved evaluation exists and is newer than the model's and the dataset's files.

    A model retrained into the same folder, or a dataset prepared again under the same
    name, makes the saved evaluation stale, so it is scored again rather than shown wrong.
    """
    mtime = evaluation_mtime(out_dir)
    if mtime is None:
        return False
    for folder in (model_dir, dataset_dir):
        if folder is None or not Path(folder).is_dir():
            continue
        # The model card (README.md) is written after the evaluation and changes no prediction.
        newest = max((p.stat().st_mtime for p in Path(folder).iterdir() if p.is_file() and p.name != "README.md"),
                     default=0.0)
        if newest > mtime:
            return False
    return True


def find_evaluation(run_dir: str | Path, dataset: str, split: str) -> Path | None:
    """A run's saved evaluation of ``dataset``/``split`` (its own test results or another), or None."""
    out = evaluation_dir(Path(run_dir) / MODEL_DIR, dataset, split)
    if evaluation_mtime(out) is None:
        return None
    try:
        meta = read_json(out / EVAL_METRICS_FILE)
    except BmcoreError:
        return None
    return out if meta.get("dataset") in (dataset, "", None) and meta.get("split", split) == split else None
