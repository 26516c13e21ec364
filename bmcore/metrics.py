"""Every metric bmcore reports, for every task, from scikit-learn: one home and one set of key names.

Training's validation, the final test scores, the Evaluate page and the TF-IDF baseline all call these.
Single-label: :func:`compute_metrics` (the full report) and :func:`classification_metrics` (what training logs
each evaluation). Multi-label: :func:`multi_label_metrics`. Regression: :func:`regression_metrics`. Calibration of confidences: :func:`reliability_bins`
and :func:`expected_calibration_error`. These take labels and probabilities, never logits: turning logits into
scores and labels is a task's job (:mod:`bmcore.tasks`).

Key names, the same in training's logs (``eval_macro_f1``), ``eval.json``, ``status.json`` (``test_macro_f1``), an
evaluation's ``metrics.json``, the CLI and the model card: an average is ``<average>_<metric>``, with average
``macro``, ``micro``, ``weighted`` or ``samples`` and metric ``f1``, ``precision``, ``recall``, ``roc_auc`` or
``pr_auc`` (``macro_f1``, ``micro_precision``, ``macro_roc_auc``); the rest are plain names (``accuracy``,
``subset_accuracy``, ``hamming_loss``, ``log_loss``, ``ece``, ``pearson``, ``rmse``, ...). Files written before
this set had ``f1_macro``-style names: :func:`upgrade_keys` (run by :func:`check_scores`, which every reader of a
score file calls) renames them, the one place that knows the old names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import BmcoreError

DEFAULT_BINS = 15
MIN_BINS = 10
EPS = 1e-12  # floor for probabilities inside logs


# The score keys of eval.json and an evaluation's metrics.json (and of their split, baseline and calibration
# sections): each one a number or null. A file in the workspace is data: a string here is a damaged file.
AVERAGES = ("macro", "micro", "weighted", "samples")
SCORE_KEYS = frozenset({
    "n", "num_classes", "accuracy", "subset_accuracy", "hamming_loss", "loss", "log_loss", "ece", "ece_calibrated",
    "macro_roc_auc", "macro_pr_auc", "temperature", "perplexity", "threshold", "truncated", "pearson", "spearman",
    "rmse", "mae", "r2", *(f"{a}_{m}" for a in AVERAGES for m in ("f1", "precision", "recall"))})
SCORE_SECTIONS = ("validation", "test", "baseline", "flat_threshold", "calibration", "before", "after")
# The names in files written before the one set of key names (<metric>_<average>: f1_macro, roc_auc_macro, ...).
LEGACY_KEYS = {f"{m}_{a}": f"{a}_{m}" for a in AVERAGES for m in ("f1", "precision", "recall", "roc_auc", "pr_auc")}


def upgrade_keys(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (an evaluation's ``metrics.json``, ``eval.json``) with the legacy key names of :data:`LEGACY_KEYS`
    renamed to today's, in every score section (``test``, ``baseline``, ...); a new name already there wins. A copy."""
    out = {}
    for key, value in data.items():
        new = LEGACY_KEYS.get(key)
        if new is None:
            out[key] = upgrade_keys(value) if key in SCORE_SECTIONS and isinstance(value, dict) else value
        elif new not in data:
            out[new] = value
    return out


