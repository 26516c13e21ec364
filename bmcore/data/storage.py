"""Storage: prepared datasets in the workspace, as Parquet plus ``dataset.json`` under ``<workspace>/datasets/<name>/``.

Saved atomically (a temporary folder, then a rename), listed, loaded by name; a dataset that runs were trained on
is not replaced unless asked (:func:`check_replace`), since their evaluation and explanations read its splits.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BmcoreError, os_error_message
from ..files import read_json
from ..problem_types import DEFAULT_PROBLEM_TYPE
from ..workspace import check_name, datasets_dir, inside, runs_dir
from .columns import Columns
from .dataset import SPLITS, PreparedDataset

DATASET_META = "dataset.json"


def dataset_dir(name: str) -> Path:
    """The workspace folder of a prepared dataset (the name is checked for safety)."""
    return inside(datasets_dir(), check_name(name, "dataset name"))


class DatasetExists(BmcoreError):
    """A dataset of that name exists and may not be replaced (:func:`save_prepared`)."""


def runs_using(name: str) -> list[str]:
    """``"run (state)"`` for each run in the workspace whose ``config.json`` names the prepared dataset ``name``.

    Read from the run folders' files directly, not through :mod:`bmcore.runs`: that module reads configs through
    :mod:`bmcore.config`, which reads this one. A run whose config cannot be read is not counted (it names no
    dataset one could trust); one whose status cannot be read counts, as damaged.
    """
    used = []
    for config_file in sorted(runs_dir().glob("*/config.json")):
        try:
            if read_json(config_file).get("dataset") != name:
                continue
        except BmcoreError:
            continue
        try:
            state = str(read_json(config_file.parent / "status.json").get("state", "unknown"))
        except BmcoreError:
            state = "damaged"
        used.append(f"{config_file.parent.name} ({state})")
    return used


def check_replace(name: str, overwrite: bool | None = None, hint: str = "save it under another name") -> None:
    """Refuse to replace the prepared dataset ``name`` when runs were trained on it (their evaluation and
    explanations read its splits, so new data under the old name breaks them), unless ``overwrite`` is True;
    with ``overwrite`` False, refuse any existing dataset. Raises :class:`DatasetExists`."""
    if overwrite or not dataset_dir(name).exists():
        return
    if overwrite is False:
        raise DatasetExists(f"a dataset named {name!r} already exists; choose another name")
    used = runs_using(name)
    if used:
        names = ", ".join(used[:3]) + (", ..." if len(used) > 3 else "")
        raise DatasetExists(f"dataset {name!r} is used by run {names}; replacing it would change the data those runs "
                            f"are evaluated on: {hint}")


def save_prepared(ds: PreparedDataset, overwrite: bool | None = None) -> Path:
    """Save a prepared dataset as Parquet plus ``dataset.json``, atomically (a temp folder, then a rename).

    An existing dataset of the same name is replaced only when no run was trained on it (``overwrite`` None, the
    default), never (False: the name must be free, and is claimed atomically, so two concurrent saves cannot both
    take it), or even when runs use it (True: the CLI's ``--overwrite``). Refusals raise :class:`DatasetExists`.
    """
    target = dataset_dir(ds.name)
    check_replace(ds.name, overwrite)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{ds.name}.", dir=datasets_dir()))
    except OSError as exc:  # a read-only workspace: name the folder, not the temporary one
        raise BmcoreError(f"cannot save dataset {ds.name!r}: {os_error_message(exc, datasets_dir())}") from exc
    claimed = False
    try:
        for split, df in ds.splits.items():
            df.to_parquet(tmp / f"{split}.parquet", index=False)
        (tmp / DATASET_META).write_text(json.dumps(ds.describe(), indent=2, default=_json_default), encoding="utf-8")
        if overwrite is False:
            try:  # mkdir claims the name (one winner); the rename then swaps the empty folder for the full one
                os.mkdir(target)
            except FileExistsError:
                raise DatasetExists(f"a dataset named {ds.name!r} already exists; choose another name") from None
            claimed = True
            os.replace(tmp, target)
        elif target.exists():
            check_replace(ds.name, overwrite)  # again: a run may have started on it while the files were written
            old = target.with_name(f".{ds.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if claimed and not (target / DATASET_META).exists():
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def list_prepared() -> list[dict[str, Any]]:
    """Descriptions of every prepared dataset in the workspace, newest first. Unreadable ones are skipped."""
    out = []
    for d in datasets_dir().iterdir():
        meta = d / DATASET_META
        if d.name.startswith(".") or not meta.is_file():
            continue
        try:
            out.append(read_json(meta))
        except BmcoreError:
            continue
    return sorted(out, key=lambda m: m.get("created", ""), reverse=True)


def is_prepared(name: str) -> bool:
    """True when ``name`` is a prepared dataset in the workspace."""
    try:
        return (dataset_dir(name) / DATASET_META).is_file()
    except BmcoreError:
        return False


def load_prepared(name: str) -> PreparedDataset:
    """Load a prepared dataset from the workspace by name."""
    folder = dataset_dir(name)
    meta_path = folder / DATASET_META
    if not meta_path.is_file():
        raise BmcoreError(f"no prepared dataset named {name!r} in the workspace")
    meta = read_json(meta_path, f"prepared dataset {name!r}", "prepare it again")
    try:
        splits = {s: pd.read_parquet(folder / f"{s}.parquet") for s in SPLITS}
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"prepared dataset {name!r} is damaged ({exc.__class__.__name__}); prepare it again") from exc
    cols = Columns(meta["text_columns"], meta["label_column"], label_columns=meta.get("label_columns"),
                   label_delimiter=meta.get("label_delimiter"), scores=bool(meta.get("scores")))
    return PreparedDataset(name=meta["name"], source=meta.get("source", ""), columns=cols,
                           label_names=list(meta["label_names"]), splits=splits,
                           notes=meta.get("notes", []), stats=meta.get("stats", {}), version=meta.get("version"),
                           problem_type=meta.get("problem_type", DEFAULT_PROBLEM_TYPE), modality=meta.get("modality", "text"))
