"""Data readers (issue 26): caps enforced while reading, JSON objects as JSON text, CR-only CSV, CSV-quoted
multi-label parts. The bad inputs themselves are cases of tests/catalogue.py.

Bombs are refused with bounded memory: a small file that expands to gigabytes, read in a public demo by the CLI
(``data inspect``) and by the Data page (an AppTest), each in a subprocess whose peak memory is measured.

The bound, :data:`PEAK_MB`, is the one the README states. A process that passes it is killed at once, so a
regression fails here instead of taking the machine's memory (these bombs took 2 to 20 GB before they were
measured while reading).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet  # noqa: F401 - pa.parquet
import pytest
from catalogue import (
    _parquet,
    _repeated,
    csv_one_cell,
    parquet_binary_bomb,
    parquet_nested_bomb,
    xlsx_shared_string_bomb,
)
from conftest import ROOT

from bmcore import data as bdata
from bmcore.data import read_table
from bmcore.data.label_values import split_parts
from bmcore.errors import BmcoreError

PEAK_MB = 1536  # the README's bound for reading any one file in a public demo
SECONDS = 90  # per process, generous for a loaded 2-core CI machine (about 2 s each here)
DEMO = {"BMCORE_PUBLIC_DEMO": "1", "BMCORE_ALLOW_LOCAL_PATHS": "1"}

# name, builder, fragment of the one-line refusal. Each expands to about 2*10^9 characters or bytes.
BOMBS: list[tuple[str, Callable[[], bytes], str]] = [
    ("shared.xlsx", xlsx_shared_string_bomb, "decodes to more than 50,000,000 characters"),
    ("one-cell.csv", csv_one_cell, "has a cell of 45,000,000 characters"),
    ("dictionary.parquet", lambda: _parquet(_repeated(20_000, "a" * 100_000)), "decodes to more than 50,000,000 characters"),
    ("nested.parquet", parquet_nested_bomb, "has nested columns (tokens)"),
    ("images.parquet", parquet_binary_bomb, "more than the limit of 1000 MB"),
]


# Run first in the child: at exit it writes its own peak (VmHWM, kB) to $PEAK_FILE. Not wait4's ru_maxrss: Linux
# carries the parent's peak into a forked child, so a big pytest process would count as the child's.
PEAK = """
import atexit, os
def _peak():
    with open("/proc/self/status") as st, open(os.environ["PEAK_FILE"], "w") as out:
        out.write(next(line for line in st if line.startswith("VmHWM")).split()[1])
atexit.register(_peak)
"""
CLI = PEAK + "import runpy, sys\nsys.argv[0] = 'bmcore'\nrunpy.run_module('bmcore', run_name='__main__', alter_sys=True)\n"


def run_measured(code: str, args: list[str], env: dict[str, str], out: Path) -> tuple[int, float, float]:
    """Run ``python -c code args``; its exit code, peak resident memory (MB) and seconds. It is killed when its
    memory passes :data:`PEAK_MB` or its time :data:`SECONDS`."""
    peak_file = out.with_suffix(".peak")
    start, polled = time.monotonic(), 0
    with open(out, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env={**env, "PEAK_FILE": str(peak_file)},
                                stdout=fh, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as st:
                    polled = max(polled, next(int(line.split()[1]) for line in st if line.startswith("VmHWM")))
            except (OSError, StopIteration, ValueError):
                pass
            if polled > PEAK_MB * 1024 or time.monotonic() - start > SECONDS:
                proc.kill()
            time.sleep(0.02)
    reported = int(peak_file.read_text()) if peak_file.exists() else 0
    return proc.returncode, max(polled, reported) / 1024, time.monotonic() - start


@pytest.fixture
def demo_env(workspace: Path) -> dict[str, str]:
    return {**os.environ, **DEMO, "BMCORE_WORKSPACE": str(workspace)}


@pytest.mark.parametrize("name,build,expect", BOMBS, ids=[b[0] for b in BOMBS])
def test_cli_refuses_bomb_with_bounded_memory(name: str, build: Callable[[], bytes], expect: str, tmp_path: Path,
                                              demo_env: dict[str, str]) -> None:
    path = tmp_path / name
    path.write_bytes(build())
    assert path.stat().st_size < 46_000_000
    rc, peak, seconds = run_measured(CLI, ["data", "inspect", str(path)], demo_env, tmp_path / "out.txt")
    said = (tmp_path / "out.txt").read_text()
    assert peak < PEAK_MB and seconds < SECONDS, (peak, seconds, said[-500:])
    assert rc == 2 and expect in said and "Traceback" not in said, said[-500:]
    assert len(said.strip().splitlines()) == 1


PAGE = """
import json, sys
from streamlit.testing.v1 import AppTest
out = []
for path in sys.argv[1:]:
    at = AppTest.from_file("app.py", default_timeout=120)
    at.session_state["data_source_kind"] = "Upload a file"
    at.run()
    with open(path, "rb") as fh:
        at.file_uploader(key="data_upload").upload(path.rsplit("/", 1)[-1], fh.read(), "application/octet-stream").run()
    out.append({"errors": [e.value for e in at.error], "exception": [e.value for e in at.exception]})
