"""Class folders and zips of real Fashion-MNIST images for the tests of scoring a source whole (issue 27), and a tiny
random ResNet that knows their classes (its scores are chance: the tests assert behaviour, never accuracy)."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

CLASSES = {1: "Trouser", 7: "Sneaker", 8: "Bag"}  # Fashion-MNIST classes whose names are folder names ("T-shirt/top" is not)
PER_CLASS = {"train": 6, "validation": 3, "test": 4}


_READ: dict[tuple, dict[str, pd.DataFrame]] = {}  # read once per session: unpacking the idx files takes seconds


def fashion_splits(per_class: dict[str, int] = PER_CLASS) -> dict[str, pd.DataFrame]:
    """Train, validation and test frames (image PNG bytes, label, path) of :data:`CLASSES`."""
    from test_image_task import FASHION, fashion_frames

    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    key = tuple(sorted(per_class.items()))
    if key not in _READ:
        _READ[key] = fashion_frames(per_class, CLASSES)
    return {split: df.copy() for split, df in _READ[key].items()}


def write_class_folders(root: Path, frames: dict[str, pd.DataFrame], split_folders: bool = True) -> Path:
    """``root/<split>/<class>/<file>.png`` (``root/<class>/...`` without ``split_folders``); returns ``root``."""
    for split, df in frames.items():
        for image, label, path in zip(df["image"], df["label"], df["path"], strict=True):
            folder = root / split / label if split_folders else root / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{split}-{Path(path).name}").write_bytes(image)
    return root


def zip_folder(folder: Path, out: Path, wrap: str = "") -> Path:
    """Zip every file under ``folder`` (inside a top folder ``wrap`` when given, as a zipped folder is)."""
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{wrap}/{p.relative_to(folder).as_posix()}" if wrap else p.relative_to(folder).as_posix())
    return out


def tiny_image_model(out: Path, labels: list[str] | None = None) -> Path:
    """The tiny random ResNet of tests/conftest.py (``make_tiny_resnet``) with ``labels`` (default the classes)."""
    from bmcore.tiny_models import make_tiny_resnet

    with contextlib.redirect_stderr(io.StringIO()):  # transformers' progress bar
        return make_tiny_resnet(out, labels or sorted(CLASSES.values()))
