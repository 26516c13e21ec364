"""Comparing two runs on the same split: the metrics of each, per-class (per-label) F1 differences, the confusion
matrix difference, and the examples whose verdict flipped (plain data; :mod:`bmcore.report.evaluation` shapes it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .data.label_values import label_matrix
from .errors import BmcoreError
from .metrics import compute_metrics, multi_label_metrics


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
