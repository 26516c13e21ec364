"""Label quality for image datasets: the same review as for texts (:mod:`bmcore.quality.texts`), from image features.

1. Every image of every split gets a feature vector from the built-in image model, frozen: the pooled output of
   ``builtin:efficientnet-lite0``'s last stage (1,280 numbers), L2-normalised, at the side a run on the data would
   train at. The image task does it (:func:`bmcore.modalities.image.embed_images`): images are decoded a
   batch at a time through :func:`bmcore.images.decode_image` (its pixel limit, EXIF rotation, one-line refusals).
2. k-fold cross-validation of logistic regression on those features gives out-of-fold class probabilities, as for
   texts (:func:`bmcore.quality.features.out_of_fold_probs`).
3. cleanlab's ``Datalab`` finds three kinds of issue from the probabilities and the features: **label issues** (the
   given label disagrees with the probabilities beyond the estimated noise), **outliers** (far from every other
   image: a placeholder, a broken or an unrelated picture among the photos) and **near duplicates** (almost the same
   features: a copy, a crop, a resave). Each flagged image is reviewed like a flagged text: keep, relabel or drop.

The image task calls :func:`score_images` (:meth:`bmcore.tasks.base.Task.score_label_quality`); this module knows no
task. The thumbnails of flagged images a page shows are :func:`bmcore.report.quality.flag_gallery`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..baseline import one_thread
from ..data.dataset import PreparedDataset
from .features import Progress, out_of_fold_probs

# On L2-normalised EfficientNet-Lite0 features of 300 Fashion-MNIST images (4 classes, 9 labels flipped, 6 draws of
# the flips) cleanlab found 65%, 70% and 76% of the flips at C 1, 3 and 10, with 81%, 90% and 80% of its flags right.
IMAGE_LOGREG_C = 3.0
ISSUE_TYPES = ("label", "outlier", "near_duplicate")  # what Datalab looks for, with its defaults but k
DATALAB_NEIGHBOURS = 10  # Datalab's own k for outliers and near duplicates (fewer where the dataset is smaller)
ISSUE_NAMES = {"label": "label issue", "outlier": "outlier", "near_duplicate": "near duplicate"}
Embed = Callable[..., np.ndarray]  # images (bytes), encoder, precision=, names=, progress= -> features [n, d]


def find_image_issues(given: Sequence[str], probs: np.ndarray, features: np.ndarray) -> pd.DataFrame:
    """cleanlab ``Datalab``'s label issues, outliers and near duplicates for rows with labels ``given``, out-of-fold
    ``probs`` [n, classes] (columns in label-name order) and ``features`` [n, d]: per row ``is_<type>_issue`` and
    ``<type>_score`` (1 good, 0 bad) for each of :data:`ISSUE_TYPES`, and ``near_duplicate_sets`` (the rows each row
    nearly duplicates)."""
    from cleanlab import Datalab

    lab = Datalab(pd.DataFrame({"label": list(given)}), label_name="label", verbosity=0)
    # Fresh settings each call: Datalab writes what it computed (the neighbour graph) into the dicts it is given. Its
    # 10 neighbours need 11 rows: fewer, and it prints an error (into the CLI's JSON) and skips the check.
    near = {"k": min(DATALAB_NEIGHBOURS, len(features) - 1)}
    # n_jobs 1: the label check's default forks a worker pool, which hung a job (bmcore.quality.texts says the same of text)
    label = {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}}
    issue_types = {"label": label, "outlier": dict(near), "near_duplicate": dict(near)}
    with contextlib.redirect_stdout(sys.stderr):  # what Datalab prints is a log line, never the CLI's JSON
        lab.find_issues(pred_probs=probs, features=features, issue_types=issue_types)
    issues = lab.get_issues()
    for kind in ISSUE_TYPES:  # a check Datalab skipped (too few rows) flags nothing
        if f"is_{kind}_issue" not in issues:
            issues[f"is_{kind}_issue"], issues[f"{kind}_score"] = False, 1.0
    if "near_duplicate" in lab.get_issue_summary()["issue_type"].tolist():
        issues["near_duplicate_sets"] = lab.get_issues("near_duplicate")["near_duplicate_sets"].to_numpy()
    return issues.reset_index(drop=True)


def issue_names(issues: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Per row, its issue types in words ("label issue, near duplicate of Bag/12.png"), or "" when it has none;
    ``names`` name the rows (a near duplicate names the first of its others)."""
    flags = {kind: issues[f"is_{kind}_issue"].to_numpy(dtype=bool) for kind in ISSUE_TYPES}
    sets = issues["near_duplicate_sets"] if "near_duplicate_sets" in issues else None
    out = []
    for i in range(len(issues)):
        words = [ISSUE_NAMES[k] for k in ISSUE_TYPES if flags[k][i]]
        others = list(sets.iat[i]) if sets is not None and flags["near_duplicate"][i] else []
        if others:
            words[-1] += f" of {names[int(others[0])]}" + (f" and {len(others) - 1} more" if len(others) > 1 else "")
        out.append(", ".join(words))
    return out


