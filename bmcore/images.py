"""Image data: decode images safely, read image sources into frames, and describe prepared image datasets.

Sources (:func:`read_image_source`; :mod:`bmcore.data` dispatches to it and prepares the result):

* a folder, or an uploaded ``.zip``, with one subfolder per class (torchvision's ``ImageFolder`` shape),
  optionally under ``train/``, ``validation/`` (or ``val/``, ``dev/``) and ``test/``;
* a CSV or Parquet file with an image-path column (paths relative to the file's folder, and confined to it)
  or an image-bytes column, plus a label column (:func:`image_frames_from_table`);
* ``builtin:fashion-mnist``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, with its own
  train/test split.

Every image becomes one row: ``image`` (PNG bytes, EXIF rotation applied, "RGB" or "L" for grayscale),
``label`` (the class name), ``sha256`` (of the decoded pixels, mode and size: exact duplicates) and ``path``
(the file's name inside its source). Bad files are refused with one line that names them; images in other
modes (CMYK, 16-bit, palette, alpha) are converted, and a notice says how many.

Nothing is ever extracted: zip members are read in memory, after their names, kinds and unpacked sizes are
checked (``..`` and absolute names, links and zip bombs are refused).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import struct
import threading
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from .bounded import check_parquet
from .errors import BmcoreError
from .files import read_source_bytes, resolve_path
from .limits import (
    check_file_rows,
    check_image_pixels,
    check_total_pixels,
    check_unpacked_images,
    check_upload,
    current,
)

FASHION_MNIST = "builtin:fashion-mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
IMAGE_COLUMNS = ("image", "img", "image_path", "path", "file", "filename", "file_name", "image_bytes", "bytes")
SPLIT_DIRS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
              "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
FRAME_COLUMNS = ("image", "label", "sha256", "path")
SKIPPED_NAMES = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini"})
SIZE_TABLE_ROWS = 10  # the most common sizes shown in the stats
MODE_NOTICES = {"CMYK": "CMYK images converted to RGB", "P": "palette images converted to RGB",
                "PA": "palette images with transparency converted to RGB (transparent areas white)",
                "RGBA": "RGBA images converted to RGB (transparent areas white)",
                "LA": "grayscale images with transparency converted to grayscale (transparent areas white)",
                "1": "1-bit images converted to 8-bit grayscale", "I;16": "16-bit grayscale images converted to 8-bit",
                "I": "32-bit integer images converted to 8-bit grayscale", "F": "floating-point images converted to 8-bit grayscale",
                "YCbCr": "YCbCr images converted to RGB", "LAB": "Lab images converted to RGB", "HSV": "HSV images converted to RGB"}


# --- one image ------------------------------------------------------------------------------


def _open(data: bytes | IO[bytes], name: str) -> Image.Image:
    """Open (header only: ``data`` is the file's bytes, or a binary file object) with the pixel cap checked before
    anything is decoded."""
    if isinstance(data, (bytes, bytearray)):
        empty = not data
    else:  # a zip member or file: peek at one byte, then back to the start
        empty = not data.read(1)
        data.seek(0)
    if empty:
        raise BmcoreError(f"{name} is empty (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: our own cap is checked below; odd EXIF
            img = Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
    except Image.DecompressionBombError as exc:  # PIL's hard stop, at twice its Image.MAX_IMAGE_PIXELS
        size = re.search(r"\((\d+) pixels\)", str(exc))
        raise BmcoreError(f"{name} has {int(size.group(1)) if size else 0:,} pixels, more than the limit of "
                          f"{min(current().max_image_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0)):,} pixels "
                          "(a decompression bomb?); resize it first") from exc
    except UnidentifiedImageError as exc:
        raise BmcoreError(f"{name} is not an image (PNG, JPEG, BMP, GIF, WebP or TIFF)") from exc
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        raise BmcoreError(f"{name} is not a readable image ({exc.__class__.__name__})") from exc
    check_image_pixels(name, *img.size)
    return img


def _flatten(img: Image.Image) -> Image.Image:
    """An image with an alpha channel composited on white, as it is usually seen."""
    rgba = img.convert("LA" if img.mode == "LA" else "RGBA")
    white = Image.new(rgba.mode, rgba.size, (255, 255) if rgba.mode == "LA" else (255, 255, 255, 255))
    return Image.alpha_composite(white.convert("RGBA"), rgba.convert("RGBA")).convert("L" if img.mode == "LA" else "RGB")


def _to_standard(img: Image.Image) -> tuple[Image.Image, str | None]:
    """The image as "RGB" or "L", and the kind of conversion made (a key of :data:`MODE_NOTICES`), if any."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img, None
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.round(arr * 255.0 / top), 0, 255).astype(np.uint8), "L"), \
            "I;16" if mode.startswith("I;16") else mode
    if mode == "P":
        if "transparency" in img.info:
            return _flatten(img.convert("RGBA")), "PA"
        return img.convert("RGB"), "P"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        key = "LA" if mode in ("LA", "La") else "PA" if mode == "PA" else "RGBA"
        return _flatten(img.convert("LA" if key == "LA" else "RGBA")), key
    if mode == "1":
        return img.convert("L"), "1"
    return img.convert("RGB"), mode


