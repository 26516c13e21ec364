"""A prepared dataset: standard columns, label names in order, and three splits, ready for training.

Its ``text`` column (and ``text_pair`` for pairs) holds the texts, ``label`` the class name as a string, or for
multi-label data a JSON list of names in ``label_names`` order (:func:`bmcore.data.label_values.encode_label_set`,
``[]`` for none); image data has ``image`` (PNG bytes), ``label``, ``sha256`` and ``path`` (:mod:`bmcore.images`).
Made by :func:`bmcore.data.preparation.prepare`, saved and loaded by :mod:`bmcore.data.storage`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..problem_types import DEFAULT_PROBLEM_TYPE
from .columns import Columns

SPLITS = ("train", "validation", "test")
FILE_ROW = "file_row"  # a prepared text row's row in its source file, from 1 after the header (kept for review)


@dataclass
class PreparedDataset:
    """A dataset ready for training: standard columns, label names in order, and three splits."""

    name: str
    source: str
    columns: Columns
    label_names: list[str]
    splits: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    dropped_empty: dict[str, int] = field(default_factory=dict)
    version: dict[str, Any] | None = None  # a reviewed version: number, parent, changes (bmcore.quality.save_version)
    problem_type: str = DEFAULT_PROBLEM_TYPE  # its task (bmcore.tasks.get_task) says how ``label`` is read
    modality: str = "text"  # or "image": columns image (PNG bytes), label, sha256, path (bmcore.images)

    @property
    def is_pair(self) -> bool:
        """True for text-pair data (premise/hypothesis and the like)."""
        return len(self.columns.text) == 2

    def content_hash(self) -> str:
        """A short hash of every split's text and labels, to tell datasets apart."""
        h = hashlib.sha256()
        for split in SPLITS:
            df = self.splits[split]
            h.update(split.encode())
            h.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """The JSON description saved next to the Parquet files."""
        return {
            "name": self.name,
            "source": self.source,
            "text_columns": self.columns.text,
            "label_column": self.columns.label,
            **({"label_columns": self.columns.label_columns} if self.columns.label_columns else {}),
            **({"label_delimiter": self.columns.label_delimiter} if self.columns.label_delimiter else {}),
            **({"scores": True} if self.columns.scores else {}),
            "problem_type": self.problem_type,
            "modality": self.modality,
            "label_names": self.label_names,
            "is_pair": self.is_pair,
            "splits": {s: int(len(self.splits[s])) for s in SPLITS},
            "content_hash": self.content_hash(),
            "notes": self.notes,
            "stats": self.stats,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **({"version": self.version} if self.version else {}),
        }
