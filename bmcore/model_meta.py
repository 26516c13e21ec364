"""The ``bmcore.json`` saved next to a model: temperature, thresholds, max_seq_length, dataset.

Training writes it, evaluation adds to it, inference and export read it. It imports no task, so training
(:mod:`bmcore.trainer`) can write it without depending on inference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import BmcoreError
from .files import read_json, write_json_atomic

MODEL_META = "bmcore.json"  # extra facts saved next to a model: temperature, thresholds, max_seq_length, dataset


def read_model_meta(path: str | Path | None) -> dict[str, Any]:
    """The ``bmcore.json`` saved in a model folder, or {} when there is none or it is unreadable."""
    if path is None or not (Path(path) / MODEL_META).is_file():
        return {}
    try:
        return read_json(Path(path) / MODEL_META)
    except BmcoreError:
        return {}


def saved_temperature(meta: dict[str, Any]) -> float | None:
    """The temperature in a model's ``bmcore.json``, or None when none is saved (null or absent: the file's
    ``temperature_reason`` says why). Anything but a finite number above 0 is a one-line error: fitting never writes
    one, so the file is damaged, and a guessed value would skew every calibrated score."""
    t = meta.get("temperature")
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise BmcoreError(f"the model's bmcore.json is damaged: its temperature must be a positive number, not "
                          f"{str(t)[:40]!r}; remove it, or evaluate the model again with --save-temperature")
    return float(t)


def write_model_meta(path: str | Path, **updates: Any) -> dict[str, Any]:
    """Merge ``updates`` into a model folder's ``bmcore.json`` (written atomically)."""
    meta = read_model_meta(path) | updates
    write_json_atomic(Path(path) / MODEL_META, meta)
    return meta
