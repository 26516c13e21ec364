"""Tables: one file read into a frame of strings, bounded and refused in one line when malformed.

CSV and TSV (the encoding and the delimiter detected), JSON and JSON Lines, Parquet and Excel (:func:`read_table`).
Sizes are checked against the deployment's caps (:mod:`bmcore.limits`) before and after decoding; what the file is
part of (a folder of splits, an upload, an image table) is :mod:`bmcore.data.readers`' job.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..bounded import check_parquet, check_xlsx
from ..errors import BmcoreError
from ..files import read_source_bytes
from ..limits import check_cell_chars, check_file_chars, check_file_rows, current
from ..workspace import check_regular

FILE_TYPES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "csv", ".json": "json", ".jsonl": "jsonl",
              ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel", ".xls": "excel"}
MAX_COLUMNS = 2000  # columns in one table: room for MAX_CLASSES 0/1 label columns and more; wider is no text table


def decode_text(raw: bytes, name: str, notes: list[str]) -> str:
    """Decode bytes as UTF-8 (BOM allowed), falling back to Latin-1 with a note."""
    if not raw.strip():
        raise BmcoreError(f"{name} is empty")
    if b"\x00" in raw[:8192]:
        raise BmcoreError(f"{name} looks like a binary file, not text; save it as UTF-8 CSV, JSON or Parquet")
    if raw.startswith(b"\xef\xbb\xbf"):
        notes.append(f"{name}: removed the UTF-8 byte-order mark")
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        notes.append(f"{name}: not valid UTF-8, decoded as Latin-1")
        return raw.decode("latin-1")


def _sniff_delimiter(text: str, default: str) -> str:
    sample = text[:65536]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=[",", ";", "\t", "|"]).delimiter
    except csv.Error:
        return default
    # The header names the columns: a delimiter it does not hold splits nothing. Texts full of "&lt;" and "&amp;"
    # (1,000 SMS messages) made the sniffer choose ';' for a plain "text,label" file, which then read as ragged.
    end = re.search(r"[\r\n]", sample)
    header = sample[:end.start()] if end else sample
    return default if sniffed not in header and default in header else sniffed


def _check_header(columns: list[str], name: str) -> None:
    if len(columns) > MAX_COLUMNS:  # checked on the header line, before a CSV's rows are parsed
        raise BmcoreError(f"{name} has {len(columns):,} columns, more than {MAX_COLUMNS:,}; keep the text and label "
                          "columns (and the 0/1 label columns of a multi-label table)")
    seen: set[str] = set()
    dups = sorted({c for c in columns if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dups:
        raise BmcoreError(f"{name} has duplicate column names: {', '.join(map(str, dups))}; rename them")


def _read_delimited(text: str, name: str, default_sep: str, notes: list[str]) -> pd.DataFrame:
    sep = _sniff_delimiter(text, default_sep)
    if sep != default_sep:
        notes.append(f"{name}: detected the delimiter {sep!r}")
    end = re.search(r"[\r\n]", text)  # CR alone ends a line too (old Mac files), as pandas reads them
    first_line = text[:end.start()] if end else text
    if end and "\n" not in text:
        notes.append(f"{name}: lines end in a carriage return alone (an old Mac file), read as line breaks")
    try:
        header = next(csv.reader([first_line], delimiter=sep), [])
    except csv.Error as exc:  # "field larger than field limit (131072)": one huge line, not a table
        raise BmcoreError(f"{name}: its first line is not a header row ({exc}); is it really a delimited table?") from exc
    _check_header(header, name)
    cap = current().max_file_rows
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                         skip_blank_lines=True, nrows=cap + 1 if cap else None)  # one over the cap shows it is over
    except pd.errors.ParserError as exc:
        msg = str(exc).strip().splitlines()[-1]
        raise BmcoreError(f"{name} has ragged rows ({msg}); quote fields that contain the delimiter") from exc
    except pd.errors.EmptyDataError as exc:
        raise BmcoreError(f"{name} is empty") from exc
    return df


# A JSON escape of half a UTF-16 pair (\ud800-\udfff) with no other half: valid JSON, but not text.
_LONE_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                             r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _read_json(text: str, name: str, lines: bool, notes: list[str] | None = None) -> pd.DataFrame:
    """Parse JSON or JSON Lines; a lone surrogate is refused with the file and line, not deep in pandas or Arrow."""
    m = _LONE_SURROGATE.search(text)
    try:
        df = _lists_as_json(_parse_json(text, name, lines), name, notes)
        if m is not None:  # a match may still be an escaped backslash followed by "ud800": check the values
            df.map(lambda v: v.encode("utf-8") if isinstance(v, str) else v)
            [str(c).encode("utf-8") for c in df.columns]
    except RecursionError:  # [[[[... 100,000 deep: json gives up at the interpreter's recursion limit
        raise BmcoreError(f"{name} is nested too deeply (hundreds of lists or objects inside one another); "
                          "a table needs flat records") from None
    except UnicodeEncodeError as exc:
        where = f" line {text.count(chr(10), 0, m.start()) + 1}" if m is not None else ""
        found = f" ({m.group(0)})" if m is not None else ""
        raise BmcoreError(f"{name}{where} has a lone surrogate{found}, half of a UTF-16 pair that is not text; "
                          "fix or remove that escape") from exc
    return df


def _lists_as_json(df: pd.DataFrame, name: str = "", notes: list[str] | None = None) -> pd.DataFrame:
    """Cells holding a list or an object (``"labels": ["anger", "joy"]``, ``"meta": {"a": 1}``) as JSON text, as a
    CSV would hold them (not as Python's repr, ``{'a': 1}``); a note names the columns of objects."""
    objects = []
    for c in df.columns:
        if df[c].dtype == object and df[c].map(lambda v: isinstance(v, (list, dict))).any():
            if df[c].map(lambda v: isinstance(v, dict)).any():
                objects.append(str(c))
            df[c] = df[c].map(lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v)
    if objects and notes is not None:
        notes.append(f"{name}: JSON objects in column {', '.join(map(repr, objects))} kept as JSON text")
    return df


def _parse_json(text: str, name: str, lines: bool) -> pd.DataFrame:
    if lines:
        records = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BmcoreError(f"{name} line {i} is not valid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict):
                raise BmcoreError(f"{name} line {i} is not a JSON object; expected one record per line")
            records.append(rec)
            check_file_rows(name, len(records))
        return pd.DataFrame.from_records(records)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # JSON Lines saved as .json still reads.
        try:
            return _parse_json(text, name, lines=True)
        except BmcoreError:
            raise BmcoreError(f"{name} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict):
        # {"data": [...]} or a column-oriented {"text": [...], "label": [...]}
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values()))):
            data = next(iter(lists.values()))
        elif lists and len(lists) == len(data) and len({len(v) for v in lists.values()}) == 1:
            return pd.DataFrame(lists)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BmcoreError(f"{name} is not a list of records; expected JSON like [{{\"text\": ..., \"label\": ...}}, ...]")
    check_file_rows(name, len(data))
    return pd.DataFrame.from_records(data)