def _orientation(img: Image.Image) -> int | None:
    """The EXIF orientation tag (1: upright); None when the EXIF block is missing or unreadable (no reason to refuse
    a readable picture)."""
    try:
        return img.getexif().get(0x0112)
    except Exception:  # PIL raises many kinds for a damaged EXIF block
        return None


def total_pixels(name: str, members: Iterable[tuple[str, Callable[[], IO[bytes]]]]) -> int:
    """The pixels of all of a source's images (``members``: each image's name and how to open it as a binary file),
    read from their headers alone; refused as soon as they pass ``BMCORE_MAX_TOTAL_PIXELS`` (and one image over
    ``BMCORE_MAX_IMAGE_PIXELS``, or a file that is no image, is refused naming it): nothing of a source that is too
    big is decoded."""
    total = 0
    for member, open_member in members:
        with open_member() as fh:
            width, height = _open(fh, member).size
        total += width * height
        check_total_pixels(name, total)
    return total


def decode_one(data: bytes, name: str = "image", min_side: int | None = None) -> tuple[Image.Image, str | None, bool]:
    """Decode ``data`` as :func:`decode_image` does; also return the conversion made (a :data:`MODE_NOTICES`
    key or None) and whether an EXIF orientation was applied. With ``min_side`` a large image is reduced on load
    by a whole factor that keeps its shorter side at least ``min_side`` (JPEG in the decoder, others by a box
    filter): a 5000x5000 photo for a 224-pixel model (``min_side`` 448) is held at 454x454."""
    img = _open(data, name)
    factor = min(img.size) // min_side if min_side else 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about odd EXIF or palette transparency: not our user's problem
            if factor >= 2:
                img.draft(img.mode, (max(1, img.width // factor), max(1, img.height // factor)))  # JPEG: scaled decode
            img.load()
            turned = _orientation(img) not in (None, 1)
            img = ImageOps.exif_transpose(img) if turned else img
            img, conversion = _to_standard(img)
            if min_side and min(img.size) // min_side >= 2:  # what the JPEG decoder did not reduce already
                img = img.reduce(min(img.size) // min_side)
    except BmcoreError:
        raise
    except (OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError) as exc:
        what = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise BmcoreError(f"{name} is {what}: not a readable image ({exc.__class__.__name__})") from exc
    return img, conversion, turned


def decode_image(data: bytes, name: str = "image", min_side: int | None = None) -> Image.Image:
    """Decode an image file's bytes into a PIL image in "RGB" or "L" mode, EXIF rotation applied.

    Refuses with a one-line :class:`BmcoreError` naming ``name``: an empty, non-image, corrupt or truncated file, and
    one over the pixel cap (``BMCORE_MAX_IMAGE_PIXELS``), checked from the header before the pixels are decoded.
    CMYK, palette, 16-bit, 1-bit and alpha images are converted (transparent areas become white); the first frame of
    an animation is used. ``min_side``: reduce a large image on load (:func:`decode_one`).
    """
    return decode_one(data, name, min_side)[0]


def pixel_hash(img: Image.Image) -> str:
    """The SHA-256 of an image's mode, size and pixels: equal for the same picture saved in different files."""
    return hashlib.sha256(f"{img.mode}:{img.width}x{img.height}:".encode() + img.tobytes()).hexdigest()


def encode_png(img: Image.Image) -> bytes:
    """The image as PNG bytes (lossless, fast compression)."""
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def gray_png(pixels: np.ndarray) -> bytes:
    """A 2-D uint8 array as a grayscale PNG, written directly (three times faster than PIL for small images)."""
    h, w = pixels.shape
    rows = np.zeros((h, w + 1), np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = pixels
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _png_chunk(b"IEND", b""))


def png_header(png: bytes) -> tuple[int, int, str]:
    """Width, height and mode ("L" or "RGB") of a PNG this module wrote, from its header alone."""
    w, h, _, colour = struct.unpack(">IIBB", png[16:26])
    return w, h, "L" if colour == 0 else "RGB"


class _Decoder:
    """Decodes a source's images into rows, counting conversions for one notice per kind."""

    def __init__(self) -> None:
        self.conversions: Counter[str] = Counter()
        self.rotated = 0
        self.lock = threading.Lock()  # rows are decoded in threads (_read_layout)

    def row(self, data: bytes, name: str, label: Any) -> dict[str, Any]:
        img, conversion, turned = decode_one(data, name)
        with self.lock:
            if conversion:
                self.conversions[conversion] += 1
            self.rotated += turned
        return {"image": encode_png(img), "label": label, "sha256": pixel_hash(img), "path": name}

    def notes(self) -> list[str]:
        out = [f"{n:,} {MODE_NOTICES.get(k, f'{k} images converted to RGB')}" for k, n in sorted(self.conversions.items())]
        if self.rotated:
            out.append(f"{self.rotated:,} images turned upright from their EXIF orientation")
        return out


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


# --- sources --------------------------------------------------------------------------------


def is_image_file(name: str) -> bool:
    """True when ``name`` ends in an image suffix (.png, .jpg, ...)."""
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _skipped(parts: Iterable[str]) -> bool:
    """Hidden files and the litter of archivers and file browsers (__MACOSX, .DS_Store, Thumbs.db)."""
    return any(p.startswith(".") or p.lower() in SKIPPED_NAMES for p in parts)


def is_image_folder(folder: Path) -> bool:
    """True when ``folder`` holds images in subfolders (the ImageFolder shape), looking at most three levels down."""
    try:
        for top in folder.iterdir():
            if not top.is_dir() or top.name.startswith("."):
                continue
            for _, _, files in _walk_limited(top, 2):
                if any(is_image_file(f) for f in files):
                    return True
    except OSError:
        return False
    return False


def _walk_limited(top: Path, depth: int) -> Iterator[tuple[str, list[str], list[str]]]:
    base = len(top.parts)
    for root, dirs, files in os.walk(top):
        if len(Path(root).parts) - base >= depth:
            dirs[:] = []
        yield root, dirs, files


def is_image_source(source: str, data: bytes | None = None) -> bool:
    """True when ``source`` is read by this module: ``builtin:fashion-mnist``, a ``.zip``, or a folder of class
    subfolders holding images. (A CSV or Parquet file with an image column is recognised once read:
    :func:`image_column`.)"""
    source = (source or "").strip()
    if source == FASHION_MNIST:
        return True
    if source.startswith(("builtin:", "hub:")):
        return False
    if Path(source).suffix.lower() == ".zip":
        return True
    if data is not None:
        return False
    path = Path(source).expanduser()
    return path.is_dir() and is_image_folder(path)


def _class_layout(paths: list[str], where: str) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Sort image paths (POSIX, relative) into ``{split: [(path, label), ...]}`` ("all" without split folders).

    A single wrapping folder (``mydata/cat/1.png``) is looked through. Files outside any class folder are left
    out with a note.
    """
    parts = [PurePosixPath(p).parts for p in paths]
    strip = 0
    while parts and all(len(p) > strip + 2 for p in parts) and len({p[strip] for p in parts}) == 1 \
            and parts[0][strip].lower() not in SPLIT_DIRS:
        strip += 1
    firsts = {p[strip].lower() for p in parts if len(p) > strip + 1}
    by_split = bool(firsts) and firsts <= set(SPLIT_DIRS)
    out: dict[str, list[tuple[str, str]]] = {}
    loose: list[str] = []
    for path, p in zip(paths, parts, strict=True):
        rest = p[strip:]
        if by_split:
            if len(rest) < 3:
                loose.append(path)
                continue
            split, label = SPLIT_DIRS[rest[0].lower()], rest[1]
        else:
            if len(rest) < 2:
                loose.append(path)
                continue
            split, label = "all", rest[0]
        out.setdefault(split, []).append((path, label))
    notes = [f"{where}: left out {len(loose):,} images outside a class folder (e.g. {loose[0]})"] if loose else []
    if not out:
        raise BmcoreError(f"{where} has no images in class folders; put each class's images in a folder named after "
                          "the class (cat/1.png, dog/2.png), optionally under train/, validation/ and test/")
    if by_split and "train" not in out:
        if len(out) > 1:
            raise BmcoreError(f"{where} has {', '.join(out)} folders but no train folder")
        out = {"all": next(iter(out.values()))}
    return out, notes


def _read_layout(layout: dict[str, list[tuple[str, str]]], read: Any) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Decode every file of the layout, in threads: PIL decodes and encodes with the GIL released, so this keeps
    every core busy. The first bad file stops the read (the files not yet started are cancelled)."""
    decoder = _Decoder()
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        frames = {split: _frame(list(pool.map(lambda item: decoder.row(read(item[0]), *item), items)))
                  for split, items in layout.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return frames, decoder.notes()


def read_image_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """A folder of class subfolders (ImageFolder), optionally under split folders, as frames and notes.

    A link that leads outside the folder is refused (it could be any file on the server).
    """
    root = resolve_path(folder)
    paths, others = [], 0
    for dirpath, dirs, files in os.walk(folder):
        for d in list(dirs):
            full = Path(dirpath) / d
            if full.is_symlink():
                if root not in resolve_path(full, f"folder {folder}: {full.relative_to(folder)}").parents:
                    raise BmcoreError(f"folder {folder}: {full.relative_to(folder)} is a link to a folder outside it; "
                                      "copy the images in instead")
                dirs.remove(d)  # os.walk would not follow it; say nothing about a link inside the folder
        for f in files:
            full = Path(dirpath) / f
            rel = full.relative_to(folder).as_posix()
            if _skipped(PurePosixPath(rel).parts):
                continue
            if not is_image_file(f):
                others += 1
                continue
            if full.is_symlink() and root not in resolve_path(full, f"folder {folder}: {rel}").parents:
                raise BmcoreError(f"folder {folder}: {rel} is a link to a file outside the folder; copy the file in instead")
            paths.append(rel)
    check_file_rows(str(folder), len(paths))
    layout, notes = _class_layout(sorted(paths), f"folder {folder}")

    def read(rel: str) -> bytes:
        full = folder / rel
        mode = os.stat(full).st_mode
        if not stat.S_ISREG(mode):
            raise BmcoreError(f"folder {folder}: {rel} is not a regular file")
        return full.read_bytes()

    # Headers only: nothing is decoded before the pixels of all the images are known.
    total_pixels(f"folder {folder}", ((rel, lambda rel=rel: io.BytesIO(read(rel))) for rel in paths))
    frames, decoded = _read_layout(layout, read)
    if others:
        notes.append(f"folder {folder}: left out {others:,} files that are not images (by their suffix)")
    return frames, notes + decoded


def zip_members(zf: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """The zip's image members, after refusing unsafe names, links and a total unpacked size over the cap."""
    members = []
    for info in zf.infolist():
        n = info.filename
        if n.startswith(("/", "\\")) or (len(n) > 1 and n[1] == ":") or ".." in n.replace("\\", "/").split("/"):
            raise BmcoreError(f"{name} has an entry with an unsafe path ({n!r}: absolute or with '..'); "
                              "zip the class folders themselves")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BmcoreError(f"{name} has a symbolic link ({n!r}); zip the files themselves, not links")
        if info.is_dir() or _skipped(PurePosixPath(n).parts) or not is_image_file(n):
            continue
        members.append(info)
    check_unpacked_images(name, sum(i.file_size for i in zf.infolist()))
    check_file_rows(name, len(members))
    return members


def read_image_zip(data: bytes, name: str) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """An uploaded zip of class folders (as :func:`read_image_folder`), read in memory: nothing is extracted."""
    if not data:
        raise BmcoreError(f"{name} is empty (0 bytes)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BmcoreError(f"{name} is not a readable zip file") from exc
    with zf:
        members = zip_members(zf, name)
        infos = {i.filename: i for i in members}
        others = sum(1 for i in zf.infolist() if not i.is_dir() and not _skipped(PurePosixPath(i.filename).parts)
                     and not is_image_file(i.filename))
        layout, notes = _class_layout(sorted(infos), name)

        def read(member: str) -> bytes:
            try:
                return zf.read(infos[member])
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
                raise BmcoreError(f"{name}: {member} cannot be unpacked ({exc.__class__.__name__}); the zip is damaged") from exc

        try:  # headers only, streamed from the zip: nothing is decoded (or unpacked whole) before the total is known
            total_pixels(name, ((m, lambda m=m: zf.open(infos[m])) for m in sorted(infos)))
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise BmcoreError(f"{name} cannot be unpacked ({exc.__class__.__name__}); the zip is damaged") from exc
        frames, decoded = _read_layout(layout, read)
    if others:
        notes.append(f"{name}: left out {others:,} files that are not images (by their suffix)")
    return frames, notes + decoded


def _read_idx(path: Path, magic: int) -> np.ndarray:
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
            pixels = _read_idx(folder / images_file, 0x803)
            labels = _read_idx(folder / labels_file, 0x801)
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


IMAGE_SAMPLE = 50  # the first non-empty values of a column that must all be images for it to be the image column


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _holds_images(values: list[Any]) -> bool:
    """True when every value is image bytes, a Hugging Face ``Image`` cell, or a file name with an image suffix."""
    return (all(isinstance(v, (bytes, bytearray)) for v in values)
            or all(isinstance(v, dict) and isinstance(v.get("bytes"), (bytes, bytearray)) for v in values)
            or all(isinstance(v, str) and is_image_file(v.strip()) for v in values))


def image_column(df: pd.DataFrame) -> str | None:
    """The column of a table that holds images: bytes, or file names ending in an image suffix; None if none.

    Conventionally named columns (``image``, ``path`` ...) are looked at first, then the others in table order.
    Linear in the columns: the first rows are read once, and only a column whose values there all look like
    images (or that is empty there) is read further (a 30,000-column table takes a second or two)."""
    columns = list(df.columns)
    kinds = [dtype.kind for dtype in df.dtypes]
    head = df.head(IMAGE_SAMPLE).to_numpy(dtype=object)
    order = sorted(range(len(columns)), key=lambda i: (str(columns[i]).lower() not in IMAGE_COLUMNS, i))
    for i in order:
        if kinds[i] in "biufcmM":  # numbers, booleans, dates: never image bytes or file names
            continue
        first = [v for v in head[:, i] if not _missing(v)]
        if first and not _holds_images(first):
            continue
        sample = first if len(first) == IMAGE_SAMPLE else df.iloc[:, i].dropna().head(IMAGE_SAMPLE).tolist()
        if sample and _holds_images(sample):
            return str(columns[i])
    return None


def _confined(base: Path, rel: str, table: str) -> Path:
    """``base/rel``, refusing an absolute path or one that leads (also through links) outside ``base``."""
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or (rel[1:2] == ":") or ".." in p.parts:
        raise BmcoreError(f"{table}: the image path {rel!r} is absolute or has '..'; give paths relative to the file's folder")
    full = base / p
    resolved = resolve_path(full, f"{table}: the image path {rel!r}")
    if resolved != resolve_path(base) and resolve_path(base) not in resolved.parents:
        raise BmcoreError(f"{table}: the image path {rel!r} leads outside the file's folder (a link); copy the image in")
    return full


def image_frames_from_table(df: pd.DataFrame, column: str, label: str, base: Path | None,
                            name: str) -> tuple[pd.DataFrame, list[str]]:
    """Rows of a table whose ``column`` holds image bytes or paths (relative to ``base``, the table's folder) as an
    image frame with ``label`` as the class. Rows without an image or a label are left out with a note."""
    if label not in df.columns:
        raise BmcoreError(f"column {label!r} is missing from {name}; columns: {', '.join(map(str, df.columns))}")
    keep = df[column].notna() & df[label].notna()
    items: list[tuple[str, bytes | Path, Any, bool]] = []  # (name, bytes or file, class, from bytes)
    for i, (value, cls) in enumerate(zip(df.loc[keep, column], df.loc[keep, label], strict=True)):
        if isinstance(value, dict):
            value = value.get("bytes")
        if isinstance(value, (bytes, bytearray)):
            items.append((f"{name} row {i + 1}", bytes(value), cls, True))
            continue
        rel = str(value).strip()
        if base is None:
            raise BmcoreError(f"{name} names image files ({rel!r}), which an uploaded table cannot reach; upload a zip "
                              "of class folders, or a Parquet file with the image bytes")
        items.append((rel, _confined(base, rel, name), cls, False))

    def read(item: tuple[str, bytes | Path, Any, bool]) -> bytes:
        rel, source = item[0], item[1]
        if isinstance(source, bytes):
            return source
        try:
            return source.read_bytes()
        except FileNotFoundError as exc:
            raise BmcoreError(f"{name}: the image {rel!r} does not exist (paths are relative to the file's folder)") from exc
        except OSError as exc:
            raise BmcoreError(f"{name}: cannot read the image {rel!r} ({exc.strerror})") from exc

    total_pixels(name, ((item[0], lambda item=item: io.BytesIO(read(item))) for item in items))  # headers: nothing decoded
    decoder = _Decoder()
    rows = []
    for item in items:
        rows.append(decoder.row(read(item), item[0], item[2]))
        if item[3]:
            rows[-1]["path"] = ""
    notes = decoder.notes()
    if (~keep).any():
        notes.insert(0, f"{name}: left out {int((~keep).sum()):,} rows without an image or a label")
    out = _frame(rows)
    out["label"] = out["label"].map(lambda v: str(v).strip())
    return out, notes


def read_image_parquet(data: bytes, name: str) -> pd.DataFrame | None:
    """A Parquet file with a binary image column, bounded by its footer (rows, unpacked bytes); None when the file
    has no binary column (a text table: :func:`bmcore.data.tables.read_table` reads it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
    except Exception:  # not Parquet at all: the text reader says what is wrong
        return None
    schema = pf.schema_arrow

    def binary(t: Any) -> bool:
        return pa.types.is_binary(t) or pa.types.is_large_binary(t) or (
            pa.types.is_struct(t) and any(binary(f.type) for f in t))

    if not any(binary(f.type) for f in schema):
        return None
    check_parquet(data, name, images=True)  # a dictionary-encoded image used 100,000 times: refused before decoding
    try:
        return pf.read().to_pandas()
    except Exception as exc:
        raise BmcoreError(f"{name} is not a readable Parquet file ({exc.__class__.__name__})") from exc


def read_image_source(source: str, data: bytes | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read ``builtin:fashion-mnist``, a zip (``data``: its uploaded bytes, else read from the path) or an image
    folder into frames (``{"train": ..., "test": ...}`` or ``{"all": ...}``) and notes."""
    source = (source or "").strip()
    if source == FASHION_MNIST:
        return read_fashion_mnist()
    path = Path(source).expanduser()
    if path.suffix.lower() == ".zip":
        if data is None:
            data = read_source_bytes(path, source)
        else:
            check_upload(path.name, len(data))
        return read_image_zip(data, path.name)
    return read_image_folder(path)


# --- stats ----------------------------------------------------------------------------------


class ImageSplits(Protocol):
    """What the stats read of a :class:`bmcore.data.dataset.PreparedDataset` (named here without importing it)."""

    splits: dict[str, pd.DataFrame]
    label_names: list[str]


def _sizes(ds: ImageSplits) -> pd.DataFrame:
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
    sizes = _sizes(ds)
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


def size_frame(ds: ImageSplits) -> pd.DataFrame:
    """Per image: split, label, width, height, mode and aspect ratio (for histograms)."""
    return _sizes(ds)


def common_sizes_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """The most common image sizes from the stats, as a small table."""
    return pd.DataFrame(stats.get("common_sizes", []), columns=["width", "height", "images"])


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


def sample_images(ds: ImageSplits, per_class: int = 4, split: str = "train", seed: int = 0) -> pd.DataFrame:
    """A few images per class for a grid: columns label, image (PNG bytes), path; classes in label order."""
    df = ds.splits[split]
    parts = []
    for label in ds.label_names:
        rows = df[df["label"] == label]
        parts.append(rows.sample(min(per_class, len(rows)), random_state=seed) if len(rows) else rows)
    return pd.concat(parts, ignore_index=True)[["label", "image", "path"]] if parts else _frame([])[["label", "image", "path"]]


def modes_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Images per mode, with its channels ("L": 1, grayscale; "RGB": 3, colour), as a small table."""
    rows = [{"mode": m, "channels": stats.get("channels", {}).get(m, 1 if m == "L" else 3), "images": n}
            for m, n in stats.get("modes", {}).items()]
    return pd.DataFrame(rows, columns=["mode", "channels", "images"])


def thumbnail(png: bytes, size: int = 84) -> bytes:
    """A PNG scaled so its longer side is ``size`` pixels, for a grid: small images are enlarged with sharp pixels
    (nearest neighbour), large ones reduced smoothly, so each cell shows what the model sees at a readable size."""
    img = Image.open(io.BytesIO(png))
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return encode_png(img.resize(new, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS))
