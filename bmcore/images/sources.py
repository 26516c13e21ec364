"""Image sources read into image frames (:mod:`bmcore.images.codec`): a folder, or an uploaded ``.zip``, with one
subfolder per class (torchvision's ``ImageFolder`` shape), optionally under ``train/``, ``validation/`` (or ``val/``,
``dev/``) and ``test/``; and ``builtin:fashion-mnist`` (:mod:`bmcore.images.fashion_mnist`).

Nothing is ever extracted: zip members are read in memory, after their names, kinds and unpacked sizes are
checked (``..`` and absolute names, links and zip bombs are refused).
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from ..errors import BmcoreError
from ..files import read_source_bytes, resolve_path
from ..limits import check_file_rows, check_unpacked_images, check_upload
from .codec import Decoder, image_frame, total_pixels
from .fashion_mnist import FASHION_MNIST, read_fashion_mnist

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLIT_DIRS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
              "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
SKIPPED_NAMES = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini"})


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
    :func:`bmcore.images.tables.image_column`.)"""
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
    decoder = Decoder()
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        frames = {split: image_frame(list(pool.map(lambda item: decoder.row(read(item[0]), *item), items)))
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