def _read_parquet(data: bytes, name: str) -> pd.DataFrame:
    """Read Parquet with its size bounded before it is decoded (a decompression bomb, :func:`bounded.check_parquet`);
    a nested column (a list of a million dictionary strings decodes to gigabytes) is refused from the schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    nested = [f.name for f in pq.ParquetFile(io.BytesIO(data)).schema_arrow if pa.types.is_nested(f.type)]
    if nested:
        raise BmcoreError(f"{name} has nested columns ({', '.join(map(str, nested))}); flatten them to text and label columns")
    check_parquet(data, name)
    return pq.read_table(io.BytesIO(data)).to_pandas()


def _check_size(df: pd.DataFrame, name: str) -> None:
    """Rows, the longest cell and the total characters of a frame read from a file, against the caps."""
    check_file_rows(name, len(df))
    longest = total = 0
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_string_dtype(s.dtype):  # object, and pandas 3's str (and string): CSV, JSON and Excel text
            lengths = s.map(lambda v: len(v) if isinstance(v, str) else 0) if s.dtype == object else s.str.len().fillna(0)
            if len(lengths):
                longest, total = max(longest, int(lengths.max())), total + int(lengths.sum())
    check_cell_chars(name, longest)
    check_file_chars(name, total)


def _parquet_table(data: bytes, name: str) -> pd.DataFrame:
    """A Parquet file's frame, with categorical columns as plain values; nested columns refused."""
    if not data:
        raise BmcoreError(f"{name} is empty")
    try:
        df = _read_parquet(data, name)
    except BmcoreError:
        raise
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise BmcoreError(f"{name} is not a readable Parquet file ({exc.__class__.__name__})") from exc
    # Dictionary-encoded (categorical) columns, as pandas writes a category dtype: plain values, as CSV gives.
    for c in [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]:
        df[c] = df[c].astype(object)
    nested = [c for c in df.columns if df[c].map(lambda v: isinstance(v, (list, dict, np.ndarray))).any()]
    if nested:
        raise BmcoreError(f"{name} has nested columns ({', '.join(map(str, nested))}); flatten them to text and label columns")
    return df


