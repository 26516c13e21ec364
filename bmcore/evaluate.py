"""Evaluation and error analysis: predictions over a split, metrics, calibration, baseline, run comparison.

:func:`evaluate_model` is the whole job: score a split, compute scikit-learn metrics,
fit temperature scaling on the validation split, train the TF-IDF baseline on the
train split and write ``metrics.json`` plus ``predictions.csv``. :func:`load_eval`
reads them back for the Evaluate page, which only draws what these functions return.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from .data.label_values import label_matrix, label_sets
from .display import csv_frame
from .errors import BmcoreError
from .files import write_json_atomic
from .metrics import DEFAULT_BINS, check_scores, compute_metrics, multi_label_metrics
from .tasks import MULTI_LABEL, SINGLE_LABEL, get_task, task_of_model
from .tasks.single_label_classification import PROB_PREFIX
from .tasks.single_label_classification import prediction_table as _table

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"  # for people: spreadsheet-safe cells (a leading ' before =, +, -, @)
RAW_PREDICTIONS_FILE = "predictions.parquet"  # for programs and the Evaluate page: the raw values

Progress = Callable[[int, int], None]


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
        return str(self.metrics.get("problem_type") or SINGLE_LABEL)

    @property
    def multi_label(self) -> bool:
        """True for a multi-label evaluation (gold and pred are JSON lists of names)."""
        return self.problem_type == MULTI_LABEL


# --- predictions --------------------------------------------------------------------------


def _classifier(classifier_or_ref: Any, max_seq_length: int | None = None) -> Any:
    from .inference import load_for_inference

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
    """The single-label prediction table of a split from the model's logits (or probabilities with ``are_probs``).

    Columns: text, (text_pair), gold, pred, ``prob_<label>`` per class, confidence,
    loss (per-example cross-entropy in nats), correct, truncated.
    """
    probs = np.asarray(logits_or_probs, dtype=np.float64) if are_probs else get_task().scores(logits_or_probs)
    return _table(df, probs, label_names, truncated=truncated)


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


def probs_of(predictions: pd.DataFrame, label_names: Sequence[str]) -> np.ndarray:
    """The [n, classes] probability matrix of a prediction table, in ``label_names`` order."""
    cols = [f"{PROB_PREFIX}{n}" for n in label_names]
    missing = [c for c in cols if c not in predictions]
    if missing:
        raise BmcoreError(f"the predictions have no column {missing[0]}; were they made for these labels?")
    return predictions[cols].to_numpy(dtype=np.float64)


# --- metrics ------------------------------------------------------------------------------


def roc_pr_curves(predictions: pd.DataFrame, label_names: Sequence[str], max_points: int = 200) -> dict[str, Any]:
    """One-vs-rest ROC and precision-recall curves per class, thinned to ``max_points`` for plotting.

    Returns ``{label: {"roc": {"fpr", "tpr", "auc"}, "pr": {"recall", "precision", "ap"}}}``
    for each class with both positive and negative gold examples (binary: the second class).
    """
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    names = list(label_names)
    probs = probs_of(predictions, names)
    gold = predictions["gold"].astype(str).to_numpy()
    out: dict[str, Any] = {}
    for i in ([1] if len(names) == 2 else range(len(names))):
        onehot = (gold == names[i]).astype(int)
        if not 0 < onehot.sum() < len(onehot):
            continue
        fpr, tpr, _ = roc_curve(onehot, probs[:, i])
        prec, rec, _ = precision_recall_curve(onehot, probs[:, i])
        out[names[i]] = {"roc": {"fpr": _thin(fpr, max_points), "tpr": _thin(tpr, max_points), "auc": float(auc(fpr, tpr))},
                         "pr": {"recall": _thin(rec, max_points), "precision": _thin(prec, max_points),
                                "ap": float(average_precision_score(onehot, probs[:, i]))}}
    return out


def _thin(x: np.ndarray, m: int) -> list[float]:
    if len(x) <= m:
        return [float(v) for v in x]
    idx = np.unique(np.linspace(0, len(x) - 1, m).round().astype(int))
    return [float(v) for v in x[idx]]


# --- comparing two runs ---------------------------------------------------------------------


def _check_same_split(pred_a: pd.DataFrame, pred_b: pd.DataFrame) -> np.ndarray:
    """The gold column of two prediction tables of the same split (same rows, same order), else a one-line error."""
    if len(pred_a) != len(pred_b):
        raise BmcoreError(f"the two runs scored different splits ({len(pred_a)} vs {len(pred_b)} rows); compare the same split")
    gold_a = pred_a["gold"].astype(str).to_numpy()
    gold_b = pred_b["gold"].astype(str).to_numpy()
    same_text = (pred_a["text"].astype(str).to_numpy() == pred_b["text"].astype(str).to_numpy()).all()
    if not (gold_a == gold_b).all() or not same_text:
        raise BmcoreError("the two prediction tables are not the same split (texts or gold labels differ); compare the same split")
    return gold_a


def _flips(pred_a: pd.DataFrame, pred_b: pd.DataFrame, right_a: np.ndarray, right_b: np.ndarray) -> dict[str, Any]:
    """The examples whose verdict flipped between a and b: text, gold, pred_a, pred_b and both confidences."""
    cols = ["text"] + (["text_pair"] if "text_pair" in pred_a else [])
    flips = pd.DataFrame({c: pred_a[c].to_numpy() for c in cols})
    flips["gold"] = pred_a["gold"].astype(str).to_numpy()
    flips["pred_a"] = pred_a["pred"].astype(str).to_numpy()
    flips["pred_b"] = pred_b["pred"].astype(str).to_numpy()
    flips["confidence_a"] = pred_a["confidence"].to_numpy() if "confidence" in pred_a else np.nan
    flips["confidence_b"] = pred_b["confidence"].to_numpy() if "confidence" in pred_b else np.nan
    flips.index = pred_a.index
    r2w = flips[right_a & ~right_b]
    w2r = flips[~right_a & right_b]
    return {"right_to_wrong": r2w, "wrong_to_right": w2r, "num_right_to_wrong": int(len(r2w)),
            "num_wrong_to_right": int(len(w2r))}


def _f1_diffs(ma: dict[str, Any], mb: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {n: {"f1_a": ma["per_class"][n]["f1"], "f1_b": mb["per_class"][n]["f1"],
                "f1_diff": mb["per_class"][n]["f1"] - ma["per_class"][n]["f1"],
                "support": ma["per_class"][n]["support"]} for n in names}


def compare_runs(pred_a: pd.DataFrame, pred_b: pd.DataFrame, label_names: Sequence[str]) -> dict[str, Any]:
    """Compare two prediction tables of the same split (same rows, same order).

    Returns accuracy and macro F1 of each, per-class F1 of a and b with the difference
    (b - a), the confusion-matrix difference (b - a, labels kept in order), and the
    examples whose prediction flipped as DataFrames: ``right_to_wrong`` (a right, b
    wrong) and ``wrong_to_right``, with text, gold, pred_a, pred_b and both confidences.
    Multi-label tables: :func:`compare_multi_label_runs`.
    """
    names = [str(n) for n in label_names]
    gold = _check_same_split(pred_a, pred_b)
    ma = compute_metrics(gold, pred_a["pred"].astype(str).tolist(), None, names)
    mb = compute_metrics(gold, pred_b["pred"].astype(str).tolist(), None, names)
    cm_diff = (np.array(mb["confusion_matrix"]["matrix"]) - np.array(ma["confusion_matrix"]["matrix"])).astype(int)
    right_a = pred_a["pred"].astype(str).to_numpy() == gold
    right_b = pred_b["pred"].astype(str).to_numpy() == gold
    return {
        "n": int(len(pred_a)),
        "accuracy_a": ma["accuracy"], "accuracy_b": mb["accuracy"], "accuracy_diff": mb["accuracy"] - ma["accuracy"],
        "macro_f1_a": ma["macro_f1"], "macro_f1_b": mb["macro_f1"], "macro_f1_diff": mb["macro_f1"] - ma["macro_f1"],
        "per_class": _f1_diffs(ma, mb, names),
        "confusion_diff": {"labels": names, "matrix": cm_diff.tolist()},
        **_flips(pred_a, pred_b, right_a, right_b),
    }


def compare_multi_label_runs(pred_a: pd.DataFrame, pred_b: pd.DataFrame, label_names: Sequence[str]) -> dict[str, Any]:
    """Compare two multi-label prediction tables of the same split (gold and pred are JSON lists of names).

    Returns macro and micro F1 and subset accuracy of each (``_a``, ``_b``, ``_diff`` = b - a), per-label F1 of
    a and b with the difference, and the examples whose label set went from exactly right to wrong
    (``right_to_wrong``) and back (``wrong_to_right``), as :func:`compare_runs` does.
    """
    names = [str(n) for n in label_names]
    gold = label_matrix(pd.Series(_check_same_split(pred_a, pred_b)), names)
    ma = multi_label_metrics(gold, label_matrix(pred_a["pred"], names), None, names)
    mb = multi_label_metrics(gold, label_matrix(pred_b["pred"], names), None, names)
    out: dict[str, Any] = {"n": int(len(pred_a))}
    for key in ("macro_f1", "micro_f1", "subset_accuracy"):
        out[f"{key}_a"], out[f"{key}_b"], out[f"{key}_diff"] = ma[key], mb[key], mb[key] - ma[key]
    right_a = (label_matrix(pred_a["pred"], names) == gold).all(axis=1)
    right_b = (label_matrix(pred_b["pred"], names) == gold).all(axis=1)
    return {**out, "per_class": _f1_diffs(ma, mb, names), **_flips(pred_a, pred_b, right_a, right_b)}


# --- the whole evaluation -------------------------------------------------------------------


def _offset(progress: Progress | None, start: int, total: int) -> Progress | None:
    if progress is None:
        return None
    return lambda done, _n: progress(start + done, total)


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
    from .model_meta import write_model_meta

    if split not in dataset.splits:
        raise BmcoreError(f"dataset {dataset.name!r} has no split {split!r}; choose one of {', '.join(dataset.splits)}")
    df = dataset.splits[split]
    if len(df) == 0:
        raise BmcoreError(f"the {split} split of {dataset.name!r} is empty; choose another split")
    clf = _classifier(model_ref, max_seq_length)
    task = task_of_model(clf.model)
    label_names = list(clf.label_names)
    check_labels(label_names, list(dataset.label_names))
    data_type = getattr(dataset, "problem_type", None) or "single_label_classification"
    if data_type != task.problem_type:
        raise BmcoreError(f"the model was trained for {task.problem_type} but dataset {dataset.name!r} is "
                          f"{data_type} data; evaluate a model fine-tuned on data like this")
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
    if any(v is not None for v in fitted.values()) and split == "validation":
        notes.append("fitted on the scored split itself (validation), so these numbers are optimistic")
    if fitted and save_temperature:
        path = getattr(clf.ref, "path", None)
        if getattr(clf.ref, "kind", "") == "local" and path is not None:
            write_model_meta(path, **fitted)
            clf.meta.update(fitted)
            (metrics.get("calibration") or {})["saved"] = True
        else:
            notes.append("what was fitted was not saved: only a local model folder can hold it")

    train = baseline_train if baseline_train is not None else dataset.splits.get("train")
    metrics["baseline"] = None
    if baseline and train is not None and len(train) > 0:
        metrics["baseline"] = task.baseline(train, df, label_names, seed=seed, n_bins=n_bins)
    elif baseline:
        notes.append("no train split: the baseline was skipped (give --baseline-train)")

    metrics.update(model=str(getattr(clf.ref, "ref", model_ref)), dataset=getattr(dataset, "name", ""), split=split,
                   precision=getattr(clf, "precision", None), max_seq_length=getattr(clf, "max_seq_length", None),
                   truncated=int(table["truncated"].sum()), seconds=round(seconds, 3),
                   examples_per_second=round(len(df) / seconds, 1) if seconds > 0 else None,
                   created=time.strftime("%Y-%m-%dT%H:%M:%S"), notes=notes)
    if task.modality == "image":  # the side the images were resized to, where texts have max_seq_length
        from .modalities.image import processor_size

        metrics["image_size"] = processor_size(clf.processor)
    result = EvalResult(metrics, table, Path(out_dir) if out_dir is not None else None, logits)
    if out_dir is not None:
        save_eval(result, out_dir)
    return result


def save_eval(result: EvalResult, out_dir: str | Path) -> Path:
    """Write ``metrics.json``, ``predictions.csv`` and ``predictions.parquet`` into ``out_dir`` (each atomically).

    The CSV is for people: cells that a spreadsheet would run as formulas are neutralised
    (:func:`bmcore.display.csv_frame`). The Parquet file keeps the raw values, and is what
    :func:`load_eval` reads back. The CSV is written last, so its modification time dates the evaluation.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / METRICS_FILE, result.metrics, default=_json_default)
    tmp = out / f".{RAW_PREDICTIONS_FILE}.tmp"
    result.predictions.to_parquet(tmp, index=False)
    os.replace(tmp, out / RAW_PREDICTIONS_FILE)
    tmp = out / f".{PREDICTIONS_FILE}.tmp"
    csv_frame(result.predictions).to_csv(tmp, index=False)
    os.replace(tmp, out / PREDICTIONS_FILE)
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
    mpath, ppath = out / METRICS_FILE, out / PREDICTIONS_FILE
    if not mpath.is_file() or not ppath.is_file():
        raise BmcoreError(f"{out} has no {METRICS_FILE} and {PREDICTIONS_FILE}; run the evaluation first")
    try:
        metrics = json.loads(mpath.read_text(encoding="utf-8"))
        preds = read_predictions(out)
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"the evaluation in {out} is damaged ({exc.__class__.__name__}); run it again") from exc
    if not isinstance(metrics, dict):
        raise BmcoreError(f"the evaluation in {out} is damaged ({METRICS_FILE} is not a JSON object); run it again")
    metrics = check_scores(metrics, f"{METRICS_FILE} of the evaluation in {out}")  # legacy key names upgraded
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


