"""Evaluation: score a split with a model, next to the baseline, with calibration fitted on the validation split.

:func:`evaluate_model` is the whole job: score a split, let the model's task compute its metrics (fitting a
temperature or thresholds on the validation split), train the baseline on the train split, and write the
evaluation (:mod:`bmcore.evaluation_files`, which :func:`~bmcore.evaluation_files.load_eval` reads back for the
Evaluate page). Comparing two runs is :mod:`bmcore.compare`; the page's tables and charts, :mod:`bmcore.report`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import BmcoreError
from .evaluation_files import EvalResult, save_eval
from .files import read_json
from .inference import load_for_inference
from .metrics import DEFAULT_BINS
from .modalities import get_modality
from .model_meta import write_model_meta
from .models import load_config, resolve_model
from .tasks import get_task, task_of_model

Progress = Callable[[int, int], None]


# --- predictions --------------------------------------------------------------------------


def _classifier(classifier_or_ref: Any, max_seq_length: int | None = None) -> Any:
    if hasattr(classifier_or_ref, "predict_proba") and hasattr(classifier_or_ref, "label_names"):
        return classifier_or_ref
    if isinstance(classifier_or_ref, os.PathLike):
        classifier_or_ref = str(classifier_or_ref)  # resolve_model takes a string; the training job passes a Path
    return load_for_inference(classifier_or_ref, max_seq_length=max_seq_length)


def check_labels(model_labels: Sequence[str], data_labels: Sequence[str]) -> None:
    """Raise a one-line :class:`BmcoreError` unless the model's labels cover every dataset label."""
    missing = [n for n in data_labels if n not in set(model_labels)]
    if missing:
        shown = ", ".join(map(str, list(model_labels)[:10])) + (", ..." if len(model_labels) > 10 else "")
        data = ", ".join(map(str, list(data_labels)[:10])) + (", ..." if len(data_labels) > 10 else "")
        raise BmcoreError(f"model labels [{shown}] do not match dataset labels [{data}]; "
                          "evaluate a model fine-tuned on this dataset (its id2label must name the same classes)")


def _logits(clf: Any, df: pd.DataFrame, progress: Progress | None = None, batch_size: int = 64) -> tuple[np.ndarray, Any]:
    """The model's logits [n, labels] for a split, in the model's label order, and the prediction (truncation flags)."""
    pred = clf.predict_frame(df, batch_size=batch_size, progress=progress)
    return np.asarray(pred.logits, dtype=np.float64), pred


def _predict(clf: Any, df: pd.DataFrame, label_names: Sequence[str], progress: Progress | None = None,
             batch_size: int = 64) -> tuple[pd.DataFrame, np.ndarray]:
    """The single-label prediction table and the raw logits [n, classes] in the model's label order."""
    model_labels = list(clf.label_names)
    if "label" in df:  # gold labels outside label_names would be a damaged dataset; name them in the same message
        check_labels(model_labels, list(dict.fromkeys([*map(str, label_names), *sorted(set(df["label"].astype(str)))])))
    logits, pred = _logits(clf, df, progress, batch_size)
    return prediction_table(df, logits, model_labels, truncated=pred.truncated), logits


def prediction_table(df: pd.DataFrame, logits_or_probs: np.ndarray, label_names: Sequence[str], *,
                     truncated: np.ndarray | None = None, are_probs: bool = False) -> pd.DataFrame:
    """The single-label prediction table of a split from the model's logits (or probabilities with ``are_probs``),
    built by the task (:meth:`bmcore.tasks.base.Task.prediction_frame`).

    Columns: text, (text_pair), gold, pred, ``prob_<label>`` per class, confidence,
    loss (per-example cross-entropy in nats), correct, truncated.
    """
    task = get_task()
    probs = np.asarray(logits_or_probs, dtype=np.float64) if are_probs else task.scores(logits_or_probs)
    return task.prediction_frame(df, probs, label_names, truncated=truncated)


