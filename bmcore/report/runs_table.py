"""The runs table: one row per run, every cell text."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..run_list import RunSummary, list_runs, short_model

COLUMNS = ["name", "model", "dataset", "state", "best metric", "test score", "duration (s)", "created"]


def cell(value: float | None, spec: str) -> str:
    """A number formatted for a table cell, ``-`` where there is none."""
    return "-" if value is None else format(value, spec)


def runs_frame(rows: list[RunSummary] | None = None) -> Any:
    """The runs table as a ``pandas.DataFrame``: name, model, dataset, state, best metric, test score (the figure
    that sums up the test split, named: ``0.912 accuracy``, ``0.871 pearson``), duration (s), created.

    Every cell is text, ``-`` where a run has no value yet (queued, running, failed), never ``None``."""
    rows = list_runs() if rows is None else rows
    data = [{"name": r.name, "model": short_model(r.model) or "-", "dataset": r.dataset or "-", "state": r.state,
             "best metric": f"{r.best_metric} {r.best_value:.4f}" if r.best_value is not None else "-",
             "test score": f"{r.test_score:.3f} {r.test_metric}" if r.test_score is not None else "-",
             "duration (s)": cell(r.duration_s, ".0f"), "created": r.created or "-"} for r in rows]
    return pd.DataFrame(data, columns=COLUMNS)
