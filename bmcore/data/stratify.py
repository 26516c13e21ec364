"""Stratified splits: rows divided into parts that keep each class's (or each label's) share.

Single-label rows by scikit-learn's stratified ``train_test_split``; multi-label rows by iterative stratification
(Sechidis, Tsoumakas & Vlahavas 2011). :func:`three_splits` makes train, validation and test from a source's own
splits (carving the missing ones out of train) or from all rows. Split *names* (and a whole source's) live in
:mod:`bmcore.splits`; this module makes the splits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BmcoreError
from .dataset import SPLITS
from .label_values import label_matrix


def iterative_stratification(y: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Rows for the first part (a boolean mask of ``frac`` of them), by iterative stratification
    (Sechidis, Tsoumakas & Vlahavas 2011): the rarest label still to place goes first, each of its rows to the
    part that most lacks that label (ties: the part that lacks most rows, then at random). Rows with no label
    fill the parts to their sizes at the end. One change: a label with two or more rows first gives each part
    one row, so that carving test and then validation out of the rest puts a label with three rows in all three splits.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    want_rows = np.array([frac, 1 - frac]) * n
    want = np.outer([frac, 1 - frac], y.sum(axis=0)).astype(float)
    got = np.zeros_like(want)
    part = np.full(n, -1)
    left = y.sum(axis=0).astype(np.int64)
    enough = left >= 2
    order = rng.permutation(n)
    members = [order[y[order, j] == 1] for j in range(y.shape[1])]
    labels_of = [np.flatnonzero(row) for row in y]
    while (left > 0).any():
        j = int(np.argmin(np.where(left > 0, left, np.iinfo(np.int64).max)))
        for i in members[j]:
            if part[i] >= 0:
                continue
            best = np.flatnonzero(got[:, j] == 0) if enough[j] else np.arange(2)
            best = best if len(best) else np.arange(2)
            best = best[want[best, j] == want[best, j].max()]
            if len(best) > 1:
                best = best[want_rows[best] == want_rows[best].max()]
            p = int(best[0] if len(best) == 1 else rng.choice(best))
            part[i] = p
            want[p, labels_of[i]] -= 1
            got[p, labels_of[i]] += 1
            want_rows[p] -= 1
            left[labels_of[i]] -= 1
    for i in order[part[order] < 0]:
        p = int(np.argmax(want_rows))
        part[i] = p
        want_rows[p] -= 1
    return part == 0


def stratified_split(df: pd.DataFrame, sizes: tuple[float, float], seed: int,
                      label_names: list[str] | None = None, key: str = "label") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two parts in the ratio ``sizes``, stratified by label (or by the column ``key``: the range of a score);
    multi-label (``label_names`` given) by :func:`iterative_stratification`, where a label too rare for every part
    is no error."""
    from sklearn.model_selection import train_test_split

    frac = sizes[0] / (sizes[0] + sizes[1])
    if label_names is not None:
        first = iterative_stratification(label_matrix(df["label"], label_names), frac, seed)
        return df[first].reset_index(drop=True), df[~first].reset_index(drop=True)
    counts = df[key].value_counts()
    tiny = counts[counts < 2]
    if len(tiny):
        raise BmcoreError(f"class {tiny.index[0]!r} has only {int(tiny.iloc[0])} example; each class needs at least "
                          "3 examples to be split into train/validation/test (remove it or give your own splits)")
    try:
        a, b = train_test_split(df, train_size=frac, stratify=df[key], random_state=seed)
    except ValueError as exc:
        raise BmcoreError(f"cannot make a stratified split: {str(exc).splitlines()[0]}") from exc
    return a.reset_index(drop=True), b.reset_index(drop=True)


def three_splits(std: dict[str, pd.DataFrame], ratios: tuple[float, float, float], seed: int,
                  strata: list[str] | None, notes: list[str], key: str = "label") -> dict[str, pd.DataFrame]:
    """Train, validation and test: the source's own, with missing ones carved from train, or all made anew
    (stratified on ``key``, or on multi-label ``strata``).

    A source with train and validation but no test (GLUE's SST-2, STS-B, GoEmotions: train and dev) is scored on its
    own validation split, the one published results report: it becomes the test split, and a new validation split is
    carved from train to pick the best checkpoint."""
    r_train, r_val, r_test = ratios
    if "train" in std and "validation" in std and "test" not in std:
        std["test"] = std.pop("validation")
        notes.append(f"the source's validation split is the test split (it has no test split); validation is carved "
                     f"from train (seed {seed})")
        train, std["validation"] = stratified_split(std["train"], (r_train, r_val), seed, strata, key)
        std["train"] = train
    elif "train" in std:
        train = std["train"]
        if "validation" not in std or "test" not in std:
            missing = [s for s in ("validation", "test") if s not in std]
            notes.append(f"the source has no {' or '.join(missing)} split; carved from train (seed {seed})")
        if "test" not in std:
            train, std["test"] = stratified_split(train, (1 - r_test, r_test), seed, strata, key)
        if "validation" not in std:
            train, std["validation"] = stratified_split(train, (r_train, r_val), seed, strata, key)
        std["train"] = train
    else:
        rest, test = stratified_split(std["all"], (r_train + r_val, r_test), seed, strata, key)
        train, val = stratified_split(rest, (r_train, r_val), seed, strata, key)
        std = {"train": train, "validation": val, "test": test}
    return {s: std[s] for s in SPLITS}
