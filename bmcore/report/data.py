"""What the Data page shows of a dataset, worked out: chart frames, tables, the label shapes' names and the command.

Plain frames and strings from :mod:`bmcore.data`'s stats and workspace listing; the page only draws them.
"""

from __future__ import annotations

import shlex
from typing import Any

import numpy as np
import pandas as pd

from ..data.dataset import SPLITS, PreparedDataset
from ..data.storage import list_prepared
from ..errors import BmcoreError
from ..models import DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MODEL

LABEL_SHAPES = {"single": "One label per row", "delimited": "Several labels in one column",
                "columns": "One 0/1 column per label",
                "score": "A score per row (regression)"}  # keyed by bmcore.data.columns.label_shape


def score_histogram_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """A score dataset's targets per split on shared bins, long form (``split``, ``score`` = the bin's middle, ``rows``),
    for a grouped bar chart; empty for a dataset of classes."""
    hist = stats.get("score_histogram") or {}
    edges = np.asarray(hist.get("edges") or [], dtype=float)
    middles = (edges[:-1] + edges[1:]) / 2 if len(edges) > 1 else []
    rows = [{"split": s, "score": float(m), "rows": int(c)}
            for s, counts in (hist.get("counts") or {}).items() for m, c in zip(middles, counts, strict=False)]
    return pd.DataFrame(rows, columns=["split", "score", "rows"])


def score_summary_text(stats: dict[str, Any]) -> str:
    """``train: mean 2.70, sd 1.47, 0 to 5 · ...``: each split's scores in one line."""
    parts = [f"{s}: mean {v['mean']:.3g}, sd {v['std']:.3g}, {v['min']:g} to {v['max']:g}"
             for s, v in (stats.get("score_summary") or {}).items() if v.get("count")]
    return " · ".join(parts)


def class_balance_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Rows per split and class in long form (``split``, ``label``, ``count``), for a grouped bar chart."""
    rows = [{"split": s, "label": n, "count": int(c)}
            for s, counts in stats.get("class_counts", {}).items() for n, c in counts.items()]
    return pd.DataFrame(rows, columns=["split", "label", "count"])


def token_length_frame(ds: PreparedDataset) -> pd.DataFrame:
    """Token count of every example in every split (``split``, ``label``, ``n_tokens``).

    Needs :func:`~bmcore.data.stats.compute_stats` with a tokenizer first (it adds the ``n_tokens`` column).
    """
    if any("n_tokens" not in ds.splits[s] for s in SPLITS):
        raise BmcoreError("token lengths were not computed; compute the stats with a tokenizer first")
    return pd.concat([ds.splits[s][["label", "n_tokens"]].assign(split=s) for s in SPLITS], ignore_index=True)


def class_weights_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Suggested class weights (inverse class frequency in train) with the train counts they come from.

    Empty for multi-label data, which has no class weights.
    """
    weights = stats.get("class_weights", {})
    train = stats.get("class_counts", {}).get("train", {}) if weights else {}
    return pd.DataFrame([{"label": n, "train examples": int(c), "suggested weight": weights.get(n)} for n, c in train.items()],
                        columns=["label", "train examples", "suggested weight"])


def prepared_frame(items: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """The datasets in the workspace as a table: name, version, source, classes, rows per split, created."""
    items = list_prepared() if items is None else items
    rows = [{"name": m.get("name"), "version": _version_text(m.get("version")), "source": m.get("source"),
             "classes": len(m.get("label_names", [])), **{s: m.get("splits", {}).get(s) for s in SPLITS},
             "created": m.get("created")} for m in items]
    return pd.DataFrame(rows, columns=["name", "version", "source", "classes", *SPLITS, "created"])


def _version_text(version: Any) -> str:
    """``v2 of sst2 (12 relabelled, 3 dropped)`` for a reviewed version, ``v2 of news (labelled in project news)``
    for a labelling project's export, ``""`` for an original."""
    if not isinstance(version, dict):
        return ""
    if version.get("labelling"):
        return f"v{version.get('number')} of {version.get('parent')} (labelled in project {version['labelling']})"
    return (f"v{version.get('number')} of {version.get('parent')} "
            f"({version.get('relabelled', 0)} relabelled, {version.get('dropped', 0)} dropped)")


def prepare_command(source: str, name: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
                    label_columns: list[str] | None = None, label_delimiter: str | None = None, single_label: bool = False,
                    scores: bool = False,
                    use_source_splits: bool = True, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42,
                    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH, tokenizer: str = DEFAULT_MODEL, sheet: str | None = None,
                    test_file: str | None = None, drop_duplicates: bool = False) -> str:
    """The ``python -m bmcore data prepare ...`` command that reproduces these choices (defaults left out)."""
    parts = ["python", "-m", "bmcore", "data", "prepare", source, "--name", name]
    for c in text_columns or []:
        parts += ["--text-column", c]
    if label_column:
        parts += ["--label-column", label_column]
    if label_columns:
        parts += ["--label-columns", ",".join(label_columns)]
    if label_delimiter:
        parts += ["--label-delimiter", label_delimiter]
    if single_label:
        parts.append("--single-label")
    if scores:
        parts += ["--problem-type", "regression"]
    if not use_source_splits:
        parts.append("--new-splits")
    if tuple(round(r, 6) for r in ratios) != (0.8, 0.1, 0.1):
        parts += ["--ratios", *(f"{r:g}" for r in ratios)]
    if seed != 42:
        parts += ["--seed", str(seed)]
    if max_seq_length != DEFAULT_MAX_SEQ_LENGTH:
        parts += ["--max-seq-length", str(max_seq_length)]
    if tokenizer != DEFAULT_MODEL:
        parts += ["--tokenizer", tokenizer]
    if sheet:
        parts += ["--sheet", sheet]
    if test_file:
        parts += ["--test-file", test_file]
    if drop_duplicates:
        parts.append("--drop-duplicates")
    return shlex.join(parts)


def length_axis_max(stats: dict[str, Any]) -> int:
    """A histogram x-axis limit that shows max_seq_length and most texts, not the longest outlier."""
    p95 = max((v.get("p95", 0) for v in stats.get("token_lengths", {}).values()), default=0)
    return int(max(stats.get("max_seq_length", 0) * 1.5, p95 * 1.2, 16))


def cooccurrence_frame(stats: dict[str, Any], label_names: list[str], diagonal: bool = True) -> pd.DataFrame:
    """The label co-occurrence matrix as a labelled square frame (rows having both labels), for a heatmap.

    ``diagonal=False`` blanks each label's own count, which would otherwise set the colour scale alone.
    """
    if "cooccurrence" not in stats:
        return pd.DataFrame()
    frame = pd.DataFrame(stats["cooccurrence"], index=label_names, columns=label_names, dtype=float)
    return frame if diagonal else frame.mask(np.eye(len(label_names), dtype=bool))


def labels_per_row_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Rows per number of labels and split (``split``, ``labels``, ``rows``), for a bar chart of the cardinality."""
    rows = [{"split": s, "labels": int(k), "rows": c} for s, d in stats.get("labels_per_row", {}).items() if s != "all"
            for k, c in d["histogram"].items()]
    return pd.DataFrame(rows, columns=["split", "labels", "rows"])
