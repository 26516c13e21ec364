"""The Hugging Face Inference API's answer shapes, from a batch of logits and the model's task.

Per input a list of ``{"label", "score"}``, best first, as ``transformers.pipeline(..., top_k=None)`` gives it: the
scores are the task's own (class probabilities; a multi-label model's per-label sigmoid; a regression model's score
in the data's units, under its one label name) unless ``function_to_apply`` asks for softmax, sigmoid or none of the
logits. A task that decides by thresholds (multi-label) adds to every label its ``threshold`` and whether it is
``predicted`` (its own score reaches the threshold): the labels that are on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tasks.base import apply_function


def label_scores(logits: np.ndarray, task: Any, label_names: Sequence[str], meta: dict[str, Any], *,
                 top_k: int | None = None, function_to_apply: str | None = None) -> list[list[dict[str, Any]]]:
    """One answer per row of ``logits`` [n, outputs] (see the module), each cut to its ``top_k`` best."""
    logits = np.asarray(logits, dtype=np.float32)
    own = task.scores(logits, meta)
    shown = own if function_to_apply is None else apply_function(logits, function_to_apply)
    thresholds = task.thresholds(label_names, meta)
    decisions = task.decide(own, label_names, meta) if thresholds is not None else [None] * len(logits)
    answers = []
    for row, decision in zip(shown, decisions, strict=True):
        items = [{"label": str(name), "score": float(score)} for name, score in zip(label_names, row, strict=True)]
        if thresholds is not None:
            on = set(decision if isinstance(decision, list) else [decision])
            for item, t in zip(items, thresholds, strict=True):
                item.update(threshold=float(t), predicted=item["label"] in on)
        items.sort(key=lambda d: d["score"], reverse=True)
        answers.append(items[:top_k] if top_k is not None else items)
    return answers
