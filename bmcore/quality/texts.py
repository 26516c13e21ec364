"""Label quality for text datasets (confident learning, Northcutt et al. 2021, through ``cleanlab``).

1. Every row gets a feature vector (:mod:`bmcore.quality.features`): a frozen encoder's embedding, or TF-IDF.
2. Out-of-fold class probabilities from logistic regression on those features; with an encoder, averaged with
   those on TF-IDF (the two err on different rows).
3. ``cleanlab.filter.find_label_issues`` flags the rows whose given label disagrees with those probabilities beyond
   what the estimated per-class noise rates explain; ``get_label_quality_scores`` (self-confidence: the
   probability of the given label) ranks them. The suggested label is the task's top class (``top_class``).

Besides, conflicting near duplicates and class outliers (:mod:`bmcore.quality.neighbours`). The single-label task
calls :func:`score_texts` (:meth:`bmcore.tasks.base.Task.score_label_quality`); this module knows no task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..baseline import BASELINE_C, PAIR_SEPARATOR
from ..data.dataset import PreparedDataset
from .features import ENCODERS, Progress, embed_texts, out_of_fold_probs, tfidf_features
from .neighbours import DUPLICATE_SIMILARITY, class_outliers, find_conflicts


def _text_probs(ds: PreparedDataset, rows: pd.DataFrame, labels: np.ndarray, *, encoder: str, folds: int, seed: int,
                precision: str, report: Progress) -> tuple[Any, np.ndarray, float]:
    """The rows' features, their out-of-fold class probabilities, and the seconds the features took."""
    t0 = time.perf_counter()
    texts = rows["text"].tolist()
    pairs = rows["text_pair"].tolist() if "text_pair" in rows else None
    joined = texts if pairs is None else [f"{a}{PAIR_SEPARATOR}{b}" for a, b in zip(texts, pairs, strict=True)]
    if encoder == "tfidf":
        report(0, folds, "Counting words (TF-IDF)...")
        features = tfidf_features(joined)
    else:
        features = embed_texts(encoder, texts, pairs, precision=precision,
                               progress=lambda d, t: report(d, t, f"Embedding {d:,} of {t:,} texts with {encoder}..."))
    embed_s = time.perf_counter() - t0
    probs = out_of_fold_probs(features, labels, len(ds.label_names), folds=folds, seed=seed,
                              progress=lambda d, t: report(d, t, f"Cross-validating: fold {d} of {t}..."))
    if encoder != "tfidf":
        # Averaged with TF-IDF's out-of-fold probabilities: the two err on different rows. On 5%-flipped SST-2 the
        # average reaches 0.82 out-of-fold accuracy against 0.79 and 0.78, and flags a third fewer rows.
        words = tfidf_features(joined)
        probs = (probs + out_of_fold_probs(words, labels, len(ds.label_names), folds=folds, seed=seed, c=BASELINE_C,
                 progress=lambda d, t: report(d, t, f"Cross-validating on TF-IDF: fold {d} of {t}..."))) / 2
    return features, probs, embed_s


def score_texts(ds: PreparedDataset, rows: pd.DataFrame, labels: np.ndarray, *, top_class: Callable[[np.ndarray], Any],
                encoder: str, folds: int, seed: int, precision: str, report: Progress
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The label-quality scores of a text dataset's ``rows`` (:func:`bmcore.quality.job.score_dataset`), its
    conflicting near-duplicate pairs, and the summary's extra keys. ``top_class``: the task's
    (:meth:`bmcore.tasks.base.Task.top_class`), the class suggested from each row's out-of-fold probabilities."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    n = len(rows)
    features, probs, embed_s = _text_probs(ds, rows, labels, encoder=encoder, folds=folds, seed=seed,
                                           precision=precision, report=report)
    report(1, 1, "Finding label issues, conflicts and outliers...")
    # n_jobs=1: cleanlab's default forks a worker pool, which hung a loaded job (blocked in a queue lock) until it was
    # cancelled; one process does the per-class pruning in well under a second for 100k rows.
    issue = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    suggested = top_class(probs)
    outlier_score, outlier = class_outliers(features, labels)
    conflicts = find_conflicts(rows, features, DUPLICATE_SIMILARITY[encoder])
    in_conflict = set(zip(conflicts["split_a"], conflicts["row_a"], strict=True)) | set(
        zip(conflicts["split_b"], conflicts["row_b"], strict=True))
    scores = rows.assign(
        suggested=[ds.label_names[i] for i in suggested],
        confidence=probs[np.arange(n), suggested],
        p_given=probs[np.arange(n), labels],
        quality=quality,
        issue=issue,
        outlier_score=outlier_score,
        outlier=outlier,
        conflict=[(s, int(r)) in in_conflict for s, r in zip(rows["split"], rows["row"], strict=True)],
    )
    return scores, conflicts, {"embed_seconds": round(embed_s, 1)}


def describe_model(encoder: str) -> str:
    """One line saying where the out-of-fold probabilities come from."""
    if encoder == "tfidf":
        return "logistic regression on TF-IDF word uni- and bigrams, k-fold cross-validated"
    if encoder not in ENCODERS:
        return (f"logistic regression on frozen pooled {encoder} features, k-fold cross-validated; cleanlab's "
                "Datalab for label issues, outliers and near duplicates")
    return (f"logistic regression on frozen mean-pooled {encoder} embeddings, averaged with one on TF-IDF word uni- "
            "and bigrams, k-fold cross-validated")