print(json.dumps(out))
"""


@pytest.mark.slow
def test_data_page_refuses_bombs_with_bounded_memory(tmp_path: Path, demo_env: dict[str, str]) -> None:
    """Every bomb uploaded on the Data page, one after another in one process: its peak stays under the bound."""
    paths = []
    for name, build, _ in BOMBS:
        paths.append(tmp_path / name)
        paths[-1].write_bytes(build())
    env = {**demo_env, "PYTHONPATH": str(ROOT)}
    rc, peak, seconds = run_measured(PEAK + PAGE, list(map(str, paths)), env, tmp_path / "out.txt")
    said = (tmp_path / "out.txt").read_text()
    assert peak < PEAK_MB, (peak, said[-500:])
    assert rc == 0 and seconds < 2 * SECONDS, (rc, seconds, said[-1000:])
    pages = json.loads(said.strip().splitlines()[-1])
    for (name, _, expect), page in zip(BOMBS, pages, strict=True):
        assert not page["exception"], (name, page)
        assert any(expect in e and "\n" not in e for e in page["errors"]), (name, page["errors"])


# --- engine ---------------------------------------------------------------------------------------


def test_csv_json_and_excel_cells_are_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pandas 3 reads text as ``str``, not ``object``: the cell cap holds for CSV and JSON, and for Excel while streaming."""
    with pytest.raises(BmcoreError, match="has a cell of 1,000,001 characters, more than the limit of 1,000,000"):
        read_table("long.csv", b"text,label\n" + b"y" * 1_000_001 + b",a\nb c,d\n")
    with pytest.raises(BmcoreError, match="has a cell of 1,000,001 characters"):
        read_table("long.json", json.dumps([{"text": "y" * 1_000_001, "label": "a"}]).encode())
    monkeypatch.setenv("BMCORE_MAX_CELL_CHARS", "1000")
    pd.DataFrame({"text": ["y" * 2000, "b c"], "label": ["a", "b"]}).to_excel(tmp_path / "long.xlsx", index=False)
    with pytest.raises(BmcoreError, match="has a cell of 2,000 characters, more than the limit of 1,000"):
        read_table(tmp_path / "long.xlsx")
    monkeypatch.setenv("BMCORE_MAX_FILE_ROWS", "10")
    pd.DataFrame({"text": [f"row {i}" for i in range(11)], "label": ["a"] * 11}).to_excel(tmp_path / "rows.xlsx", index=False)
    with pytest.raises(BmcoreError, match="has more than 10 rows"):
        read_table(tmp_path / "rows.xlsx")
    pd.DataFrame({"text": [f"row {i}" for i in range(10)], "label": ["a"] * 10}).to_excel(tmp_path / "ok.xlsx", index=False)
    assert len(read_table(tmp_path / "ok.xlsx")[0]) == 10
    small = xlsx_shared_string_bomb(text_chars=30, cells=10)  # shared strings within the caps: read as usual
    assert read_table("shared.xlsx", small)[0]["text"].tolist() == ["x" * 30] * 10
    monkeypatch.setenv("BMCORE_MAX_FILE_CHARS", "2000")  # 10 x 500 characters may pass the bound: counted cell by cell
    with pytest.raises(BmcoreError, match="decodes to more than 2,000 characters"):
        read_table("shared.xlsx", xlsx_shared_string_bomb(text_chars=500, cells=10))


