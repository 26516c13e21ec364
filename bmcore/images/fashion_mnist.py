"""Fashion-MNIST (``builtin:fashion-mnist``): 60,000 train and 10,000 test 28x28 grayscale images in 10 classes,
read from the idx files of Debian's ``dataset-fashion-mnist`` package into image frames, with its own train/test
split.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BmcoreError
from .codec import gray_png

FASHION_MNIST = "builtin:fashion-mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An idx file (gzip-compressed, as Debian ships them) as a numpy array."""
    raw = gzip.decompress(path.read_bytes())
    found, = struct.unpack(">I", raw[:4])
    if found != magic:
        raise BmcoreError(f"{path} is not an idx file of the expected kind (magic {found:#x}); reinstall dataset-fashion-mnist")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_fashion_mnist(folder: Path | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Fashion-MNIST (60,000 train and 10,000 test 28x28 grayscale images, 10 classes) as frames, with its own
    train/test split, from the idx files of Debian's ``dataset-fashion-mnist`` package."""
    folder = folder or FASHION_MNIST_DIR
    missing = [f for pair in FASHION_MNIST_FILES.values() for f in pair if not (folder / f).is_file()]
    if missing:
        raise BmcoreError(f"{FASHION_MNIST} needs the Debian package dataset-fashion-mnist ({folder / missing[0]} "
                          "is missing): apt-get install dataset-fashion-mnist")
    frames = {}
    names = np.array(FASHION_MNIST_CLASSES, dtype=object)
    for split, (images_file, labels_file) in FASHION_MNIST_FILES.items():
        try:
            pixels = read_idx(folder / images_file, 0x803)
            labels = read_idx(folder / labels_file, 0x801)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            if isinstance(exc, BmcoreError):
                raise
            raise BmcoreError(f"{folder / images_file} cannot be read ({exc.__class__.__name__}); reinstall "
                              "dataset-fashion-mnist") from exc
        h, w = pixels.shape[1:]
        prefix = f"L:{w}x{h}:".encode()
        frames[split] = pd.DataFrame({
            "image": [gray_png(p) for p in pixels],
            "label": names[labels],
            "sha256": [hashlib.sha256(prefix + p.tobytes()).hexdigest() for p in pixels],
            "path": [f"{split}/{i:05d}" for i in range(len(pixels))],
        })
    return frames, [f"Fashion-MNIST from {folder}: its own train (60,000) and test (10,000) splits"]
