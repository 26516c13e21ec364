"""Image data: decode images safely, read image sources into frames, and describe prepared image datasets.

Sources (:func:`~bmcore.images.sources.read_image_source`; :mod:`bmcore.data` dispatches to it and prepares the
result):

* a folder, or an uploaded ``.zip``, with one subfolder per class (torchvision's ``ImageFolder`` shape),
  optionally under ``train/``, ``validation/`` (or ``val/``, ``dev/``) and ``test/``;
* a CSV or Parquet file with an image-path column (paths relative to the file's folder, and confined to it)
  or an image-bytes column, plus a label column (:func:`~bmcore.images.tables.image_frames_from_table`);
* ``builtin:fashion-mnist``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, with its own
  train/test split.

Every image becomes one row: ``image`` (PNG bytes, EXIF rotation applied, "RGB" or "L" for grayscale),
``label`` (the class name), ``sha256`` (of the decoded pixels, mode and size: exact duplicates) and ``path``
(the file's name inside its source). Bad files are refused with one line that names them; images in other
modes (CMYK, 16-bit, palette, alpha) are converted, and a notice says how many.

Nothing is ever extracted: zip members are read in memory, after their names, kinds and unpacked sizes are
checked (``..`` and absolute names, links and zip bombs are refused).

One job per module:

* :mod:`~bmcore.images.codec` - one image decoded (caps, EXIF, modes), hashed, written as PNG, scaled for a grid;
  a source's images decoded into frame rows;
* :mod:`~bmcore.images.sources` - folders and zips of class folders, and which sources are image sources;
* :mod:`~bmcore.images.tables` - CSV or Parquet tables with an image column;
* :mod:`~bmcore.images.fashion_mnist` - ``builtin:fashion-mnist`` from Debian's idx files;
* :mod:`~bmcore.images.stats` - sizes, modes and duplicates of a prepared image dataset.

What the Data page draws of them (size histograms, tables, sample grids) is :mod:`bmcore.report.images`.

The names below are re-exported for ``from bmcore import images``; code inside :mod:`bmcore` imports each from its
module.
"""

from __future__ import annotations

from .codec import (
    FRAME_COLUMNS,
    MODE_NOTICES,
    Decoder,
    decode_image,
    decode_one,
    encode_png,
    gray_png,
    image_frame,
    pixel_hash,
    png_header,
    thumbnail,
    total_pixels,
)
from .fashion_mnist import (
    FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    read_fashion_mnist,
    read_idx,
)
from .sources import (
    IMAGE_SUFFIXES,
    SKIPPED_NAMES,
    SPLIT_DIRS,
    is_image_file,
    is_image_folder,
    is_image_source,
    read_image_folder,
    read_image_source,
    read_image_zip,
    zip_members,
)
from .stats import SIZE_TABLE_ROWS, ImageSplits, duplicates_frame, image_sizes, image_stats
from .tables import IMAGE_COLUMN_NAMES, IMAGE_SAMPLE, image_column, image_frames_from_table, read_image_parquet

__all__ = [
    "FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_FILES",
    "FRAME_COLUMNS",
    "IMAGE_COLUMN_NAMES",
    "IMAGE_SAMPLE",
    "IMAGE_SUFFIXES",
    "MODE_NOTICES",
    "SIZE_TABLE_ROWS",
    "SKIPPED_NAMES",
    "SPLIT_DIRS",
    "Decoder",
    "ImageSplits",
    "decode_image",
    "decode_one",
    "duplicates_frame",
    "encode_png",
    "gray_png",
    "image_column",
    "image_frame",
    "image_frames_from_table",
    "image_sizes",
    "image_stats",
    "is_image_file",
    "is_image_folder",
    "is_image_source",
    "pixel_hash",
    "png_header",
    "read_fashion_mnist",
    "read_idx",
    "read_image_folder",
    "read_image_parquet",
    "read_image_source",
    "read_image_zip",
    "thumbnail",
    "total_pixels",
    "zip_members",
]
