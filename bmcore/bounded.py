"""Compressed tables measured before they are decoded: a Parquet or xlsx file of a few KB can expand to gigabytes.

Both checks raise :class:`BmcoreError` against the caps of :mod:`bmcore.limits` while reading, holding at most one
Parquet row group (its strings still dictionary-encoded) or one xlsx row at a time, so a refused file never sits
decoded in memory. A file that passes is then read as usual: its decoded size is now known to be within the caps.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from .errors import BmcoreError
from .limits import (
    check_cell_chars,
    check_file_chars,
    check_file_rows,
    check_unpacked,
    check_unpacked_images,
    current,
)

# Bytes one decoded value takes, by Parquet physical type (BYTE_ARRAY: its offset; the bytes are measured).
_WIDTHS = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8, "BYTE_ARRAY": 4}


def _lengths(values: Any) -> Any:
    """Per-value lengths of a string or binary Arrow array (characters or bytes); None for other types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.utf8_length(values)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pc.binary_length(values)
    return None


def _sizes(array: Any) -> tuple[int, int]:
    """The longest string (or bytes) and the total length of all of them in an Arrow array of any nesting,
    a dictionary value counted once per row that uses it, without decoding the dictionary."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if pa.types.is_struct(t):
        parts = [_sizes(child) for child in array.flatten()]
        return max((p[0] for p in parts), default=0), sum(p[1] for p in parts)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_map(t):
        return _sizes(array.flatten())
    if pa.types.is_dictionary(t):
        lengths = _lengths(array.dictionary)
        if lengths is not None:
            lengths = pc.take(lengths, array.indices)  # one length per row: a repeated string counts every time
    else:
        lengths = _lengths(array)
    if lengths is None or len(lengths) == 0:
        return 0, 0
    return int(pc.max(lengths).as_py() or 0), int(pc.sum(lengths).as_py() or 0)


def check_parquet(data: bytes, name: str, *, images: bool = False) -> None:
    """Refuse a Parquet file that decodes to more than the caps, before it is decoded.

    The footer gives the rows and an upper bound of the fixed-width data (values times their width, whatever
    the encoding: a run-length-encoded column of a billion zeros is a few bytes on disk); then each row group
    is read with every string and binary column kept dictionary-encoded and measured, with a running total.
    Text tables (``images=False``) are held to the cell and character caps, image tables to the unpacked-MB cap.
    A damaged file is a one-line error too.
    """
    try:
        _check_parquet(data, name, images)
    except BmcoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for damaged files
        raise BmcoreError(f"{name} is not a readable Parquet file ({exc.__class__.__name__})") from exc


def _check_parquet(data: bytes, name: str, images: bool) -> None:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    check_file_rows(name, meta.num_rows)
    leaves = [meta.schema.column(j) for j in range(meta.num_columns)]

    def width(leaf: Any) -> int:
        return leaf.length if leaf.physical_type == "FIXED_LEN_BYTE_ARRAY" else _WIDTHS.get(leaf.physical_type, 8)

    unpacked = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        unpacked += sum(max(group.column(j).total_uncompressed_size, group.column(j).num_values * width(leaf))
                        for j, leaf in enumerate(leaves))
    (check_unpacked_images if images else check_unpacked)(name, unpacked)
    strings = [leaf.path for leaf in leaves if leaf.physical_type == "BYTE_ARRAY"]
    pf = pq.ParquetFile(io.BytesIO(data), read_dictionary=strings)
    total = 0
    for i in range(pf.num_row_groups):
        for column in pf.read_row_group(i).columns:
            for chunk in column.chunks:
                longest, size = _sizes(chunk)
                total += size
                if images:
                    check_unpacked_images(name, total)
                else:
                    check_cell_chars(name, longest)
                    check_file_chars(name, total)


_SHARED = re.compile(rb"<(?:\w+:)?si[\s>].*?</(?:\w+:)?si>", re.S)  # one shared string, with its markup


def _shared_strings_within_caps(zf: zipfile.ZipFile) -> bool:
    """True when the shared strings cannot take an xlsx past the caps, from a bound found in C-speed scans:
    cells that use a shared string (``t="s"`` in the sheets) times the longest one (its bytes, markup included)."""
    lim = current()
    names = zf.namelist()
    if "xl/sharedStrings.xml" not in names:
        return "xl/sharedstrings.xml" not in {n.lower() for n in names}  # none (inline strings only), or oddly named
    longest = max((len(m) for m in _SHARED.findall(zf.read("xl/sharedStrings.xml"))), default=0)
    if longest > lim.max_cell_chars:
        return False
    if not lim.max_file_chars:
        return True
    uses = 0
    for n in names:
        if n.startswith("xl/worksheets/") and n.endswith(".xml"):
            sheet = zf.read(n)
            uses += sheet.count(b't="s"') + sheet.count(b"t='s'")
    return uses * longest <= lim.max_file_chars


def check_xlsx(data: bytes, name: str) -> None:
    """Refuse an xlsx whose zip members unpack to more than the caps allow, then one whose cells add up to more,
    before pandas expands it: one shared string of 100,000 characters used in 20,000 cells is 170 KB on disk and
    2*10^9 characters in a frame. When a quick bound on the shared strings is within the caps (most files) the
    read checks the cells; otherwise every sheet is streamed row by row (openpyxl's read-only mode) and counted.

    An old ``.xls`` (not a zip) or a damaged file passes: the Excel reader says what is wrong with it.
    """
    if data[:2] != b"PK":
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())
            check_unpacked(name, unpacked)
            if _shared_strings_within_caps(zf):
                return  # pandas expands the file to at most its XML plus the bound: the read checks the rest
    except zipfile.BadZipFile:
        return
    import openpyxl

    lim = current()
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many types for damaged files; pandas reports them
        return
    rows = total = 0
    try:
        for sheet in book.worksheets:
            for k, row in enumerate(sheet.iter_rows(values_only=True)):
                rows += k > 0  # the first row of each sheet is its header
                for v in row:
                    if v is None:
                        continue
                    n = len(v) if isinstance(v, str) else len(str(v))
                    if n > lim.max_cell_chars:
                        check_cell_chars(name, n)
                    total += n
                if lim.max_file_rows and rows > lim.max_file_rows:
                    check_file_rows(name, rows)
                if lim.max_file_chars and total > lim.max_file_chars:
                    check_file_chars(name, total)
    except BmcoreError:
        raise
    except Exception:  # noqa: BLE001 - a damaged sheet: pandas says what is wrong with it
        return
    finally:
        book.close()