# --- shaping results for the Evaluate page --------------------------------------------------

EVALUATIONS_DIR = "evaluations"  # <workspace>/evaluations/<model-key>-<dataset>-<split>/ for models outside runs
SORTS = {  # error-browser orderings: label -> (column, descending)
    "highest loss first": ("loss", True),
    "lowest loss first": ("loss", False),
    "most confident first": ("confidence", True),
    "least confident first": ("confidence", False),
}
EXAMPLE_COLUMNS = ("text", "text_pair", "gold", "pred", "confidence", "loss", "errors")  # errors: multi-label only
NO_LABELS = "(no label)"  # how an empty multi-label set reads
LABEL_CELLS = {  # a label's 2x2 confusion cells: key -> (name, gold has the label, predicted has it)
    "fn": ("false negatives", True, False), "fp": ("false positives", False, True),
    "tp": ("true positives", True, True), "tn": ("true negatives", False, False),
}


def model_label_names(model_ref: str | Path) -> list[str]:
    """The class names of a model from its ``id2label``, without loading its weights.

    Lets a page refuse a model/dataset pair with :func:`check_labels` before scoring anything.
    """
    from .models import load_config, resolve_model

    mref = resolve_model(str(model_ref))
    config = None
    if mref.path is not None:
        try:
            config = json.loads((mref.path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None
    id2label = (config or {}).get("id2label") if config is not None else dict(load_config(mref).id2label)
    if not id2label:
        raise BmcoreError(f"model {model_ref} has no id2label; evaluate a fine-tuned classifier (a run's model folder)")
    return [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")[:40] or "x"


def evaluation_dir(model_dir: str | Path, dataset: str, split: str, run_dataset: str | None = None) -> Path:
    """Where the evaluation of a model folder on ``dataset``/``split`` is kept, so a rerun is instant.

    A run's model (``<run>/model``) keeps its evaluations in the run: its own test split in
    ``<run>/evaluation/test`` (what the training job writes), others in
    ``<run>/evaluation/<dataset>-<split>``. Any other folder uses
    ``<workspace>/evaluations/<folder-name>-<path-hash>-<dataset>-<split>``.
    """
    import hashlib

    from .runs import EVALUATION_DIR, MODEL_DIR, is_run_dir
    from .workspace import workspace_dir

    model = Path(model_dir).expanduser().resolve()
    if model.name == MODEL_DIR and is_run_dir(model.parent):
        run = model.parent
        if run_dataset is None:
            try:
                run_dataset = str(json.loads((run / "config.json").read_text(encoding="utf-8")).get("dataset", ""))
            except (OSError, ValueError):
                run_dataset = ""
        name = split if (dataset == run_dataset and split == "test") else f"{_slug(dataset)}-{_slug(split)}"
        return run / EVALUATION_DIR / name
    digest = hashlib.sha1(str(model).encode("utf-8")).hexdigest()[:8]
    return workspace_dir() / EVALUATIONS_DIR / f"{_slug(model.name)}-{digest}-{_slug(dataset)}-{_slug(split)}"


def evaluation_mtime(out_dir: str | Path) -> float | None:
    """The newer modification time of ``metrics.json`` and ``predictions.csv``; None unless both exist."""
    out = Path(out_dir)
    try:
        return max((out / METRICS_FILE).stat().st_mtime, (out / PREDICTIONS_FILE).stat().st_mtime)
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
    from .runs import MODEL_DIR

    out = evaluation_dir(Path(run_dir) / MODEL_DIR, dataset, split)
    if evaluation_mtime(out) is None:
        return None
    try:
        meta = json.loads((out / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return out if meta.get("dataset") in (dataset, "", None) and meta.get("split", split) == split else None


def normalize_confusion(matrix: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Row-normalise a confusion matrix (rows gold): each cell is the share of that gold class; empty rows stay 0."""
    cm = np.asarray(matrix, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


def _example_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in EXAMPLE_COLUMNS if c in df]


def cell_examples(predictions: pd.DataFrame, gold: str, pred: str) -> pd.DataFrame:
    """The examples behind one confusion-matrix cell (gold ``gold``, predicted ``pred``), most confident first.

    Keeps the original row index, so a row can be traced back to ``predictions.csv``.
    """
    rows = predictions[(predictions["gold"].astype(str) == str(gold)) & (predictions["pred"].astype(str) == str(pred))]
    return rows.sort_values("confidence", ascending=False, kind="stable")[_example_columns(predictions)]


def filter_predictions(predictions: pd.DataFrame, *, errors_only: bool = True, gold: Sequence[str] | None = None,
                       pred: Sequence[str] | None = None, sort: str = "highest loss first",
                       multi_label: bool = False) -> pd.DataFrame:
    """The error browser's rows: misclassified (or all) examples, filtered by gold and predicted labels, sorted.

    ``gold``/``pred`` are lists of class names to keep (empty or None keeps all); ``sort``
    is a key of :data:`SORTS`. Keeps the original row index. With ``multi_label`` gold and pred
    are JSON lists of names: a row is misclassified unless its whole set is right, and a row
    matches a gold (predicted) filter when its gold (predicted) set holds any of the names.
    """
    if sort not in SORTS:
        raise BmcoreError(f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}")
    mask = pd.Series(True, index=predictions.index)
    if errors_only:
        mask &= predictions["gold"].astype(str) != predictions["pred"].astype(str)
    for column, wanted in (("gold", gold), ("pred", pred)):
        if wanted and multi_label:
            chosen = {str(w) for w in wanted}
            mask &= pd.Series([bool(chosen.intersection(s)) for s in label_sets(predictions[column])],
                              index=predictions.index)
        elif wanted:
            mask &= predictions[column].astype(str).isin([str(w) for w in wanted])
    column, descending = SORTS[sort]
    return predictions[mask].sort_values(column, ascending=not descending, kind="stable")[_example_columns(predictions)]


def label_set_text(value: Any) -> str:
    """A multi-label set (a JSON list of names) as people read it: ``anger, joy``, or :data:`NO_LABELS` when empty."""
    names = label_sets(pd.Series([value], dtype=object))[0]
    return ", ".join(names) if names else NO_LABELS


def shown_sets(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a multi-label table with its label-set columns (gold, pred, pred_a, pred_b) as text."""
    out = frame.copy()
    for col in ("gold", "pred", "pred_a", "pred_b"):
        if col in out:
            out[col] = [", ".join(names) if names else NO_LABELS for names in label_sets(out[col])]
    return out


def label_cell_examples(predictions: pd.DataFrame, label: str, cell: str) -> pd.DataFrame:
    """The examples behind one cell of a label's 2x2 confusion matrix in a multi-label table.

    ``cell`` is a key of :data:`LABEL_CELLS` (``fn``: gold has ``label``, the model did not predict it). Most
    confident decisions first: the highest score for the label first where it was predicted, the lowest where
    not. Columns: text, (text_pair), gold, pred, score (the label's), loss, errors; the original row index is kept.
    """
    if cell not in LABEL_CELLS:
        raise BmcoreError(f"unknown cell {cell!r}; choose one of {', '.join(LABEL_CELLS)}")
    column = f"{PROB_PREFIX}{label}"
    if column not in predictions:
        raise BmcoreError(f"the predictions have no column {column}; were they made for these labels?")
    _, in_gold, in_pred = LABEL_CELLS[cell]
    has = {c: np.array([str(label) in names for names in label_sets(predictions[c])], dtype=bool) for c in ("gold", "pred")}
    rows = predictions[(has["gold"] == in_gold) & (has["pred"] == in_pred)]
    rows = rows.assign(score=rows[column]).sort_values("score", ascending=not in_pred, kind="stable")
    return rows[[c for c in ("text", "text_pair", "gold", "pred", "score", "loss", "errors") if c in rows]]


def per_label_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """A multi-label evaluation's per-label report, one row per label in label order: label, precision, recall,
    F1, support, predicted, threshold, ROC-AUC, PR-AUC (None where a label has no positive or no negative)."""
    keys = ("precision", "recall", "f1", "support", "predicted", "threshold", "roc_auc", "pr_auc")
    return pd.DataFrame([{"label": name, **{k: r.get(k) for k in keys}} for name, r in metrics["per_class"].items()],
                        columns=["label", *keys])


def per_class_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """The per-class report as a long frame (class, metric, value, support) for grouped bars, classes in label order."""
    rows = [{"class": name, "metric": m, "value": float(r[m]), "support": int(r["support"])}
            for name, r in metrics["per_class"].items() for m in ("precision", "recall", "f1")]
    return pd.DataFrame(rows, columns=["class", "metric", "value", "support"])


def reliability_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """The reliability bins before (and, when fitted, after) temperature scaling, non-empty bins only.

    Columns: which ("before" / "after temperature"), lower, upper, confidence, accuracy, count.
    """
    parts = [("before", metrics.get("reliability") or [])]
    after = (metrics.get("calibration") or {}).get("reliability_after")
    if after:
        parts.append(("after temperature", after))
    rows = [{"which": which, **b} for which, bins in parts for b in bins if b.get("count")]
    return pd.DataFrame(rows, columns=["which", "lower", "upper", "confidence", "accuracy", "count"])


# --- images: the examples of an image evaluation as thumbnails ----------------------------------

GALLERY_MAX = 60  # images drawn at once in a cell's or the error browser's gallery
THUMB_PX = 112  # Fashion-MNIST's 28 px at four times their size (and room for a caption); larger images are reduced


def split_images(dataset_dir: str | Path, split: str) -> pd.DataFrame:
    """The image bytes and content hashes of a prepared image dataset's ``split``, in the order evaluation scored them
    (an evaluation table's ``row`` indexes it)."""
    path = Path(dataset_dir) / f"{split}.parquet"
    try:
        return pd.read_parquet(path, columns=["image", "sha256"])
    except (OSError, ValueError, KeyError) as exc:
        raise BmcoreError(f"cannot read the images of split {split!r} from {path} ({exc.__class__.__name__}); "
                          "prepare the dataset again") from exc


def gallery(predictions: pd.DataFrame, shown: pd.DataFrame, images: pd.DataFrame, *, limit: int = GALLERY_MAX,
            size: int = THUMB_PX, loss: bool = False) -> tuple[list[bytes], list[str]]:
    """Thumbnails (PNG) and captions for the first ``limit`` rows of ``shown`` (rows of ``predictions``, by their
    index, as :func:`cell_examples` and :func:`filter_predictions` keep it), read from the split's ``images``
    (:func:`split_images`). A caption is the file name, then gold → predicted and the confidence (and the loss).
    Refuses, in one line, an evaluation whose images no longer match the prepared split (it was prepared again)."""
    from .images.codec import thumbnail

    thumbs, captions = [], []
    for index, row in shown.head(limit).iterrows():
        at = int(predictions.at[index, "row"])
        if at >= len(images) or ("sha256" in predictions and str(predictions.at[index, "sha256"]) != str(images["sha256"].iat[at])):
            raise BmcoreError("the prepared split's images no longer match this evaluation; evaluate again")
        thumbs.append(thumbnail(bytes(images["image"].iat[at]), size))
        caption = f"{PurePosixPath(str(row['text'])).name}: {row['gold']} → {row['pred']} ({row['confidence']:.2f})"
        captions.append(caption + (f", loss {row['loss']:.2f}" if loss else ""))
    return thumbs, captions
