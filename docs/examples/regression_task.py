"""An example task, regression: one number per text, mean squared error (README, "Adding a task").

Copy it to ``bmcore/tasks/regression.py`` and add ``"regression": "bmcore.tasks.regression"`` to ``TASKS`` in
``bmcore/tasks/__init__.py``. ``tests/test_tasks.py`` trains a model with it, so this example keeps working.
"""

import numpy as np

from bmcore.errors import BmcoreError
from bmcore.tasks.base import Task


class Regression(Task):
    problem_type = "regression"  # Hugging Face's name: with one output, transformers uses the MSE loss
    title = "Regression"

    def check_dataset(self, dataset):  # any prepared dataset whose labels are numbers
        try:
            dataset.splits["train"]["label"].astype(float)
        except ValueError as exc:
            raise BmcoreError(f"regression needs numeric labels ({exc})") from None

    def label_names(self, dataset):  # one output: the predicted number
        return ["score"]

    def targets(self, df, label_names):  # what Trainer feeds the model as `labels`
        return df["label"].astype(float).tolist()

    def validation_metrics(self, logits, targets, label_names):
        err = np.asarray(logits, dtype=np.float64)[:, 0] - np.asarray(targets, dtype=np.float64)
        return {"mse": float((err**2).mean()), "mae": float(np.abs(err).mean())}

    def split_metrics(self, logits, targets, label_names, meta=None):
        return self.validation_metrics(logits, targets, label_names)

    def scores(self, logits, meta=None, *, calibrated=False):
        return np.asarray(logits, dtype=np.float64)

    def decide(self, scores, label_names, meta=None):
        return [float(s[0]) for s in scores]


TASK = Regression()
