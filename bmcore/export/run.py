"""The finished run an export starts from: checking it, where its exports go, and when an export is stale.

Also what every export shares: the formats, the files left out, a lenient JSON reader, and whether the run's model
reads pictures (its modality says).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import BmcoreError
from ..files import read_json
from ..modalities import modality_of_ref
from ..trainer import TRAINING_ARGS_PICKLE

FORMATS = ("zip", "onnx", "card", "hub")
EXPORT_DIR = "export"
CARD_FILE = "README.md"
# Left out of the zip and the Hub upload: the Trainer's pickled TrainingArguments, which runs saved before bmcore
# stopped keeping it may still hold (the card lists the settings, and the Hub flags pickles).
SKIPPED = (TRAINING_ARGS_PICKLE,)


def finished_run(run: str | Path) -> Path:
    """The folder of a completed run with a saved model, or a one-line :class:`BmcoreError` saying why not."""
    path = Path(run).expanduser()
    if not path.exists() and os.sep not in str(run):
        path = runs.find_run(str(run))  # a run name in the workspace
    if not path.is_dir():
        raise BmcoreError(f"run folder {run} does not exist; give a run folder such as workspace/runs/<name>")
    if not runs.is_run_dir(path):
        raise BmcoreError(f"{run} is not a run folder (no status.json or config.json)")
    state = runs.read_status(path).get("state")
    if state != runs.COMPLETED:
        raise BmcoreError(f"run {path.name} is {state or 'not started'}, not completed; export a finished run")
    if not (path / runs.MODEL_DIR / "config.json").is_file():
        raise BmcoreError(f"run {path.name} has no saved model in {runs.MODEL_DIR}/; train it again")
    return path.resolve()


def export_dir(run_dir: str | Path) -> Path:
    """Where a run's exports go: ``<run>/export``."""
    return Path(run_dir) / EXPORT_DIR


def _model_mtime(model_dir: Path) -> float:
    # The card is derived from the model, so writing it does not make earlier exports stale.
    return max((p.stat().st_mtime for p in model_dir.iterdir() if p.is_file() and p.name != CARD_FILE), default=0.0)


def export_is_fresh(path: Path, model_dir: Path) -> bool:
    """True when ``path`` exists and is no older than the model it was exported from (the card aside)."""
    return path.is_file() and path.stat().st_mtime >= _model_mtime(model_dir)


def read_or_empty(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when it is missing, damaged or not an object: export sections whose
    files are missing say so rather than fail."""
    try:
        return read_json(path)
    except BmcoreError:
        return {}


def is_image_model_folder(model_dir: str | Path) -> bool:
    """True when a model folder holds a classifier of pictures, an image classifier (its ``config.json`` names one):
    its modality says so (:attr:`~bmcore.modalities.base.Modality.pictures`)."""
    try:
        return modality_of_ref(str(model_dir)).pictures
    except (BmcoreError, OSError, ValueError):
        return False