def predict_split(classifier_or_ref: Any, df: pd.DataFrame, label_names: Sequence[str],
                  progress: Progress | None = None, *, batch_size: int = 64) -> pd.DataFrame:
    """Score one split with a classifier (or a model reference) and return the prediction table.

    Inference is batched, sorted by length with dynamic padding, in the detected precision
    (see :meth:`bmcore.inference.Classifier.predict_proba`); ``progress(done, total)`` is
    called after each batch. Raises :class:`BmcoreError` when the model's ``id2label``
    does not name every dataset label. Probabilities are uncalibrated.
    """
    table, _ = _predict(_classifier(classifier_or_ref), df, label_names, progress, batch_size)
    return table


def model_label_names(model_ref: str | Path) -> list[str]:
    """The class names of a model from its ``id2label``, without loading its weights.

    Lets a page refuse a model/dataset pair with :func:`check_labels` before scoring anything.
    """
    mref = resolve_model(str(model_ref))
    config = None
    if mref.path is not None:
        try:
            config = read_json(mref.path / "config.json")
        except BmcoreError:
            config = None
    id2label = (config or {}).get("id2label") if config is not None else dict(load_config(mref).id2label)
    if not id2label:
        raise BmcoreError(f"model {model_ref} has no id2label; evaluate a fine-tuned classifier (a run's model folder)")
    return [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]


# --- the whole evaluation -------------------------------------------------------------------


def _offset(progress: Progress | None, start: int, total: int) -> Progress | None:
    if progress is None:
        return None
    return lambda done, _n: progress(start + done, total)


def _split_to_score(dataset: Any, split: str) -> pd.DataFrame:
    """The rows of ``split``, or a one-line error when the dataset has no such split or it is empty."""
    if split not in dataset.splits:
        raise BmcoreError(f"dataset {dataset.name!r} has no split {split!r}; choose one of {', '.join(dataset.splits)}")
    df = dataset.splits[split]
    if len(df) == 0:
        raise BmcoreError(f"the {split} split of {dataset.name!r} is empty; choose another split")
    return df


def _check_model_fits(clf: Any, task: Any, dataset: Any) -> list[str]:
    """The model's label names, after refusing a dataset whose labels or kind of problem the model does not share."""
    label_names = list(clf.label_names)
    check_labels(label_names, list(dataset.label_names))
    data_type = getattr(dataset, "problem_type", None) or get_task().problem_type
    if data_type != task.problem_type:
        raise BmcoreError(f"the model was trained for {task.problem_type} but dataset {dataset.name!r} is "
                          f"{data_type} data; evaluate a model fine-tuned on data like this")
    return label_names


def _keep_fitted(clf: Any, fitted: dict[str, Any], metrics: dict[str, Any], notes: list[str], *, split: str,
                 save: bool) -> None:
    """Note what was fitted on the scored split itself, and with ``save`` write it into a local model folder's
    ``bmcore.json`` (where prediction picks it up), else say why it was not saved."""
    if any(v is not None for v in fitted.values()) and split == "validation":
        notes.append("fitted on the scored split itself (validation), so these numbers are optimistic")
    if fitted and save:
        path = getattr(clf.ref, "path", None)
        if getattr(clf.ref, "kind", "") == "local" and path is not None:
            write_model_meta(path, **fitted)
            clf.meta.update(fitted)
            (metrics.get("calibration") or {})["saved"] = True
        else:
            notes.append("what was fitted was not saved: only a local model folder can hold it")


def _baseline(task: Any, train: pd.DataFrame | None, df: pd.DataFrame, label_names: list[str], notes: list[str], *,
              wanted: bool, seed: int, n_bins: int) -> dict[str, Any] | None:
    """The task's baseline trained on ``train`` and scored on ``df``; None (with a note) without a train split."""
    if wanted and train is not None and len(train) > 0:
        return task.baseline(train, df, label_names, seed=seed, n_bins=n_bins)
    if wanted:
        notes.append("no train split: the baseline was skipped (give --baseline-train)")
    return None


