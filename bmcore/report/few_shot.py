"""What the Train page says about few-shot training (:mod:`bmcore.fewshot`): the concept in two sentences, and a
suggestion when a prepared dataset's training split has few examples per class."""

from __future__ import annotations

from typing import Any

from ..fewshot import few_shot_reason
from ..tasks import get_task

# Measured on emotion (6 classes, builtin:minilm, official test split; README "Few labels"), few-shot training with the
# class names as examples (the default) against the fine-tuning defaults on the same rows: it won at 8 and 16 training
# examples per class (+18.0 and +14.1 points, three seeds) and at 32 (+3.4, three seeds, two of them won), and lost at
# 64 (-8.8, two seeds, both lost; bench/few-shot-emotion-crossover-names-2026-12-07.md). Few-shot training stops at 120
# steps of pairs whatever the rows; fine-tuning keeps gaining. The page suggests it up to 32, the largest size where
# it was measured to win.
CROSSOVER_PER_CLASS = 32

FEW_SHOT_EXPLAINED = (
    "**Few-shot training** (SetFit) is for a few dozen labelled examples per class: instead of teaching a fresh "
    "classification head from so few rows, it first trains the model on **pairs** of your examples (same class or "
    "not), so that texts of one class end up close together, then fits a logistic regression on those embeddings. "
    "The saved model is an ordinary classifier: Evaluate, Playground, predict and every export open it.")


def few_shot_offered(meta: dict[str, Any]) -> bool:
    """True when few-shot training can train a prepared dataset (its ``dataset.json``): a classifier of single texts."""
    try:
        task = get_task(meta.get("problem_type"), meta.get("modality"))
    except Exception:  # noqa: BLE001 - a damaged dataset.json: the run refuses it in one line
        return False
    return not few_shot_reason(task, two_texts=len(meta.get("text_columns") or ()) > 1)


def per_class_train(meta: dict[str, Any]) -> int | None:
    """The training examples of the dataset's median class (its ``dataset.json`` statistics), else the training rows
    over the classes; None if unknown."""
    counts = ((meta.get("stats") or {}).get("class_counts") or {}).get("train") or {}
    values = sorted(int(v) for v in counts.values() if isinstance(v, (int, float)))
    if values:
        return values[len(values) // 2]
    train, labels = (meta.get("splits") or {}).get("train"), meta.get("label_names") or ()
    return int(train) // len(labels) if isinstance(train, int) and labels else None


def few_shot_suggestion(meta: dict[str, Any]) -> str:
    """A suggestion to train few-shot, when the median class has at most :data:`CROSSOVER_PER_CLASS` training
    examples; "" otherwise, or when few-shot cannot train the dataset."""
    per_class = per_class_train(meta)
    if per_class is None or per_class > CROSSOVER_PER_CLASS or not few_shot_offered(meta):
        return ""
    return (f"This training split has about {per_class} examples per class: few-shot training usually beats "
            "fine-tuning here (measured on emotion: it won at 8, 16 and 32 examples per class, fine-tuning won at 64). "
            "Turn on **Few-shot training** to use it.")