def _excel_table(data: bytes, name: str, sheet: str | None, notes: list[str]) -> pd.DataFrame:
    """The sheet ``sheet`` of an Excel file, or its one sheet with data (named in ``notes``)."""
    if not data:
        raise BmcoreError(f"{name} is empty")
    check_xlsx(data, name)
    try:
        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, dtype=str)
    except Exception as exc:
        raise BmcoreError(f"{name} is not a readable Excel file ({exc.__class__.__name__})") from exc
    if sheet is not None:
        if sheet not in sheets:
            raise BmcoreError(f"{name} has no sheet {sheet!r}; sheets: {', '.join(sheets)}")
        return sheets[sheet]
    filled = {k: v for k, v in sheets.items() if len(v)}
    if len(filled) > 1:
        raise BmcoreError(f"{name} has several sheets with data ({', '.join(filled)}); choose one (--sheet NAME)")
    key = next(iter(filled or sheets))
    notes.append(f"{name}: read sheet {key!r}")
    return sheets[key]


def read_table(path: str | Path, data: bytes | None = None, sheet: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read one file into a DataFrame of strings. ``data`` is the file's bytes when it was uploaded.

    Returns the frame and notes (encoding fallback, detected delimiter, chosen sheet).
    Raises :class:`BmcoreError` with one line for malformed files.
    """
    path = Path(path)
    name = path.name
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise BmcoreError(f"{name}: unsupported file type {path.suffix or '(none)'}; use CSV, TSV, JSON, JSONL, Parquet or Excel")
    notes: list[str] = []
    if data is None:
        check_regular(path)
        data = read_source_bytes(path)
    if kind in ("csv", "tsv", "json", "jsonl"):
        text = decode_text(data, name, notes)
        check_file_chars(name, len(text))  # the cells hold fewer characters than the text they are read from
        if kind in ("csv", "tsv"):
            df = _read_delimited(text, name, "\t" if kind == "tsv" else ",", notes)
        else:
            df = _read_json(text, name, lines=kind == "jsonl", notes=notes)
    elif kind == "parquet":
        df = _parquet_table(data, name)
    else:
        df = _excel_table(data, name, sheet, notes)
    df.columns = [str(c).strip() for c in df.columns]
    _check_header(list(df.columns), name)
    if len(df.columns) == 0:
        raise BmcoreError(f"{name} has no columns")
    if len(df) == 0:
        raise BmcoreError(f"{name} has a header but no rows")
    if kind != "parquet":  # Parquet was measured before it was decoded
        _check_size(df, name)
    return df, notes
