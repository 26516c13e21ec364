"""An image dataset with known label problems, scored once per session for the label-quality tests.

Real images: 240 Fashion-MNIST images of four classes in class folders, with 9 of them moved into a wrong class
folder (flipped labels) and one of scikit-learn's real photos (``china.jpg``) planted among the bags. Prepared from the
folder as a user's upload is, and scored with the built-in image model (:func:`bmcore.quality.run_quality`). Tests
copy the workspace into their own (:func:`copy_scored`) rather than write into it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bmcore import data as bdata
from bmcore import quality as bq

NAME = "fashion-noisy"
PLANTED = "china.jpg"
COPY = "copy.jpg"
PER_CLASS = 60
FLIPS = 9
_MADE: dict[str, object] = {}


def class_folder(root: Path, per_class: int = PER_CLASS, flips: int = FLIPS, seed: int = 0) -> tuple[Path, set[str]]:
    """Fashion-MNIST images as ``root/<class>/<i>.png``, ``flips`` of them in a wrong class folder (their file names
    returned), scikit-learn's photo of a Chinese temple as ``Bag/china.jpg``, and a JPEG copy of the first image as
    ``Trouser/copy.jpg``."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from test_image_task import CLASSES, FASHION, read_idx

    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    images, labels = read_idx(FASHION / "train-images-idx3-ubyte.gz"), read_idx(FASHION / "train-labels-idx1-ubyte.gz")
    chosen = [(i, CLASSES[c]) for c in CLASSES for i in np.flatnonzero(labels == c)[:per_class]]
    rng = np.random.default_rng(seed)
    flipped = set(rng.choice(len(chosen), flips, replace=False).tolist())
    names = list(CLASSES.values())
    moved = set()
    for k, (i, label) in enumerate(chosen):
        if k in flipped:
            label = names[(names.index(label) + 1 + int(rng.integers(0, len(names) - 1))) % len(names)]
            moved.add(f"{i}.png")
        folder = root / label.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i}.png")
    Image.fromarray(load_sample_images().images[0]).save(root / "Bag" / PLANTED, quality=90)
    first = chosen[0][0]  # a copy of the first image, resaved as JPEG, in another class folder: a near duplicate
    Image.fromarray(images[first]).save(root / "Trouser" / COPY, quality=95)
    return root, moved


def scored_workspace(factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A workspace holding ``NAME`` prepared from :func:`class_folder` and scored (once per session), and the file
    names of the flipped images."""
    if "ws" not in _MADE:
        base = factory.mktemp("quality-images")
        folder, moved = class_folder(base / "fashion")
        ws = base / "workspace"
        ws.mkdir()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BMCORE_WORKSPACE", str(ws))
            bdata.save_prepared(bdata.prepare(bdata.load_source(str(folder)), NAME, seed=0))
            bq.run_quality(NAME)
        _MADE.update(ws=ws, moved=moved)
    return _MADE["ws"], _MADE["moved"]  # type: ignore[return-value]


def copy_scored(factory: pytest.TempPathFactory, workspace: Path) -> set[str]:
    """Copy the scored workspace into ``workspace``; returns the flipped images' file names."""
    ws, moved = scored_workspace(factory)
    shutil.copytree(ws, workspace, dirs_exist_ok=True)
    return moved

