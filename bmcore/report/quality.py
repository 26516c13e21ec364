"""What the pages show of a label-quality result (:mod:`bmcore.quality`): the table of flagged rows, the per-class
table, the headline tiles, how a row is named and keyed for a review decision, the decisions as a changes table,
an evaluation's predictions marked where the gold label is in doubt, and thumbnails of flagged images.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from ..data.dataset import FILE_ROW
from ..data.storage import dataset_dir
from ..errors import BmcoreError
from ..images.codec import THUMB_PX, thumbnail
from ..quality.changes import CHANGE_COLUMNS
from ..quality.results import QualityResult
from .examples import split_images

FLAG_COLUMNS = ("split", "row", "text", "given", "suggested", "confidence", "quality")
FLAG_EXTRA = ("issues", "sha256")  # where a result has them (images): the issue types in words, the image's hash


def flags_frame(result: QualityResult) -> pd.DataFrame:
    """Every flagged row, lowest quality first, numbered (``flag`` 1, 2, ...), with its row in the source file
    (``file_row``, counted from 1 after the header) where the dataset keeps it: the table to review or download."""
    flagged = result.flagged().reset_index(drop=True)
    extra = [c for c in FLAG_EXTRA if c in flagged]
    cols = [*FLAG_COLUMNS[:2], *([FILE_ROW] if FILE_ROW in flagged else []), FLAG_COLUMNS[2], *extra, *FLAG_COLUMNS[3:]]
    return flagged[cols].assign(flag=np.arange(1, len(flagged) + 1))[["flag", *cols]]


def decision_key(row: pd.Series | dict[str, Any]) -> str:
    """The key of a review decision for a scored row: ``"split:row"`` (see :func:`changes_frame`)."""
    return f"{row['split']}:{int(row['row'])}"


def row_name(row: pd.Series | dict[str, Any]) -> str:
    """How a scored row is named to a person: by its row in the source file where known, else by split and position."""
    file_row = row.get(FILE_ROW) if hasattr(row, "get") else None
    if file_row is not None and not pd.isna(file_row) and int(file_row) > 0:
        return f"file row {int(file_row):,} ({row['split']})"
    return f"{row['split']} #{int(row['row'])}"


def class_summary_frame(result: QualityResult) -> pd.DataFrame:
    """Per class: rows, rows that look mislabeled (and their share), class outliers."""
    rows = [{"label": name, "rows": c["rows"], "look mislabeled": c["flagged"],
             "share": round(c["flagged"] / c["rows"], 4) if c["rows"] else 0.0, "class outliers": c["outliers"]}
            for name, c in result.summary.get("per_class", {}).items()]
    return pd.DataFrame(rows, columns=["label", "rows", "look mislabeled", "share", "class outliers"])


def summary_tiles(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The headline numbers of a result as (label, value, help) tiles: rows that look mislabeled, near duplicates
    (images) or conflicting duplicates (texts), outliers, and the checking model's out-of-fold accuracy."""
    dups = (("Near duplicates", summary["near_duplicates"], "images with almost the same features, to review")
            if "near_duplicates" in summary else
            ("Conflicting duplicates", summary.get("conflicts", 0), "same or almost the same text, other label"))
    outliers = ("Outliers", "far from every other image: a placeholder, a broken or an unrelated picture") \
        if "near_duplicates" in summary else ("Class outliers", "far from every other row of their class")
    return [("Look mislabeled", f"{summary['flagged']:,}", f"of {summary['rows']:,} rows in all splits"),
            (dups[0], f"{int(dups[1]):,}", dups[2]),
            (outliers[0], f"{summary['outliers']:,}", outliers[1]),
            ("Out-of-fold accuracy", f"{summary['oof_accuracy']:.1%}", "how well the checking model agrees with the "
             "given labels; low values mean weaker flags")]


def mark_predictions(predictions: pd.DataFrame, result: QualityResult | None, split: str) -> pd.DataFrame:
    """An evaluation's prediction table (rows in split order) with ``gold_suspect`` (the label-quality check flagged
    the gold label) and ``suggested`` (the label it proposes); both empty when the split was not scored."""
    out = predictions.copy()
    if result is None:
        out["gold_suspect"], out["suggested"] = False, ""
        return out
    part = result.scores[result.scores["split"] == split].set_index("row")
    if len(part) != len(out):
        raise BmcoreError(f"the label-quality scores have {len(part):,} {split} rows but the evaluation has "
                          f"{len(out):,}; score the dataset again")
    rows = np.arange(len(out))
    out["gold_suspect"] = part.loc[rows, "issue"].to_numpy(dtype=bool)
    out["suggested"] = part.loc[rows, "suggested"].to_numpy()
    return out


def changes_frame(decisions: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Decisions keyed ``"split:row"`` -> ``(action, new_label)`` as a changes table (the CSV
    :func:`bmcore.quality.changes.read_changes` reads)."""
    rows = []
    for key, (action, label) in decisions.items():
        split, row = key.rsplit(":", 1)
        rows.append({"split": split, "row": int(row), "action": action, "new_label": label if action == "relabel" else ""})
    return pd.DataFrame(rows, columns=list(CHANGE_COLUMNS)).sort_values(["split", "row"], kind="stable").reset_index(drop=True)


def flag_gallery(dataset: str, flags: pd.DataFrame, size: int = THUMB_PX) -> tuple[list[bytes], list[str]]:
    """Thumbnails (PNG) of flagged images (rows of :func:`flags_frame`) with captions: flag number, file name, issue
    types, given → suggested label. Refuses, in one line, flags whose images no longer match."""
    thumbs, captions = [], []
    for split, group in flags.groupby("split", sort=False):
        images = split_images(dataset_dir(dataset), str(split))
        for _, f in group.iterrows():
            at = int(f["row"])
            if at >= len(images) or str(images["sha256"].iat[at]) != str(f["sha256"]):
                raise BmcoreError(f"the images of {dataset!r} no longer match its label-quality scores; score it again")
            thumbs.append((int(f["flag"]), thumbnail(bytes(images["image"].iat[at]), size)))
            captions.append((int(f["flag"]), f"{int(f['flag'])}. {PurePosixPath(str(f['text'])).name}: {f['issues']}; "
                                             f"{f['given']} → {f['suggested']}"))
    order = np.argsort([t[0] for t in thumbs], kind="stable")
    return [thumbs[i][1] for i in order], [captions[i][1] for i in order]
