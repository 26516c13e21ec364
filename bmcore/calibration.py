"""Calibration: expected calibration error, reliability bins and temperature scaling.

A classifier is *calibrated* when, of the examples it predicts with confidence 0.8,
about 80% are right. Fine-tuned transformers are usually over-confident. Temperature
scaling (Guo et al., 2017) divides the logits by one number T > 0 fitted on the
validation split; it changes confidences but never the predicted class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_BINS = 15
MIN_BINS = 10
T_BOUNDS = (0.05, 20.0)  # a fitted T outside this range means the logits are degenerate, not miscalibrated


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities from ``logits`` divided by ``temperature``."""
    if not temperature or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, not {temperature!r}")
    return softmax(np.asarray(logits, dtype=np.float64) / float(temperature))


def nll(logits: np.ndarray, gold_ids: Sequence[int] | np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (cross-entropy, in nats) of ``gold_ids`` at ``temperature``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    y = np.asarray(gold_ids, dtype=np.int64)
    m = z.max(axis=1, keepdims=True)
    logsumexp = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(logsumexp - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, gold_ids: Sequence[int] | np.ndarray) -> float:
    """The temperature that minimises the NLL of ``gold_ids`` (fit it on the validation split).

    The NLL is convex in 1/T, hence unimodal in log T, so a bounded scalar search on
    log T finds the optimum; it is deterministic and needs no torch. Returns 1.0 when
    there is nothing to fit (no rows).
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(gold_ids, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y):
        raise ValueError("logits must be [n, classes] with one gold id per row")
    if len(y) == 0:
        return 1.0
    lo, hi = np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])
    res = minimize_scalar(lambda log_t: nll(z, y, float(np.exp(log_t))), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-5})
    t = float(np.exp(res.x))
    # Never return a temperature that is worse than doing nothing.
    return t if nll(z, y, t) <= nll(z, y, 1.0) else 1.0


def reliability_bins(probs: np.ndarray, gold_ids: Sequence[int] | np.ndarray, n_bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Equal-width confidence bins over [0, 1] for a reliability diagram.

    Confidence is the top class probability; an example is right when that class is
    gold. Bin i holds confidences in (i/n, (i+1)/n] (the first bin also holds 0). Each
    bin reports its edges, mean confidence, accuracy and count (None for empty bins).
    """
    if n_bins < MIN_BINS:
        raise ValueError(f"use at least {MIN_BINS} bins for a reliability diagram, not {n_bins}")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(gold_ids, dtype=np.int64)
    conf = p.max(axis=1) if len(p) else np.zeros(0)
    right = (p.argmax(axis=1) == y) if len(p) else np.zeros(0, dtype=bool)
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


def expected_calibration_error(probs: np.ndarray, gold_ids: Sequence[int] | np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """ECE: the count-weighted mean gap |accuracy - confidence| over equal-width bins."""
    bins = reliability_bins(probs, gold_ids, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]) / n)
