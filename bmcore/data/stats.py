"""Stats: what a prepared dataset holds, measured, and the warnings a newcomer needs before training on it.

Rows per split and class, duplicates within and across splits (leakage), tiny classes, the imbalance and suggested
class weights, what the task measures of its labels (multi-label cardinality and co-occurrence, a score's histogram:
:mod:`bmcore.data.label_stats`), and what the modality measures of its inputs (token lengths against
``max_seq_length`` with the tokenizer the model will use, image sizes) (:func:`compute_stats`); plain-language
warnings from them (:func:`warnings_for`).
All plain JSON-ready data, saved in ``dataset.json``; :mod:`bmcore.report.data` turns them into chart frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ..modalities import get_modality
from ..models import DEFAULT_MAX_SEQ_LENGTH
from ..tasks import get_task
from .dataset import SPLITS, PreparedDataset
from .label_stats import MIN_CLASS_EXAMPLES
from .label_values import label_notices


def compute_stats(ds: PreparedDataset, tokenizer: Any = None, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                  tokenizer_name: str = "", progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Stats for a prepared dataset, as plain JSON-ready data.

    Rows per split and class, dropped empties, duplicates within and across splits
    (leakage), tiny classes, the imbalance ratio and suggested class weights; the task adds what its labels hold
    (:meth:`bmcore.tasks.base.Task.label_stats`), the modality what its inputs do (token lengths per class with the
    share truncated at ``max_seq_length``, image sizes: :meth:`bmcore.modalities.base.Modality.input_stats`).
    Counting tokens is the slow part: ``progress(done, total)`` is called as rows are counted.
    """
    task = get_task(ds.problem_type, ds.modality)
    per_split = {s: task.label_counts(ds.splits[s], ds.label_names) for s in SPLITS}
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
    stats.update(task.label_stats({s: ds.splits[s] for s in SPLITS}, ds.label_names))
    stats.update(get_modality(ds.modality).input_stats(ds, task, tokenizer, max_seq_length, tokenizer_name, progress))
    ds.stats = stats
    return stats


def warnings_for(stats: dict[str, Any]) -> list[str]:
    """Plain-language warnings from stats: duplicates, leakage, tiny classes, imbalance, truncation."""
    out = []
    what = get_modality(stats.get("modality")).input_noun
    task = get_task(stats.get("problem_type"))
    dups = {s: n for s, n in stats.get("duplicates_within", {}).items() if n}
    if dups:
        out.append(f"exact duplicate {what} within splits: " + ", ".join(f"{s} {n}" for s, n in dups.items()))
    leak = {p: n for p, n in stats.get("leakage", {}).items() if n}
    if leak:
        out.append(f"{what} shared across splits (leakage, inflates scores): " + ", ".join(f"{p} {n}" for p, n in leak.items()))
    if stats.get("rare_labels"):
        out.append(f"labels too rare to split and learn (fewer than {MIN_CLASS_EXAMPLES} rows in all): "
                   + ", ".join(stats["rare_labels"]))
    tiny = [n for n in stats.get("tiny_classes", []) if n not in stats.get("rare_labels", [])]
    if tiny:
        out.append(f"{task.label_nouns[1]} too small to learn or score well (<{MIN_CLASS_EXAMPLES} train "
                   "examples or absent from a split): " + ", ".join(tiny))
    no_label = sum(stats.get("no_label_rows", {}).values())
    if no_label:
        out.append(f"{no_label:,} rows ({no_label / max(stats.get('rows_total', 1), 1):.1%}) have no label; "
                   "the model learns to predict none for texts like them")
    if task.weighs_classes and stats.get("imbalance_ratio", 1) >= 3:  # a remedy of tasks that weigh classes
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
