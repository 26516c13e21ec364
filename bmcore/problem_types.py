"""The kinds of problem a model learns, named as Hugging Face's ``config.problem_type`` names them.

A leaf module (it imports nothing of bmcore), so the tasks (:mod:`bmcore.tasks`, which say what each kind means) and
the data layer (:mod:`bmcore.data`, which detects a dataset's kind) can both name them without a circle.
"""

from __future__ import annotations

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
MASKED_LM = "masked_lm"
REGRESSION = "regression"
# What a dataset or model that names no problem type learns (Hugging Face's default, one class per example).
DEFAULT_PROBLEM_TYPE = SINGLE_LABEL

# What a dataset's label shape (bmcore.data.columns.label_shape: how the labels are written in the file) is learnt as.
PROBLEM_TYPE_OF_SHAPE = {"single": SINGLE_LABEL, "delimited": MULTI_LABEL, "columns": MULTI_LABEL, "score": REGRESSION}
# What a fine-tune learns (``TrainConfig.problem_type``; "auto" takes the dataset's); masked LM is pretraining's own.
FINE_TUNE_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
AUTO = "auto"  # a run's problem_type that leaves the choice to its dataset


def chosen_problem_type(requested: str | None, detected: str | None) -> str | None:
    """What a run learns: the problem type it asks for, or with ``auto`` (or none) the one its data was detected as."""
    return detected if requested in (None, "", AUTO) else requested

# The problem types a user may ask ``data prepare`` for, and the label shape each forces (None: detect which of its
# shapes the file holds).
PREPARED_SHAPES = {SINGLE_LABEL: "single", MULTI_LABEL: None, REGRESSION: "score"}