def check_scores(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Refuse scores of the wrong shape (``{"test": "x"}``, a text accuracy) with a one-line :class:`BmcoreError`
    naming ``where`` and the field, so every page and command reading them shows the file as damaged.

    Every reader of a score file calls it: it returns ``data`` with legacy key names upgraded (:func:`upgrade_keys`)."""
    def walk(d: dict[str, Any], path: str) -> None:
        for key in SCORE_SECTIONS:
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise BmcoreError(f"{where} is damaged: {path}{key} is {d[key]!r:.60}, not a section of scores")
            if d.get(key):
                walk(d[key], f"{path}{key}.")
        for key in SCORE_KEYS:
            value = d.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise BmcoreError(f"{where} is damaged: {path}{key} is {value!r:.60}, not a number")
        for key in ("confusion_matrix", "labels", "notes", "top_confusions", "reliability"):
            if d.get(key) is not None and not isinstance(d[key], (list, dict)):
                raise BmcoreError(f"{where} is damaged: {path}{key} is {d[key]!r:.60}, not a list")

    data = upgrade_keys(data) if isinstance(data, dict) else data
    walk(data, "")
    return data


def _ids(values: Sequence[Any], label_names: list[str], what: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(label_names)}
    out = np.empty(len(values), dtype=np.int64)
    for k, v in enumerate(values):
        key = str(v)
        if key not in index:
            raise BmcoreError(f"{what} label {key!r} is not one of the label names {label_names[:10]}")
        out[k] = index[key]
    return out


def _f(x: Any) -> float | None:
    """A plain float for JSON, or None for NaN."""
    x = float(x)
    return None if np.isnan(x) else x


def classification_metrics(pred_ids: np.ndarray, gold_ids: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix (rows gold, columns predicted, in ``label_names`` order)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    ids = list(range(len(label_names)))
    return {
        "accuracy": float(accuracy_score(gold_ids, pred_ids)),
        "macro_f1": float(f1_score(gold_ids, pred_ids, average="macro", labels=ids, zero_division=0)),
        "confusion_matrix": confusion_matrix(gold_ids, pred_ids, labels=ids).tolist(),
        "labels": list(label_names),
        "n": int(len(gold_ids)),
    }


def compute_metrics(gold: Sequence[Any], pred: Sequence[Any], probs: np.ndarray | None, label_names: Sequence[str],
                    n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Classification metrics from scikit-learn, as plain JSON-ready data.

    ``gold`` and ``pred`` are class names; ``probs`` is [n, classes] in ``label_names``
    order (or None: then ROC/PR-AUC, log loss and ECE are None). Macro/micro/weighted
    averages follow scikit-learn's default and cover the classes present in gold or pred;
    the per-class report and the confusion matrix list every class in ``label_names``
    order. ROC-AUC and PR-AUC are one-vs-rest, for each class that has both positive and
    negative gold examples (binary: the second class is positive); the macro value is
    their mean, None when no class qualifies. ECE and the reliability bins measure the probability ``probs`` gives
    each ``pred`` (the task's decision).
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    names = [str(n) for n in label_names]
    k = len(names)
    y = _ids(gold, names, "gold")
    p = _ids(pred, names, "predicted")
    if len(y) != len(p):
        raise ValueError("gold and pred must have the same length")
    n = len(y)
    if n == 0:
        raise BmcoreError("nothing to evaluate: the split is empty")
    out: dict[str, Any] = {"n": n, "num_classes": k, "label_names": names, "accuracy": float(accuracy_score(y, p))}
    for avg in ("macro", "micro", "weighted"):
        prec, rec, f1, _ = precision_recall_fscore_support(y, p, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(prec), float(rec), float(f1)
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=list(range(k)), average=None, zero_division=0)
    per_class = {names[i]: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                            "support": int(sup[i]), "predicted": int((p == i).sum())} for i in range(k)}
    cm = confusion_matrix(y, p, labels=list(range(k)))
    out["confusion_matrix"] = {"labels": names, "matrix": cm.astype(int).tolist()}
    off = [(int(cm[i, j]), names[i], names[j]) for i in range(k) for j in range(k) if i != j and cm[i, j]]
    out["top_confusions"] = [{"gold": g, "pred": q, "count": c} for c, g, q in sorted(off, key=lambda t: -t[0])[:10]]
    out["macro_roc_auc"] = out["macro_pr_auc"] = out["log_loss"] = out["ece"] = None
    out["reliability"] = []
    if probs is not None:
        pr = np.asarray(probs, dtype=np.float64)
        if pr.shape != (n, k):
            raise ValueError(f"probs must have shape ({n}, {k}), not {pr.shape}")
        pr = np.clip(pr, 0.0, 1.0)
        pr = pr / np.clip(pr.sum(axis=1, keepdims=True), EPS, None)  # sklearn's log_loss insists on rows summing to 1
        positives = [1] if k == 2 else list(range(k))
        for i in positives:
            onehot = (y == i).astype(int)
            ok = 0 < onehot.sum() < n
            per_class[names[i]]["roc_auc"] = _f(roc_auc_score(onehot, pr[:, i])) if ok else None
            per_class[names[i]]["pr_auc"] = _f(average_precision_score(onehot, pr[:, i])) if ok else None
        rocs = [per_class[names[i]]["roc_auc"] for i in positives if per_class[names[i]].get("roc_auc") is not None]
        prs = [per_class[names[i]]["pr_auc"] for i in positives if per_class[names[i]].get("pr_auc") is not None]
        out["macro_roc_auc"] = float(np.mean(rocs)) if rocs else None
        out["macro_pr_auc"] = float(np.mean(prs)) if prs else None
        out["log_loss"] = float(log_loss(y, pr, labels=list(range(k))))
        out["ece"] = expected_calibration_error(pr, y, p, n_bins)
        out["reliability"] = reliability_bins(pr, y, p, n_bins)
    out["per_class"] = per_class
    return out


def reliability_bins(probs: np.ndarray, gold_ids: Sequence[int] | np.ndarray, pred_ids: Sequence[int] | np.ndarray,
                     n_bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Equal-width confidence bins over [0, 1] for a reliability diagram.

    ``pred_ids`` are the predicted classes (the task's decisions: the top class). Confidence is the probability of
    the predicted class; an example is right when that class is gold. Bin i holds confidences in (i/n, (i+1)/n]
    (the first bin also holds 0). Each bin reports its edges, mean confidence, accuracy and count (None for empty
    bins).
    """
    if n_bins < MIN_BINS:
        raise ValueError(f"use at least {MIN_BINS} bins for a reliability diagram, not {n_bins}")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(gold_ids, dtype=np.int64)
    q = np.asarray(pred_ids, dtype=np.int64)
    conf = p[np.arange(len(p)), q] if len(p) else np.zeros(0)
    right = q == y
    # ceil(conf * n) - 1 puts conf exactly on an upper edge into that bin, as (lo, hi] wants.
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins = []
    for i in range(n_bins):
        mask = idx == i
        count = int(mask.sum())
        bins.append({"lower": i / n_bins, "upper": (i + 1) / n_bins, "count": count,
                     "confidence": float(conf[mask].mean()) if count else None,
                     "accuracy": float(right[mask].mean()) if count else None})
    return bins


def expected_calibration_error(probs: np.ndarray, gold_ids: Sequence[int] | np.ndarray,
                               pred_ids: Sequence[int] | np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """ECE: the count-weighted mean gap |accuracy - confidence| over equal-width bins (:func:`reliability_bins`)."""
    bins = reliability_bins(probs, gold_ids, pred_ids, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / n)


def multi_label_metrics(gold: np.ndarray, pred: np.ndarray, probs: np.ndarray | None, label_names: Sequence[str],
                        thresholds: Sequence[float] | None = None) -> dict[str, Any]:
    """Multi-label metrics from scikit-learn, as plain JSON-ready data.

    ``gold`` and ``pred`` are 0/1 matrices [n, labels] in ``label_names`` order; ``probs`` the scores (or None).
    Micro, macro, weighted and samples precision/recall/F1; ``subset_accuracy`` (every label of a row right,
    also given as ``accuracy``); ``hamming_loss``; per label precision, recall, F1, support, predicted count,
    the threshold used, ROC-AUC and PR-AUC; and each label's 2x2 confusion matrix ``[[tn, fp], [fn, tp]]``.
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        hamming_loss,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    names = [str(n) for n in label_names]
    y = np.asarray(gold, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(names):
        raise ValueError(f"gold and pred must both be [n, {len(names)}] 0/1 matrices, not {y.shape} and {p.shape}")
    n, k = y.shape
    if n == 0:
        raise BmcoreError("nothing to evaluate: the split is empty")
    out: dict[str, Any] = {"n": int(n), "num_classes": k, "label_names": names, "problem_type": "multi_label_classification",
                           "subset_accuracy": float(accuracy_score(y, p)), "hamming_loss": float(hamming_loss(y, p)),
                           "labels_per_row_gold": float(y.sum(axis=1).mean()), "labels_per_row_pred": float(p.sum(axis=1).mean())}
    out["accuracy"] = out["subset_accuracy"]
    for avg in AVERAGES:
        prec, rec, f1, _ = precision_recall_fscore_support(y, p, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(prec), float(rec), float(f1)
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, average=None, zero_division=0)
    per_class = {names[i]: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                            "support": int(sup[i]), "predicted": int(p[:, i].sum()),
                            "threshold": float(thresholds[i]) if thresholds is not None else None}
                 for i in range(k)}
    out["macro_roc_auc"] = out["macro_pr_auc"] = None
    if probs is not None:
        pr = np.asarray(probs, dtype=np.float64)
        if pr.shape != (n, k):
            raise ValueError(f"probs must have shape ({n}, {k}), not {pr.shape}")
        for i in range(k):
            ok = 0 < y[:, i].sum() < n
            per_class[names[i]]["roc_auc"] = _f(roc_auc_score(y[:, i], pr[:, i])) if ok else None
            per_class[names[i]]["pr_auc"] = _f(average_precision_score(y[:, i], pr[:, i])) if ok else None
        rocs = [v["roc_auc"] for v in per_class.values() if v["roc_auc"] is not None]
        prs = [v["pr_auc"] for v in per_class.values() if v["pr_auc"] is not None]
        out["macro_roc_auc"] = float(np.mean(rocs)) if rocs else None
        out["macro_pr_auc"] = float(np.mean(prs)) if prs else None
    out["per_class"] = per_class
    out["label_confusion"] = {"labels": names,
                              "matrices": multilabel_confusion_matrix(y, p).astype(int).tolist()}  # [k][2][2]
    return out


ERROR_RANGES = 5  # regression: the error is reported for this many equal-width ranges of the gold score


def regression_metrics(gold: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Pearson and Spearman correlation, RMSE, MAE and R² of predicted scores against gold scores, with the error
    in :data:`ERROR_RANGES` ranges of the gold score (``error_by_range``: low, high, n, mae, mean signed error).

    A correlation is None where it is undefined (fewer than two rows, or a constant gold or prediction)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y = np.asarray(gold, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if len(y) != len(p):
        raise BmcoreError(f"{len(y)} gold scores but {len(p)} predictions")
    varies = len(y) >= 2 and np.ptp(y) > 0 and np.ptp(p) > 0
    out: dict[str, Any] = {
        "n": int(len(y)),
        "pearson": _f(pearsonr(y, p)[0]) if varies else None,
        "spearman": _f(spearmanr(y, p)[0]) if varies else None,
        "rmse": float(np.sqrt(mean_squared_error(y, p))) if len(y) else None,
        "mae": float(mean_absolute_error(y, p)) if len(y) else None,
        "r2": _f(r2_score(y, p)) if len(y) >= 2 and np.ptp(y) > 0 else None,
    }
    out["error_by_range"] = error_by_range(y, p)
    return out


def error_by_range(gold: np.ndarray, pred: np.ndarray, ranges: int = ERROR_RANGES) -> list[dict[str, Any]]:
    """The error in equal-width ranges of the gold score: where the model is good and where it is not."""
    if not len(gold):
        return []
    lo, hi = float(gold.min()), float(gold.max())
    edges = np.linspace(lo, hi, ranges + 1) if hi > lo else np.array([lo, hi])
    which = np.clip(np.searchsorted(edges, gold, side="right") - 1, 0, len(edges) - 2)
    out = []
    for k in range(len(edges) - 1):
        mask = which == k
        err = pred[mask] - gold[mask]
        out.append({"low": float(edges[k]), "high": float(edges[k + 1]), "n": int(mask.sum()),
                    "mae": float(np.abs(err).mean()) if mask.any() else None,
                    "bias": float(err.mean()) if mask.any() else None})
    return out
