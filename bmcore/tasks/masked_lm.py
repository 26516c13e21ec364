"""Masked-language-model pretraining: continue a base model's pretraining on the texts of a dataset.

Its job is :func:`bmcore.pretrain.train_mlm` (no labels, no classification head); the queue, status, cancel and
resume are the same as for every task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Task


class MaskedLM(Task):
    problem_type = "masked_lm"
    title = "Masked-language-model pretraining"
    own_job = True

    def run(self, run_dir: Path, config: Any, resume: bool, main: bool) -> dict[str, Any]:
        from ..pretrain import train_mlm

        return train_mlm(run_dir, config, resume, main)


TASK = MaskedLM()
