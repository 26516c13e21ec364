"""Masked-language-model pretraining: continue a base model's pretraining on the texts of a dataset.

Its training loop is :func:`bmcore.pretrain.train_mlm` (no labels, no classification head), named by ``loop``; the
queue, status, cancel and resume are the same as for every task.
"""

from __future__ import annotations

from .base import Task


class MaskedLM(Task):
    problem_type = "masked_lm"
    title = "Masked-language-model pretraining"
    loop = "pretrain"


TASK = MaskedLM()
