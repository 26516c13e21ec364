"""The texts the benchmarks measure on: SST-2 from ../shared/data when present, else BBC News (bundled)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..data import read_bbc_news

# SST-2 (train.csv, dev.csv): ../shared/data/sst2 beside the checkout, or the folder in BMCORE_SST2_DIR
# (scripts/gpu_check.sh points it at the copy it carries to a machine without ../shared). This file is
# bmcore/bench/texts.py: parents[3] is the folder that holds the checkout.
SHARED_SST2 = Path(os.environ.get("BMCORE_SST2_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data" / "sst2")


def sentences(n: int | None = None) -> tuple[list[str], list[str] | None, str]:
    """Short texts to measure on: SST-2 dev from ../shared/data when present, else BBC News titles.

    Returns the texts, their gold labels (or None), and where they came from.
    """
    dev = SHARED_SST2 / "dev.csv"
    if dev.is_file():
        df = pd.read_csv(dev)
        df = df.head(n) if n else df
        return df["text"].astype(str).tolist(), df["label"].astype(str).tolist(), "SST-2 dev (../shared/data/sst2)"
    titles = read_bbc_news()["title"].astype(str).tolist()
    return (titles[:n] if n else titles[:872]), None, "BBC News titles (../shared/data/sst2 not found)"


def bench_texts(kind: str, n: int, seed: int = 0) -> tuple[list[str], list[str], int, str]:
    """The texts of one benchmark: ``short`` (SST-2 train sentences) or ``long`` (BBC News articles at 256 tokens)."""
    if kind == "short":
        train = SHARED_SST2 / "train.csv"
        if train.is_file():
            df = pd.read_csv(train).sample(n, random_state=seed)
            return df["text"].astype(str).tolist(), df["label"].astype(str).tolist(), 128, "SST-2 train sentences"
        df = read_bbc_news().sample(min(n, 2225), random_state=seed)
        return df["title"].tolist(), df["label"].tolist(), 128, "BBC News titles (../shared/data/sst2 not found)"
    df = read_bbc_news().sample(min(n, 2225), random_state=seed)
    return df["text"].tolist(), df["label"].tolist(), 256, "BBC News articles"


def sst2_splits() -> tuple[pd.DataFrame, pd.DataFrame]:
    """SST-2's train and dev frames, for time to accuracy; a :class:`FileNotFoundError` without ../shared/data/sst2."""
    train, dev = SHARED_SST2 / "train.csv", SHARED_SST2 / "dev.csv"
    if not (train.is_file() and dev.is_file()):
        raise FileNotFoundError("time to accuracy needs ../shared/data/sst2 (train.csv and dev.csv)")
    return pd.read_csv(train), pd.read_csv(dev)
