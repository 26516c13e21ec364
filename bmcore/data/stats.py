"""Stats: what a prepared dataset holds, measured, and the warnings a newcomer needs before training on it.

Rows per split and class, duplicates within and across splits (leakage), tiny classes, the imbalance and suggested
class weights, multi-label cardinality and co-occurrence, and token lengths against ``max_seq_length`` with the
tokenizer the model will use (:func:`compute_stats`); plain-language warnings from them (:func:`warnings_for`).
All plain JSON-ready data, saved in ``dataset.json``; :mod:`bmcore.report.data` turns them into chart frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..images.stats import image_stats
from ..models import DEFAULT_MAX_SEQ_LENGTH
from ..problem_types import MULTI_LABEL
from .dataset import SPLITS, PreparedDataset
from .label_values import label_matrix, label_notices

MIN_CLASS_EXAMPLES = 10  # below this many training examples a class is flagged as tiny
MAX_COOCCURRENCE = 100  # labels; above this the co-occurrence matrix is left out of the stats


def token_lengths(texts: list[str], tokenizer: Any, pairs: list[str] | None = None, batch: int = 1000,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Token counts (with special tokens, untruncated) for each text, or each pair.

    ``progress`` is called with the number of texts counted after each batch.
    """
    out: list[int] = []
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        args = (chunk, pairs[i:i + batch]) if pairs is not None else (chunk,)
        enc = tokenizer(*args, add_special_tokens=True, truncation=False, verbose=False)
        out.extend(len(ids) for ids in enc["input_ids"])
        if progress is not None:
            progress(len(chunk))
    return np.asarray(out, dtype=np.int64)