def score_images(ds: PreparedDataset, rows: pd.DataFrame, labels: np.ndarray, *, embed: Embed,
                 top_class: Callable[[np.ndarray], Any], encoder: str, folds: int, seed: int, precision: str,
                 report: Progress) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The label-quality scores of an image dataset's ``rows`` (:func:`bmcore.quality.job.score_dataset`), its images
    embedded by ``embed`` (the image task's :func:`bmcore.modalities.image.embed_images`), each one's
    suggested label by ``top_class`` (the task's :meth:`bmcore.tasks.base.Task.top_class`): the columns every result
    has, plus ``near_duplicate``, ``issues`` (in words), ``review`` and ``review_score``; no conflicts
    table (a near duplicate is reviewed as a flag); and the summary's extra keys."""
    t0 = time.perf_counter()
    images = [b for split in rows["split"].unique() for b in ds.splits[split]["image"]]  # PNG bytes (bmcore.images)
    features = embed(images, encoder, precision=precision,
                            names=[f"{t} ({s} split)" for s, t in zip(rows["split"], rows["text"], strict=True)],
                            progress=lambda d, t: report(d, t, f"Embedding {d:,} of {t:,} images with {encoder}..."))
    embed_s = time.perf_counter() - t0
    with one_thread():  # a threaded lbfgs fit of 240 x 1,280 took 1.9 s on a busy 2-core machine, one thread 0.11 s
        probs = out_of_fold_probs(features, labels, len(ds.label_names), folds=folds, seed=seed, c=IMAGE_LOGREG_C,
                                  progress=lambda d, t: report(d, t, f"Cross-validating: fold {d} of {t}..."))
    report(1, 1, "Finding label issues, outliers and near duplicates...")
    issues = find_image_issues([ds.label_names[i] for i in labels], probs, features)
    n = len(rows)
    suggested = top_class(probs)
    flags = issues[[f"is_{kind}_issue" for kind in ISSUE_TYPES]].to_numpy(dtype=bool)
    worst = issues[[f"{kind}_score" for kind in ISSUE_TYPES]].to_numpy(dtype=float)
    scores = rows.assign(
        suggested=[ds.label_names[i] for i in suggested],
        confidence=probs[np.arange(n), suggested],
        p_given=probs[np.arange(n), labels],
        quality=issues["label_score"].to_numpy(dtype=float),
        issue=flags[:, 0],
        outlier_score=1.0 - issues["outlier_score"].to_numpy(dtype=float),  # as for texts: higher is farther out
        outlier=flags[:, 1],
        conflict=False,
        near_duplicate=flags[:, 2],
        issues=issue_names(issues, rows["text"].astype(str).tolist()),
        review=flags.any(axis=1),
        review_score=np.where(flags, worst, 1.0).min(axis=1),  # its worst flagged score: 0 is the most doubtful
    )
    return scores, pd.DataFrame(), {"near_duplicates": int(flags[:, 2].sum()), "embed_seconds": round(embed_s, 1)}
