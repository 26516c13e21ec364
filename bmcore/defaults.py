"""The settings a new run starts from: its task's defaults under what the user set.

Its own module because it needs both the config and the data readers (``bmcore.data`` guards datasets that runs
use, and so reads runs, which read configs): keeping it out of ``bmcore.config`` keeps the imports a tree.
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfig
from .data.resolve import kind_of
from .errors import BmcoreError
from .problem_types import chosen_problem_type
from .tasks import get_task


def task_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a new run of ``settings`` (TrainConfig fields: at least ``dataset``) starts from: its task's
    defaults (:attr:`bmcore.tasks.base.Task.defaults`, e.g. multi-label's or images'), under what ``settings`` set
    themselves."""
    try:
        detected, modality = kind_of(str(settings.get("dataset") or TrainConfig.dataset),
                                     text_columns=settings.get("text_column"), label_column=settings.get("label_column"),
                                     label_columns=settings.get("label_columns"),
                                     label_delimiter=settings.get("label_delimiter"))
        task = get_task(chosen_problem_type(settings.get("problem_type"), detected), modality)
    except (BmcoreError, OSError, ValueError):
        return dict(settings)  # the job reports a bad source in one line; the defaults do not matter then
    return {**task.defaults, **settings}
