"""The Evaluate page's tables and charts of a prediction table, worked out: the error browser's rows and orderings,
a confusion cell's examples, multi-label label sets as text and a label's 2x2 cells, the per-class and reliability
frames, ROC and PR curves, and an image evaluation's examples as thumbnails.

The pages only draw what these functions return; a prediction table is the one a task's
:meth:`~bmcore.tasks.base.Task.evaluate` writes (:mod:`bmcore.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from ..data.label_values import label_sets
from ..errors import BmcoreError
from ..images.codec import THUMB_PX, thumbnail
from ..tasks.base import PROB_PREFIX

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


def probs_of(predictions: pd.DataFrame, label_names: Sequence[str]) -> np.ndarray:
    """The [n, classes] probability matrix of a prediction table, in ``label_names`` order."""
    cols = [f"{PROB_PREFIX}{n}" for n in label_names]
    missing = [c for c in cols if c not in predictions]
    if missing:
        raise BmcoreError(f"the predictions have no column {missing[0]}; were they made for these labels?")
    return predictions[cols].to_numpy(dtype=np.float64)


# --- curves ----------------------------------------------------------------------------------


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


# --- the error browser and the per-class views ---------------------------------------------------


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
    thumbs, captions = [], []
    for index, row in shown.head(limit).iterrows():
        at = int(predictions.at[index, "row"])
        if at >= len(images) or ("sha256" in predictions and str(predictions.at[index, "sha256"]) != str(images["sha256"].iat[at])):
            raise BmcoreError("the prepared split's images no longer match this evaluation; evaluate again")
        thumbs.append(thumbnail(bytes(images["image"].iat[at]), size))
        caption = f"{PurePosixPath(str(row['text'])).name}: {row['gold']} → {row['pred']} ({row['confidence']:.2f})"
        captions.append(caption + (f", loss {row['loss']:.2f}" if loss else ""))
    return thumbs, captions
