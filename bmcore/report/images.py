"""What the Data page draws of a prepared image dataset (:mod:`bmcore.images.stats`): the sizes for histograms,
the most common sizes and the modes as small tables, and a few images per class for a grid.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..images.codec import image_frame
from ..images.stats import ImageSplits, image_sizes


def size_frame(ds: ImageSplits) -> pd.DataFrame:
    """Per image: split, label, width, height, mode and aspect ratio (for histograms)."""
    return image_sizes(ds)


def common_sizes_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """The most common image sizes from the stats, as a small table."""
    return pd.DataFrame(stats.get("common_sizes", []), columns=["width", "height", "images"])


def sample_images(ds: ImageSplits, per_class: int = 4, split: str = "train", seed: int = 0) -> pd.DataFrame:
    """A few images per class for a grid: columns label, image (PNG bytes), path; classes in label order."""
    df = ds.splits[split]
    parts = []
    for label in ds.label_names:
        rows = df[df["label"] == label]
        parts.append(rows.sample(min(per_class, len(rows)), random_state=seed) if len(rows) else rows)
    return pd.concat(parts, ignore_index=True)[["label", "image", "path"]] if parts else image_frame([])[["label", "image", "path"]]


def modes_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Images per mode, with its channels ("L": 1, grayscale; "RGB": 3, colour), as a small table."""
    rows = [{"mode": m, "channels": stats.get("channels", {}).get(m, 1 if m == "L" else 3), "images": n}
            for m, n in stats.get("modes", {}).items()]
    return pd.DataFrame(rows, columns=["mode", "channels", "images"])