def test_parquet_fixed_width_columns_are_bounded_from_the_footer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run-length-encoded column of zeros is a few bytes on disk and rows x 8 bytes decoded: counted before reading."""
    table = pa.table({"text": pa.array(["a film", "a play"] * 5_000), "label": pa.array(np.zeros(10_000, np.int64))})
    meta = pa.parquet.ParquetFile(pa.BufferReader(_parquet(table))).metadata
    encoded = sum(meta.row_group(0).column(j).total_uncompressed_size for j in range(meta.num_columns))
    assert encoded < 60_000 < 10_000 * (8 + 4)  # what the encoded size said, what the columns decode to
    monkeypatch.setenv("BMCORE_MAX_FILE_CHARS", "30000")
    with pytest.raises(BmcoreError, match="unpacks to"):
        read_table("wide.parquet", _parquet(table))
    monkeypatch.setenv("BMCORE_MAX_FILE_CHARS", "1000000")
    assert len(read_table("wide.parquet", _parquet(table))[0]) == 10_000


def test_json_objects_are_stored_as_json_text(workspace: Path) -> None:
    records = [{"text": f"sentence number {i} here", "label": "ab"[i % 2], "meta": {"source": "wéb", "n": i}}
               for i in range(40)]
    df, notes = read_table("objects.json", json.dumps(records).encode())
    assert json.loads(df["meta"][3]) == {"source": "wéb", "n": 3} and df["meta"][3].startswith('{"source": "wéb"')
    assert notes == ["objects.json: JSON objects in column 'meta' kept as JSON text"]


def test_cr_only_line_endings_are_read() -> None:
    body = "text,label\r" + "".join(f"sentence {i} here,{'ab'[i % 2]}\r" for i in range(30))
    df, notes = read_table("mac.csv", body.encode())
    assert df.shape == (30, 2) and df["text"][29] == "sentence 29 here" and df["label"][29] == "b"
    assert "lines end in a carriage return alone" in notes[0]


def test_csv_quoted_label_parts_keep_their_delimiter() -> None:
    assert split_parts('"good, fun";pos', ";") == ["good, fun", "pos"]
    assert split_parts('"New York, NY",Boston', ",") == ["New York, NY", "Boston"]
    assert split_parts('a "b" c;d', ";") == ['a "b" c', "d"]
    assert split_parts('"unbalanced;x', ";") == ['"unbalanced', "x"]  # not CSV: a plain split
    labels = ['"good, fun";pos', "pos", "neg", "good, fun", '"good, fun";neg', "neg;pos"]
    df = pd.DataFrame({"text": [f"sentence number {i} about a film" for i in range(120)],
                       "label": [labels[i % len(labels)] for i in range(120)]})
    ds = bdata.prepare(bdata.RawData("quoted", {"all": df}), "quoted", seed=0)
    assert ds.label_names == ["good, fun", "neg", "pos"]
    assert any("parts in double quotes read whole" in n for n in ds.notes)
    every = pd.concat(ds.splits.values())
    assert set(every.loc[every["text"] == "sentence number 0 about a film", "label"]) == {'["good, fun", "pos"]'}


def test_a_comma_header_wins_over_semicolons_in_the_texts(shared_data: Path, tmp_path: Path) -> None:
    """1,000 real SMS messages written by pandas ("text,label"): their "&lt;#&gt;" entities made csv.Sniffer pick ';',
    and the file was refused as ragged. The header holds the delimiter; a ';' file (a European spreadsheet) still reads."""
    from sklearn.model_selection import train_test_split

    sms = pd.read_csv(shared_data / "sms_spam" / "all.csv")
    test, _ = train_test_split(sms, train_size=500, stratify=sms["label"], random_state=0)
    rest = sms.drop(test.index)
    cut, _ = train_test_split(rest, train_size=1000, stratify=rest["label"], random_state=0)
    path = tmp_path / "train.csv"
    cut.to_csv(path, index=False)
    df, notes = read_table(path)
    assert list(df.columns) == ["text", "label"] and len(df) == 1000 and not notes
    cut.to_csv(path, index=False, sep=";")
    df, notes = read_table(path)
    assert list(df.columns) == ["text", "label"] and len(df) == 1000 and "detected the delimiter ';'" in " ".join(notes)
