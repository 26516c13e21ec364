"""Reviewed label changes and the new versions they make: fixing labels never touches a dataset itself;
:func:`save_version` writes a new prepared dataset (``NAME-v2``...) whose ``dataset.json`` records its parent and
the changes. A changes file is a CSV with ``split``, ``row``, ``action`` (keep/relabel/drop) and ``new_label``
(:func:`bmcore.report.quality.changes_frame` writes one from a page's decisions).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.dataset import SPLITS, PreparedDataset
from ..data.stats import compute_stats
from ..data.storage import DatasetExists, dataset_dir, save_prepared
from ..display import FORMULA_STARTS
from ..errors import BmcoreError
from ..tasks import get_task
from ..workspace import check_regular

ACTIONS = ("keep", "relabel", "drop")
CHANGE_COLUMNS = ("split", "row", "action", "new_label")
VERSION_RE = re.compile(r"^(?P<base>.+)-v(?P<n>\d+)$")
MAX_VERSION_TRIES = 100  # concurrent saves of a new version: names tried before giving up


def _unescape_cell(value: Any) -> str:
    """Undo :func:`bmcore.display.csv_cell`: a label written as ``'-1`` to keep a spreadsheet from computing it."""
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def read_changes(path: str | Path) -> pd.DataFrame:
    """A reviewed list of changes from CSV: columns ``split``, ``row``, ``action`` (keep/relabel/drop), ``new_label``."""
    check_regular(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"cannot read the changes file {Path(path).name}: {str(exc).splitlines()[0][:200]}") from exc
    return frame


def _check_change(ds: PreparedDataset, i: int, rec: dict[str, Any], shown: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Change number ``i`` (a record of the changes table) checked against ``ds`` and made plain."""
    split = _unescape_cell(rec.get("split")) or "train"
    action = _unescape_cell(rec.get("action")).strip().lower()
    label = _unescape_cell(rec.get("new_label"))
    if split not in SPLITS:
        raise BmcoreError(f"change {i}: unknown split {split!r}; one of {', '.join(SPLITS)}")
    try:
        row = int(str(rec.get("row")).strip())
    except ValueError:
        raise BmcoreError(f"change {i}: row {rec.get('row')!r} is not a row number") from None
    if not 0 <= row < len(ds.splits[split]):
        raise BmcoreError(f"change {i}: row {row} is outside the {split} split ({len(ds.splits[split]):,} rows)")
    if action not in ACTIONS:
        raise BmcoreError(f"change {i}: unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action == "relabel" and label not in ds.label_names:
        raise BmcoreError(f"change {i}: new label {label!r} is not one of the dataset's labels")
    if "text" in rec and _unescape_cell(rec["text"]) != str(shown[split]["text"].iloc[row]):
        raise BmcoreError(f"change {i}: {split} row {row} has another text in {ds.name!r}; were the changes made "
                          "for another version?")
    return {"split": split, "row": row, "action": action, "new_label": label if action == "relabel" else ""}


def check_changes(ds: PreparedDataset, changes: pd.DataFrame) -> pd.DataFrame:
    """Validated changes: known splits, rows in range, known actions, a known label for each relabel, one decision
    per row, and (when a ``text`` column is given) the text the row really has (for images: its file name). Raises
    :class:`BmcoreError`."""
    missing = [c for c in ("row", "action") if c not in changes]
    if missing:
        raise BmcoreError(f"the changes have no {missing[0]!r} column; expected columns {', '.join(CHANGE_COLUMNS)}")
    task = get_task(ds.problem_type, ds.modality)
    shown = {s: task.input_columns(df) for s, df in ds.splits.items()} if "text" in changes else {}
    out = [_check_change(ds, i, rec, shown) for i, rec in enumerate(changes.to_dict("records"), start=1)]
    frame = pd.DataFrame(out, columns=list(CHANGE_COLUMNS))
    twice = frame[frame.duplicated(["split", "row"], keep=False)]
    if len(twice):
        raise BmcoreError(f"{twice.iloc[0]['split']} row {twice.iloc[0]['row']} has more than one decision")
    return frame


def _taken(name: str) -> bool:
    try:
        return dataset_dir(name).exists()  # a folder being saved counts: its name is claimed
    except BmcoreError:
        return True


def next_version_name(name: str) -> str:
    """The first free name ``BASE-vN`` after ``name`` (``sst2`` -> ``sst2-v2``, ``sst2-v2`` -> ``sst2-v3``)."""
    m = VERSION_RE.match(name)
    base, n = (m.group("base"), int(m.group("n"))) if m else (name, 1)
    n += 1
    while _taken(f"{base}-v{n}"):
        n += 1
    return f"{base}-v{n}"


def _base(name: str) -> str:
    """The dataset a version name belongs to (``sst2-v3`` -> ``sst2``)."""
    m = VERSION_RE.match(name)
    return m.group("base") if m else name


def apply_changes(ds: PreparedDataset, changes: pd.DataFrame, name: str) -> PreparedDataset:
    """A new dataset ``name``: ``ds`` with the (checked) changes applied; ``ds`` itself is left as it was.

    The result's ``version`` records its parent (name and content hash), its number and what changed.
    """
    changes = check_changes(ds, changes)
    splits = {}
    for split in SPLITS:
        df = ds.splits[split].copy()
        mine = changes[changes["split"] == split]
        relabel = mine[mine["action"] == "relabel"]
        if len(relabel):
            df.loc[relabel["row"].to_numpy(), "label"] = relabel["new_label"].to_numpy()
        df = df.drop(index=mine.loc[mine["action"] == "drop", "row"].to_numpy()).reset_index(drop=True)
        splits[split] = df
    if any(len(splits[s]) == 0 for s in ("train",)):
        raise BmcoreError("the changes drop every train row")
    m = VERSION_RE.match(name)
    parent_version = (ds.version or {}).get("number", 1)
    version = {"number": int(m.group("n")) if m else parent_version + 1, "parent": ds.name,
               "parent_hash": ds.content_hash(),
               "relabelled": int((changes["action"] == "relabel").sum()), "dropped": int((changes["action"] == "drop").sum()),
               "kept": int((changes["action"] == "keep").sum())}
    notes = [*ds.notes, f"version {version['number']} of {ds.name}: {version['relabelled']} rows relabelled, "
                        f"{version['dropped']} dropped after review"]
    return PreparedDataset(name=name, source=ds.source, columns=ds.columns, label_names=list(ds.label_names),
                           splits=splits, notes=notes, stats={}, version=version, problem_type=ds.problem_type,
                           modality=ds.modality)


def save_version(ds: PreparedDataset, changes: pd.DataFrame, name: str | None = None, *,
                 next_free: bool = False) -> PreparedDataset:
    """Apply reviewed changes and save the result as a new prepared dataset (never over an existing one).

    Without ``name`` (or with ``next_free`` and a version name of the same dataset, ``BASE-vN``) the first free
    version number is taken, atomically: of two concurrent saves each gets its own version. An explicit other name
    that is taken is refused.
    """
    auto = name is None or (next_free and VERSION_RE.match(name) is not None and _base(name) == _base(ds.name))
    name = name or next_version_name(ds.name)
    for _ in range(MAX_VERSION_TRIES):
        if _taken(name) and auto:
            name = next_version_name(name)
        new = apply_changes(ds, changes, name)
        compute_stats(new)
        try:
            save_prepared(new, overwrite=False)
        except DatasetExists:
            if not auto:
                raise BmcoreError(f"a dataset named {name!r} already exists; a new version needs a new name") from None
            continue
        return new
    raise BmcoreError(f"no free version name after {name!r}; try again")
