"""The Evaluate page's results sections, by key: every section module's drawers in one registry. A task names its
sections (:attr:`bmcore.tasks.base.Task.evaluate_sections`), its modality may leave some out
(:meth:`bmcore.modalities.base.Modality.evaluate_sections`), and the page draws ``DRAWERS[key](scored)`` for each."""

from pages import _evaluation, _multilabel, _regression

DRAWERS = {**_evaluation.DRAWERS, **_multilabel.DRAWERS, **_regression.DRAWERS}
