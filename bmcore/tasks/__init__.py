"""Tasks: what a model learns, one module each, named by Hugging Face's ``config.problem_type``.

A task says everything that differs between kinds of problem, and nothing else: how a prepared dataset's labels
become model targets, how the model is built (its head and ``problem_type``), the collator, the loss, the
validation metrics, how logits become scores and predicted labels, what is tuned after training (a temperature,
per-label thresholds), and how a split is scored for the Evaluate page. The training job (:mod:`bmcore.train`),
the Trainer plumbing (:mod:`bmcore.trainer`), the run folder, the queue, cancel and resume know no task: they ask
:func:`get_task`.

Adding a task: write ``bmcore/tasks/<problem_type>.py`` defining a :class:`~bmcore.tasks.base.Task` subclass and a
module-level ``TASK`` instance, then add one line to :data:`TASKS`. A task for another kind of input (images) keeps
Hugging Face's ``problem_type`` and is registered by modality in :data:`IMAGE_TASKS`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import BmcoreError
from ..modalities import modality_of
from ..problem_types import MASKED_LM, MULTI_LABEL, REGRESSION, SINGLE_LABEL
from .base import Task

TASKS: dict[str, str] = {  # problem_type -> the module that defines its TASK
    SINGLE_LABEL: "bmcore.tasks.single_label_classification",
    MULTI_LABEL: "bmcore.tasks.multi_label_classification",
    MASKED_LM: "bmcore.tasks.masked_lm",
    REGRESSION: "bmcore.tasks.regression",
}
IMAGE_TASKS: dict[str, str] = {  # problem_type -> the module of its task on images (a prepared dataset's modality "image")
    SINGLE_LABEL: "bmcore.tasks.image_classification",
}


def get_task(problem_type: str | None = None, modality: str | None = None) -> Task:
    """The task for ``problem_type`` (None or empty: single-label classification, Hugging Face's default) on inputs
    of ``modality`` ("text", the default, or "image")."""
    name = problem_type or SINGLE_LABEL
    registry = IMAGE_TASKS if modality == "image" else TASKS
    if name not in registry:
        if modality == "image" and name in TASKS:
            raise BmcoreError(f"image data supports {', '.join(IMAGE_TASKS)}, not {name}")
        raise BmcoreError(f"unknown problem_type {name!r}; one of {', '.join(registry)}")
    return importlib.import_module(registry[name]).TASK


def task_of_model(model_or_config: Any) -> Task:
    """The task a loaded model (or its ``config``) was trained for, from ``config.problem_type`` and its architecture."""
    config = getattr(model_or_config, "config", model_or_config)
    return get_task(getattr(config, "problem_type", None), modality_of(model_or_config).name)


__all__ = ["IMAGE_TASKS", "MASKED_LM", "MULTI_LABEL", "SINGLE_LABEL", "TASKS", "Task", "get_task",
           "task_of_model"]