def _facts(clf: Any, task: Any, model_ref: Any, dataset: Any, split: str, table: pd.DataFrame, seconds: float,
           n: int, notes: list[str]) -> dict[str, Any]:
    """What an evaluation records besides its scores: the model, the data, the precision, how the inputs were read
    (``max_seq_length``, and what the modality adds: images, their size), the speed, the time, the notes."""
    return dict(model=str(getattr(clf.ref, "ref", model_ref)), dataset=getattr(dataset, "name", ""), split=split,
                precision=getattr(clf, "precision", None), max_seq_length=getattr(clf, "max_seq_length", None),
                truncated=int(table["truncated"].sum()), seconds=round(seconds, 3),
                examples_per_second=round(n / seconds, 1) if seconds > 0 else None,
                created=time.strftime("%Y-%m-%dT%H:%M:%S"), notes=notes,
                **get_modality(task.modality).evaluation_facts(getattr(clf, "processor", None)))


def evaluate_model(model_ref: Any, dataset: Any, split: str = "test", out_dir: str | Path | None = None, *,
                   fit_calibration: bool = True, save_temperature: bool = False, baseline: bool = True,
                   baseline_train: pd.DataFrame | None = None, progress: Progress | None = None,
                   batch_size: int = 64, max_seq_length: int | None = None, n_bins: int = DEFAULT_BINS,
                   seed: int = 0, notes: Sequence[str] = ()) -> EvalResult:
    """Evaluate a model on one split of a prepared dataset, next to the TF-IDF baseline.

    * Scores ``split`` (``progress(done, total)`` counts the validation rows too when
      calibration is fitted).
    * Fits temperature scaling on the validation split when it has rows and
      ``fit_calibration`` is true, kept only where it helps on validation rows it was not
      fitted on (the task decides, e.g. :func:`bmcore.tasks.single_label_classification.decide_temperature`);
      with ``save_temperature`` the outcome is written into a local model folder's
      ``bmcore.json``, where prediction picks it up: the temperature, or none and why
      (``temperature_reason``). Without fitting, a temperature already saved with the
      model is used for the calibrated numbers.
    * Trains the baseline on the train split (or ``baseline_train``); skipped with a note
      when there is none.
    * With ``out_dir``, writes ``metrics.json`` and ``predictions.csv`` there.
    * ``notes``: lines on how the data was read (a source scored whole, :mod:`bmcore.scoring`), first in the notes.
    """
    df = _split_to_score(dataset, split)
    clf = _classifier(model_ref, max_seq_length)
    task = task_of_model(clf.model)
    label_names = _check_model_fits(clf, task, dataset)
    notes = list(notes)
    val = dataset.splits.get("validation")
    do_fit = fit_calibration and val is not None and len(val) > 0
    total = len(df) + (len(val) if do_fit else 0)
    t0 = time.perf_counter()
    task.gold(df, label_names)  # a gold label the model does not know is a one-line error before any scoring
    logits, pred = _logits(clf, df, _offset(progress, 0, total), batch_size)
    seconds = time.perf_counter() - t0

    def validation() -> tuple[pd.DataFrame, np.ndarray]:
        return val, _logits(clf, val, _offset(progress, len(df), total), batch_size)[0]

    table, metrics, fitted, task_notes = task.evaluate(df, logits, label_names, dict(clf.meta), truncated=pred.truncated,
                                                       validation=validation if do_fit else None, fit=fit_calibration,
                                                       n_bins=n_bins)
    notes.extend(task_notes)
    _keep_fitted(clf, fitted, metrics, notes, split=split, save=save_temperature)
    train = baseline_train if baseline_train is not None else dataset.splits.get("train")
    metrics["baseline"] = _baseline(task, train, df, label_names, notes, wanted=baseline, seed=seed, n_bins=n_bins)
    metrics.update(_facts(clf, task, model_ref, dataset, split, table, seconds, len(df), notes))
    result = EvalResult(metrics, table, Path(out_dir) if out_dir is not None else None, logits)
    if out_dir is not None:
        save_eval(result, out_dir)
    return result
