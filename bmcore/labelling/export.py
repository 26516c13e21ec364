"""A labelling project's labelled rows saved as an ordinary prepared dataset, which Train takes like any other.

Prepared as ``bmcore data prepare`` prepares a file (:func:`bmcore.data.preparation.prepare`): stratified
train/validation/test splits, 80/10/10 with seed 42, except that a small export gets test and validation splits
large enough to hold one row of each class (``sklearn`` refuses a stratified split smaller than the classes).
The name is the project's, or ``NAME-v2``, ``NAME-v3``... once taken (as the label-quality fixes are versioned); a
class with fewer than :data:`MIN_CLASS_LABELS` labels is left out, with a note.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from ..data.columns import Columns
from ..data.preparation import prepare
from ..data.readers import RawData
from ..data.stats import compute_stats
from ..data.storage import DatasetExists, dataset_dir, save_prepared
from ..errors import BmcoreError
from ..quality.changes import VERSION_RE, next_version_name
from ..workspace import check_name
from .project import labels, load_project

MIN_CLASS_LABELS = 3  # a class needs one row in each of train, validation and test
RATIOS = (0.8, 0.1, 0.1)  # as `bmcore data prepare`
SEED = 42
MAX_NAME_TRIES = 100


def export_ratios(rows: int, classes: int) -> tuple[float, float, float]:
    """Train/validation/test shares for ``rows`` labelled rows of ``classes`` classes: :data:`RATIOS`, with test and
    validation grown where they would hold fewer rows than there are classes."""
    test = max(RATIOS[2], classes / rows)
    val = max(RATIOS[1], classes / rows)  # of all rows: validation is carved from the rest in the same proportion
    return 1 - test - val, val, test


def _taken(name: str) -> bool:
    return dataset_dir(name).exists()


def export_dataset(name: str, dataset_name: str | None = None) -> dict[str, Any]:
    """Save the labelled rows of project ``name`` as a prepared dataset: ``dataset_name`` (default the project's
    name), or its next free version ``BASE-vN`` when taken. Returns ``name``, ``path``, ``splits`` (rows each),
    ``label_names``, ``labels`` and ``notes``."""
    project = load_project(name)
    given = labels(name)
    base = check_name(dataset_name or name, "dataset name")
    per_class = {c: sum(1 for v in given.values() if v == c) for c in project.classes}
    kept = [c for c in project.classes if per_class[c] >= MIN_CLASS_LABELS]
    if len(kept) < 2:
        raise BmcoreError(f"label at least {MIN_CLASS_LABELS} rows of two classes or more before saving a dataset "
                          f"(labelled: {', '.join(f'{c} {n}' for c, n in per_class.items())})")
    rows = sorted(r for r, v in given.items() if v in kept)
    texts = project.texts.set_index("row").loc[rows]
    frame = pd.DataFrame({"text": texts["text"].to_numpy(), "label": [given[r] for r in rows]})
    notes = [f"labelled in labelling project {name!r}: {len(rows)} rows"]
    left = [c for c in project.classes if c not in kept]
    if left:
        notes.append(f"left out {', '.join(repr(c) for c in left)}: fewer than {MIN_CLASS_LABELS} labelled rows")
    ratios = export_ratios(len(rows), len(kept))
    raw = RawData(f"labelling:{name}", {"all": frame}, notes)
    target = next_version_name(base) if _taken(base) else base
    for _ in range(MAX_NAME_TRIES):
        ds = prepare(raw, target, Columns(text=["text"], label="label"), use_source_splits=False, ratios=ratios,
                     seed=SEED)
        m = VERSION_RE.match(target)
        version = {"number": int(m.group("n")), "parent": m.group("base"), "labelling": name} if m else None
        ds = replace(ds, label_names=kept, version=version)  # the project's class order, not alphabetical
        compute_stats(ds)
        try:
            path = save_prepared(ds, overwrite=False)
        except DatasetExists:  # taken meanwhile (another export, a dataset prepared): the next version
            target = next_version_name(target)
            continue
        return {"name": ds.name, "path": str(path), "splits": {s: len(df) for s, df in ds.splits.items()},
                "label_names": kept, "labels": len(rows), "notes": ds.notes}
    raise BmcoreError(f"no free dataset name after {target!r}; try again")
