"""What a prepared image dataset holds, measured: image sizes, aspect ratios and modes, the most common sizes, and
exact duplicates within and across splits (:func:`image_stats`, which :func:`bmcore.data.stats.compute_stats`
calls). What the Data page draws of them is :mod:`bmcore.report.images`.
"""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from .codec import png_header

SIZE_TABLE_ROWS = 10  # the most common sizes shown in the stats


class ImageSplits(Protocol):
    """What the stats read of a :class:`bmcore.data.dataset.PreparedDataset` (named here without importing it)."""

    splits: dict[str, pd.DataFrame]
    label_names: list[str]


def image_sizes(ds: ImageSplits) -> pd.DataFrame:
    """One row per image: split, label, width, height, mode, aspect (width / height)."""
    parts = []
    for split, df in ds.splits.items():
        heads = [png_header(b) for b in df["image"]]
        parts.append(pd.DataFrame({"split": split, "label": df["label"].to_numpy(),
                                   "width": [h[0] for h in heads], "height": [h[1] for h in heads],
                                   "mode": [h[2] for h in heads]}))
    out = pd.concat(parts, ignore_index=True)
    out["aspect"] = (out["width"] / out["height"]).round(3)
    return out


def _summary(values: pd.Series) -> dict[str, float]:
    return {"min": float(values.min()), "median": float(values.median()), "max": float(values.max())} if len(values) else {}


def image_stats(ds: ImageSplits) -> dict[str, Any]:
    """The image part of a prepared image dataset's stats (plain, JSON-ready): sizes, aspect ratios and modes,
    the most common sizes, and duplicate groups across splits. Rows, classes and duplicate counts come from
    :func:`bmcore.data.stats.compute_stats`, which calls this."""
    sizes = image_sizes(ds)
    common = sizes.groupby(["width", "height"]).size().sort_values(ascending=False).head(SIZE_TABLE_ROWS)
    dups = duplicates_frame(ds)
    return {
        "modality": "image",
        "image_sizes": {"width": _summary(sizes["width"]), "height": _summary(sizes["height"]),
                        "aspect": _summary(sizes["aspect"]), "distinct_sizes": int(len(sizes.groupby(["width", "height"])))},
        "common_sizes": [{"width": int(w), "height": int(h), "images": int(n)} for (w, h), n in common.items()],
        "modes": {str(m): int(n) for m, n in sizes["mode"].value_counts().items()},
        "channels": {str(m): (1 if m == "L" else 3) for m in sizes["mode"].unique()},
        "duplicate_groups": int(len(dups)),
        "leaked_groups": int(dups["across_splits"].sum()) if len(dups) else 0,
        "conflicting_labels": int(dups["conflicting_labels"].sum()) if len(dups) else 0,
    }


def duplicates_frame(ds: ImageSplits) -> pd.DataFrame:
    """Exact duplicates (the same pixels) within and across splits: one row per group with its size, the splits
    and paths it occurs in, whether it spans splits (leakage) and whether its copies disagree on the label."""
    parts = [df[["sha256", "label", "path"]].assign(split=split) for split, df in ds.splits.items()]
    every = pd.concat(parts, ignore_index=True)
    repeated = every[every["sha256"].duplicated(keep=False)]
    rows = []
    for digest, g in repeated.groupby("sha256", sort=False):
        splits = list(dict.fromkeys(g["split"]))
        rows.append({"sha256": digest, "copies": int(len(g)), "splits": ", ".join(splits),
                     "across_splits": len(splits) > 1, "labels": ", ".join(dict.fromkeys(g["label"])),
                     "conflicting_labels": g["label"].nunique() > 1,
                     "paths": ", ".join(f"{s}:{p}" if p else s for s, p in list(zip(g["split"], g["path"], strict=True))[:10])})
    columns = ["sha256", "copies", "splits", "across_splits", "labels", "conflicting_labels", "paths"]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["across_splits", "copies"], ascending=False, ignore_index=True) if len(out) else out
