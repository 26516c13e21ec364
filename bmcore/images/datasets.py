"""Image sources as datasets: prepared for training (:func:`prepare_images`) and scored whole or by split folder
(:func:`image_dataset`). The image modality (:mod:`bmcore.modalities.image`) calls them; the folders, zips and
tables are read by the rest of :mod:`bmcore.images`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..data.columns import IMAGE_COLUMNS, MAX_CLASSES
from ..data.dataset import SPLITS, PreparedDataset
from ..data.label_values import normalise_labels, order_labels
from ..data.readers import RawData, canonical_split, suggest_name
from ..data.stratify import three_splits
from ..errors import BmcoreError
from ..splits import WHOLE_SOURCE

SHOWN_CLASSES = 10


def prepare_images(raw: RawData, frames: dict[str, pd.DataFrame], name: str, ratios: tuple[float, float, float],
                   seed: int) -> PreparedDataset:
    """An image source's frames (already decoded by :mod:`bmcore.images`) split and labelled as text is."""
    notes = list(raw.notes)
    std = {}
    for split, df in frames.items():
        df = df.assign(label=normalise_labels(df["label"], "label"))
        std[split] = df[df["label"].notna()].reset_index(drop=True)
    labels_all = pd.concat([d["label"] for d in std.values()])
    if labels_all.empty:
        raise BmcoreError(f"{raw.source} has no labelled images")
    label_names = order_labels(labels_all)
    if len(label_names) < 2:
        raise BmcoreError(f"only one class ({label_names[0]!r}) in {raw.source}; classification needs at least two")
    if len(label_names) > MAX_CLASSES:
        raise BmcoreError(f"{raw.source} has {len(label_names)} classes (more than {MAX_CLASSES}); is each folder a class?")
    splits = three_splits(std, ratios, seed, None, notes)
    return PreparedDataset(name=name, source=raw.source, columns=IMAGE_COLUMNS, label_names=label_names,
                           splits=splits, notes=notes, modality="image")


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:SHOWN_CLASSES]) + (f", ... ({len(names)} in all)" if len(names) > SHOWN_CLASSES else "")


def check_classes(found: Sequence[str], label_names: Sequence[str], where: str) -> None:
    """Refuse, in one line naming them, class folders the model has no class for (their images would be scored
    against a label it can never predict, or dropped unseen)."""
    unknown = sorted(set(found) - set(label_names))
    if unknown:
        raise BmcoreError(f"{where} has {len(unknown)} class{'es' if len(unknown) > 1 else ''} the model does not "
                          f"know ({_listed(unknown)}); the model's classes are {_listed(list(label_names))}: rename "
                          "the class folders to those names, or leave them out")


def image_dataset(raw: RawData, label_names: Sequence[str], *,
                  split: str | None = None) -> tuple[PreparedDataset, str]:
    """An image source to score: every image (split ``all``), or the source's split folder ``split``, with the
    classes (folder names) mapped to the model's ``label_names``."""
    where = Path(raw.source).name or raw.source
    frames = {s: df.assign(label=normalise_labels(df["label"], "label")) for s, df in raw.frames.items()}
    frames = {s: df[df["label"].notna()].reset_index(drop=True) for s, df in frames.items()}
    # A built-in dataset (builtin:fashion-mnist) is a benchmark with its own test split: that is what it is scored on.
    wanted = canonical_split(split) or ("test" if raw.source.startswith("builtin:") else None)
    own = [s for s in SPLITS if s in frames]  # the source's split folders, if it has them
    if wanted not in (None, WHOLE_SOURCE) and wanted not in own:
        raise BmcoreError(f"{where} has no {wanted} folder" + (f"; its splits: {', '.join(own)} (or all)" if own else
                          ": it has no split folders (train/, validation/, test/), so it is scored whole; leave out --split"))
    scored = ({WHOLE_SOURCE: pd.concat(list(frames.values()), ignore_index=True)} if wanted in (None, WHOLE_SOURCE)
              else {wanted: frames[wanted]})
    check_classes(list(dict.fromkeys(pd.concat(list(frames.values()))["label"])), label_names, where)
    name, df = next(iter(scored.items()))
    if df.empty:
        raise BmcoreError(f"{where} has no labelled images" + (f" in its {name} folder" if name != WHOLE_SOURCE else ""))
    empty = df.iloc[0:0]
    notes = list(raw.notes)
    if name == WHOLE_SOURCE:
        sizes = ", ".join(f"{s} {len(frames[s]):,}" for s in own)
        notes.append(f"scored all {len(df):,} images of {where}" + (f", its splits together ({sizes})" if own else "")
                     + ("; --split test scores the test folder alone, next to a baseline trained on train/" if own else ""))
        splits = {"train": empty, "validation": empty, WHOLE_SOURCE: df}
    else:
        notes.append(f"scored the {name} folder of {where}: {len(df):,} images")
        splits = {"train": frames.get("train", empty), "validation": frames.get("validation", empty), name: df}
    return PreparedDataset(name=suggest_name(raw.source), source=raw.source, columns=IMAGE_COLUMNS,
                           label_names=list(label_names), splits=splits, notes=notes, modality="image"), name
