"""A label-quality result and where it is stored: with its dataset, in ``datasets/NAME/quality/``
(``scores.parquet``, ``conflicts.parquet``, ``summary.json``), carrying the dataset's content hash: a dataset
prepared again reads as not scored.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.storage import dataset_dir, is_prepared
from ..errors import BmcoreError
from ..files import read_json, write_json_atomic

QUALITY_DIR = "quality"
SCORES_FILE = "scores.parquet"
CONFLICTS_FILE = "conflicts.parquet"
SUMMARY_FILE = "summary.json"


@dataclass
class QualityResult:
    """Scores for every row (``scores``), conflicting near-duplicate pairs (``conflicts``) and a ``summary``."""

    scores: pd.DataFrame
    conflicts: pd.DataFrame
    summary: dict[str, Any]

    def flagged(self, split: str | None = None) -> pd.DataFrame:
        """Rows to review, the most doubtful first (optionally of one split): those that look mislabeled, lowest
        quality first; for images also outliers and near duplicates (``review``), by their worst issue score."""
        review, order = ("review", "review_score") if "review" in self.scores else ("issue", "quality")
        rows = self.scores[self.scores[review]]
        if split is not None:
            rows = rows[rows["split"] == split]
        return rows.sort_values(order, kind="stable")


def quality_dir(name: str) -> Path:
    """Where a dataset's label-quality result is stored."""
    return dataset_dir(name) / QUALITY_DIR


def save_quality(name: str, result: QualityResult) -> Path:
    """Store a result with its dataset, atomically (a temporary folder, then a rename)."""
    base = dataset_dir(name)
    if not base.is_dir():
        raise BmcoreError(f"no prepared dataset named {name!r} in the workspace")
    tmp = Path(tempfile.mkdtemp(prefix=f".{QUALITY_DIR}.", dir=base))
    try:
        result.scores.to_parquet(tmp / SCORES_FILE, index=False)
        result.conflicts.to_parquet(tmp / CONFLICTS_FILE, index=False)
        write_json_atomic(tmp / SUMMARY_FILE, result.summary)
        target = quality_dir(name)
        if target.exists():
            old = base / f".{QUALITY_DIR}.old-{time.time_ns()}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return quality_dir(name)


def load_quality(name: str) -> QualityResult | None:
    """A dataset's stored label-quality result, or None when it was never scored or was prepared again since."""
    folder = quality_dir(name)
    if not (folder / SUMMARY_FILE).is_file() or not is_prepared(name):
        return None
    try:
        summary = read_json(folder / SUMMARY_FILE)
        meta = read_json(dataset_dir(name) / "dataset.json")
        if summary.get("content_hash") != meta.get("content_hash"):
            return None
        return QualityResult(pd.read_parquet(folder / SCORES_FILE), pd.read_parquet(folder / CONFLICTS_FILE), summary)
    except (BmcoreError, OSError, ValueError):
        return None