def compute_stats(ds: PreparedDataset, tokenizer: Any = None, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                  tokenizer_name: str = "", progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Stats for a prepared dataset, as plain JSON-ready data.

    Rows per split and class, dropped empties, duplicates within and across splits
    (leakage), tiny classes, token lengths per class with the share truncated at
    ``max_seq_length``, the imbalance ratio and suggested class weights. Counting tokens is the slow part
    (80 s for 500,000 short rows on two busy CPU cores): ``progress(done, total)`` is called as rows are counted.
    """
    matrices = {s: label_matrix(ds.splits[s]["label"], ds.label_names) for s in SPLITS} if ds.is_multi_label else {}
    if ds.is_multi_label:  # rows that have the label
        per_split = {s: dict(zip(ds.label_names, map(int, m.sum(axis=0)), strict=True)) for s, m in matrices.items()}
    elif ds.columns.scores:  # every row has its score
        per_split = {s: {n: int(len(ds.splits[s])) for n in ds.label_names} for s in SPLITS}
    else:
        per_split = {s: {n: int(c) for n, c in ds.splits[s]["label"].value_counts().reindex(ds.label_names, fill_value=0).items()}
                     for s in SPLITS}
    keyed = {s: text_keys(df) for s, df in ds.splits.items()}
    dup_within = {s: int(k.duplicated().sum()) for s, k in keyed.items()}
    sets = {s: set(k) for s, k in keyed.items()}
    leakage = {f"{a}-{b}": len(sets[a] & sets[b]) for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))}
    train_counts = per_split["train"]
    total = sum(train_counts.values())
    nonzero = [c for c in train_counts.values() if c > 0]
    imbalance = max(nonzero) / min(nonzero) if nonzero else float("inf")
    k = len(ds.label_names)
    weights = {n: round(total / (k * c), 4) if c else None for n, c in train_counts.items()}
    tiny = sorted(n for n in ds.label_names
                  if train_counts[n] < MIN_CLASS_EXAMPLES or per_split["validation"][n] < 1 or per_split["test"][n] < 1)
    stats: dict[str, Any] = {
        "rows": {s: int(len(ds.splits[s])) for s in SPLITS},
        "rows_total": int(sum(len(df) for df in ds.splits.values())),
        "num_classes": k,
        "class_counts_total": {n: int(sum(per_split[s][n] for s in SPLITS)) for n in ds.label_names},
        "class_counts": per_split,
        "dropped_empty": int(sum(ds.dropped_empty.values())),
        "duplicates_within": dup_within,
        "leakage": leakage,
        "tiny_classes": tiny,
        "imbalance_ratio": round(float(imbalance), 3),
        "class_weights": weights,
        "max_seq_length": int(max_seq_length),
        "label_notices": label_notices(ds.label_names),
        "problem_type": ds.problem_type,
    }
    if ds.is_multi_label:
        stats.update(multi_label_stats(matrices, ds.label_names))
        stats["class_weights"] = {}  # inverse class frequency is a single-label idea
    if ds.columns.scores:
        stats.update(score_stats({s: ds.splits[s]["label"].to_numpy(dtype=float) for s in SPLITS}))
        stats["class_weights"] = {}
    if ds.modality == "image":
        stats.update(image_stats(ds))
    elif tokenizer is not None:
        stats.update(_token_stats(ds, tokenizer, max_seq_length, progress, matrices))
        stats["tokenizer"] = tokenizer_name or getattr(tokenizer, "name_or_path", "")
    ds.stats = stats
    return stats


def _token_stats(ds: PreparedDataset, tokenizer: Any, max_seq_length: int, progress: Callable[[int, int], None] | None,
                 matrices: dict[str, np.ndarray]) -> dict[str, Any]:
    """Token lengths per split and per class (over train; a multi-label row counts for each of its labels, from its
    ``matrices``), and the share truncated at ``max_seq_length``. Adds an ``n_tokens`` column to every split."""
    lengths: dict[str, dict[str, Any]] = {}
    trunc_total = n_total = 0
    done, rows_total = [0], sum(len(ds.splits[s]) for s in SPLITS)

    def counted(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], rows_total)

    for s in SPLITS:
        df = ds.splits[s]
        ln = token_lengths(df["text"].tolist(), tokenizer, df["text_pair"].tolist() if "text_pair" in df else None,
                           progress=counted)
        trunc_total += int((ln > max_seq_length).sum())
        n_total += len(ln)
        ds.splits[s] = df.assign(n_tokens=ln)
        lengths[s] = _length_summary(ln, max_seq_length)
    train = ds.splits["train"]
    has = ((lambda j, n: matrices["train"][:, j] == 1) if ds.is_multi_label else
           (lambda j, n: np.ones(len(train), dtype=bool)) if ds.columns.scores else (lambda j, n: train["label"] == n))
    return {"token_lengths": lengths,
            "token_lengths_per_class": {n: _length_summary(train.loc[has(j, n), "n_tokens"].to_numpy(), max_seq_length)
                                        for j, n in enumerate(ds.label_names)},
            "truncated_share": round(trunc_total / max(n_total, 1), 4)}


SCORE_HISTOGRAM_BINS = 20


def score_stats(scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """A score dataset's targets: per split the count, mean, standard deviation, min and max, and a histogram on bins
    shared by every split (so the splits can be drawn side by side)."""
    every = np.concatenate(list(scores.values()))
    lo, hi = float(every.min()), float(every.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, SCORE_HISTOGRAM_BINS + 1)
    summary = {s: {"count": int(len(v)), "mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                   "max": float(v.max())} if len(v) else {"count": 0} for s, v in scores.items()}
    return {"score_summary": summary, "score_histogram": {
        "edges": [float(e) for e in edges], "counts": {s: np.histogram(v, edges)[0].astype(int).tolist() for s, v in scores.items()}}}


def multi_label_stats(matrices: dict[str, np.ndarray], label_names: list[str]) -> dict[str, Any]:
    """Multi-label stats from each split's rows x labels matrix: labels per row (mean and a histogram, per split
    and over all rows), rows with no label, labels with fewer than MIN_CLASS_EXAMPLES rows in all (too rare to
    split and learn), and the co-occurrence matrix over all rows (rows having both labels; the diagonal is
    each label's count), left out above MAX_COOCCURRENCE labels."""
    every = np.concatenate([matrices[s] for s in SPLITS])
    per_row = {s: matrices[s].sum(axis=1) for s in SPLITS}
    per_row["all"] = every.sum(axis=1)

    def histogram(k: np.ndarray) -> dict[str, int]:
        return {str(int(v)): int(c) for v, c in zip(*np.unique(k, return_counts=True), strict=True)}

    totals = every.sum(axis=0)
    out: dict[str, Any] = {
        "label_cardinality": round(float(per_row["all"].mean()), 4) if len(every) else 0.0,
        "labels_per_row": {s: {"mean": round(float(k.mean()), 4) if len(k) else 0.0, "histogram": histogram(k)}
                           for s, k in per_row.items()},
        "no_label_rows": {s: int((k == 0).sum()) for s, k in per_row.items() if s != "all"},
        "rare_labels": [n for n, c in zip(label_names, totals, strict=True) if c < MIN_CLASS_EXAMPLES],
    }
    if len(label_names) <= MAX_COOCCURRENCE:
        e = every.astype(np.int64)
        out["cooccurrence"] = (e.T @ e).tolist()
    return out


def _length_summary(ln: np.ndarray, max_len: int) -> dict[str, Any]:
    if len(ln) == 0:
        return {"count": 0}
    return {"count": int(len(ln)), "mean": round(float(ln.mean()), 1), "p50": int(np.percentile(ln, 50)),
            "p95": int(np.percentile(ln, 95)), "max": int(ln.max()),
            "truncated": int((ln > max_len).sum()), "truncated_share": round(float((ln > max_len).mean()), 4)}


def warnings_for(stats: dict[str, Any]) -> list[str]:
    """Plain-language warnings from stats: duplicates, leakage, tiny classes, imbalance, truncation."""
    out = []
    what = "images" if stats.get("modality") == "image" else "texts"
    dups = {s: n for s, n in stats.get("duplicates_within", {}).items() if n}
    if dups:
        out.append(f"exact duplicate {what} within splits: " + ", ".join(f"{s} {n}" for s, n in dups.items()))
    leak = {p: n for p, n in stats.get("leakage", {}).items() if n}
    if leak:
        out.append(f"{what} shared across splits (leakage, inflates scores): " + ", ".join(f"{p} {n}" for p, n in leak.items()))
    multi = stats.get("problem_type") == MULTI_LABEL
    if stats.get("rare_labels"):
        out.append(f"labels too rare to split and learn (fewer than {MIN_CLASS_EXAMPLES} rows in all): "
                   + ", ".join(stats["rare_labels"]))
    tiny = [n for n in stats.get("tiny_classes", []) if n not in stats.get("rare_labels", [])]
    if tiny:
        out.append(f"{'labels' if multi else 'classes'} too small to learn or score well (<{MIN_CLASS_EXAMPLES} train "
                   "examples or absent from a split): " + ", ".join(tiny))
    no_label = sum(stats.get("no_label_rows", {}).values())
    if no_label:
        out.append(f"{no_label:,} rows ({no_label / max(stats.get('rows_total', 1), 1):.1%}) have no label; "
                   "the model learns to predict none for texts like them")
    if not multi and stats.get("imbalance_ratio", 1) >= 3:  # class weights are a single-label remedy
        out.append(f"class imbalance {stats['imbalance_ratio']}:1 between the largest and smallest class; "
                   "training weighs the loss towards the rare classes by default (class_weights auto)")
    share = stats.get("truncated_share")
    if share:
        out.append(f"{share:.1%} of texts are longer than max_seq_length {stats.get('max_seq_length')} tokens and will be truncated")
    if stats.get("dropped_empty"):
        out.append(f"{stats['dropped_empty']} rows with an empty text or label were dropped")
    return out + list(stats.get("label_notices", []))


def text_keys(df: pd.DataFrame) -> pd.Series:
    """What counts as the same text (or pair): equal after stripping and lower-casing; the same pixels for images."""
    if "sha256" in df:
        return df["sha256"]
    return (df["text"] + ("\x1f" + df["text_pair"] if "text_pair" in df else "")).str.strip().str.lower()
