"""Label quality from neighbours: rows that are (almost) the same but labelled differently (**conflicts**), and rows
far from every other row of their class (**class outliers**), by cosine similarity of their features
(:mod:`bmcore.quality.features`). Nothing here knows a task.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

DUPLICATE_SIMILARITY = {"builtin:minilm": 0.97, "tfidf": 0.9}  # cosine at or above which two texts count as the same
NEIGHBOURS = 10  # same-class neighbours an outlier score averages over
OUTLIER_MADS = 2.5  # a class outlier lies this many (scaled) median absolute deviations above its class median; TF-IDF distances bunch near 1, so no more
MAX_CONFLICTS = 10_000
CONFLICT_COLUMNS = ("split_a", "row_a", "label_a", "text_a", "split_b", "row_b", "label_b", "text_b", "similarity")


def _top_neighbours(a: Any, b: Any, k: int, same: bool, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a``, the ``k`` most cosine-similar rows of ``b`` (unit rows, dense or sparse): (indices, sims).

    With ``same`` (a is b) a row is not its own neighbour. Chunked, so memory stays at ``chunk * len(b)`` floats.
    """
    k = min(k, b.shape[0] - (1 if same else 0))
    if k <= 0:
        return np.zeros((a.shape[0], 0), dtype=np.int64), np.zeros((a.shape[0], 0), dtype=np.float32)
    idx = np.zeros((a.shape[0], k), dtype=np.int64)
    sims = np.zeros((a.shape[0], k), dtype=np.float32)
    for start in range(0, a.shape[0], chunk):
        s = a[start:start + chunk] @ b.T
        s = np.asarray(s.todense() if hasattr(s, "todense") else s, dtype=np.float32)
        if same:
            s[np.arange(len(s)), np.arange(start, start + len(s))] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        idx[start:start + chunk] = top
        sims[start:start + chunk] = np.take_along_axis(s, top, axis=1)
    return idx, sims


def _normal_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _similar_pairs(rows: pd.DataFrame, features: Any, threshold: float) -> dict[tuple[int, int], float]:
    """Pairs of row positions (first, second) with the same normalised text (similarity 1), or features at least
    ``threshold`` cosine-similar among each row's five nearest, with their similarity."""
    key = rows["text"].map(_normal_text) + ("\x00" + rows["text_pair"].map(_normal_text) if "text_pair" in rows else "")
    pairs: dict[tuple[int, int], float] = {}
    for _, group in pd.Series(np.arange(len(rows))).groupby(key.to_numpy()):
        members = group.to_numpy()
        for i in members[1:]:
            pairs[(int(members[0]), int(i))] = 1.0
    idx, sims = _top_neighbours(features, features, 5, same=True)
    for i, j in zip(*np.nonzero(sims >= threshold), strict=True):
        a, b = sorted((i, int(idx[i, j])))
        pairs.setdefault((int(a), int(b)), float(sims[i, j]))
    return pairs


def find_conflicts(rows: pd.DataFrame, features: Any, threshold: float) -> pd.DataFrame:
    """Pairs of rows with the same normalised text, or features at least ``threshold`` cosine-similar, whose labels differ."""
    given = rows["given"].to_numpy()
    found = [(a, b, s) for (a, b), s in _similar_pairs(rows, features, threshold).items() if given[a] != given[b]]
    found.sort(key=lambda t: (-t[2], t[0], t[1]))
    found = found[:MAX_CONFLICTS]
    out = []
    for a, b, s in found:
        ra, rb = rows.iloc[a], rows.iloc[b]
        out.append({"split_a": ra["split"], "row_a": int(ra["row"]), "label_a": ra["given"], "text_a": ra["text"],
                    "split_b": rb["split"], "row_b": int(rb["row"]), "label_b": rb["given"], "text_b": rb["text"],
                    "similarity": round(s, 4)})
    return pd.DataFrame(out, columns=list(CONFLICT_COLUMNS))


def class_outliers(features: Any, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the mean cosine distance to its nearest same-class neighbours, and whether that is an outlier for the
    class (more than ``OUTLIER_MADS`` scaled median absolute deviations above the class's median)."""
    score = np.zeros(len(labels), dtype=np.float64)
    flag = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.nonzero(labels == c)[0]
        if len(members) < 3:
            continue
        x = features[members]
        _, sims = _top_neighbours(x, x, NEIGHBOURS, same=True)
        d = 1.0 - sims.mean(axis=1)
        median = np.median(d)
        mad = 1.4826 * np.median(np.abs(d - median))
        score[members] = d
        flag[members] = d > median + OUTLIER_MADS * max(mad, 1e-6)
    return score, flag
