"""Tables of images: a CSV or Parquet file with an image-path column (paths relative to the file's folder, and
confined to it) or an image-bytes column, plus a label column, read into an image frame
(:mod:`bmcore.images.codec`). :mod:`bmcore.data.readers` finds the column and calls these.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from ..bounded import check_parquet
from ..errors import BmcoreError
from ..files import resolve_path
from .codec import Decoder, image_frame, total_pixels
from .sources import is_image_file

IMAGE_COLUMN_NAMES = ("image", "img", "image_path", "path", "file", "filename", "file_name", "image_bytes", "bytes")
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
    order = sorted(range(len(columns)), key=lambda i: (str(columns[i]).lower() not in IMAGE_COLUMN_NAMES, i))
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
    decoder = Decoder()
    rows = []
    for item in items:
        rows.append(decoder.row(read(item), item[0], item[2]))
        if item[3]:
            rows[-1]["path"] = ""
    notes = decoder.notes()
    if (~keep).any():
        notes.insert(0, f"{name}: left out {int((~keep).sum()):,} rows without an image or a label")
    out = image_frame(rows)
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
