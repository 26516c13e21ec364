"""What a prepared dataset's labels hold, measured: multi-label cardinality and co-occurrence, and a score's
distribution per split. Plain JSON-ready data; each task picks what applies to it
(:meth:`bmcore.tasks.base.Task.label_stats`), and :func:`bmcore.data.stats.compute_stats` adds it to the stats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dataset import SPLITS

MIN_CLASS_EXAMPLES = 10  # below this many training examples a class is flagged as tiny
MAX_COOCCURRENCE = 100  # labels; above this the co-occurrence matrix is left out of the stats
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
