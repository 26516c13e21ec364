"""The bad-input catalogue: every case, how to make it, and what the user sees.

One table feeds three things: ``tests/test_catalogue.py`` runs each case through the CLI and the UI,
``scripts/catalogue_table.py`` writes the README table, and a test checks that the README is current.
Each input is built from scratch (``Ctx`` gives a temp folder, the tiny model and the workspace).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bmcore.processes import process_start


@dataclass
class Ctx:
    """What a case's builders may use: a scratch folder outside the workspace, the tiny model, the workspace."""

    tmp: Path
    tiny_model: Path
    workspace: Path
    procs: list = field(default_factory=list)  # processes a case started (a live job), stopped after the test


@dataclass(frozen=True)
class Case:
    """One bad input.

    ``kind`` says how it is fed: ``file`` (an upload on the Data page, ``data prepare``/``data inspect`` on
    the CLI), ``train`` (Train page widgets, ``train`` on the CLI), ``predict`` (Playground text,
    ``predict``), ``evaluate``, ``name`` or ``limit``. ``ok`` cases are accepted with a notice rather
    than refused; ``expect`` is a fragment of the message either way. ``no_ui``/``no_cli`` say why a
    channel cannot produce the input at all.
    """

    id: str
    group: str
    title: str
    kind: str
    expect: str
    ok: bool = False
    file: Callable[[], tuple[str, bytes]] | None = None
    cli_args: tuple[str, ...] = ()
    train: dict = field(default_factory=dict)  # widget values on the Train page / flags on the CLI
    text: str | None = None
    env: dict = field(default_factory=dict)
    no_ui: str = ""
    no_cli: str = ""
    cli_expect: str = ""  # when the CLI words it differently (it names a flag, not a box)
    folder: Callable[[Path], Path] | None = None  # kind "folder": builds a folder source in a scratch folder
    markdown: tuple[str, ...] = ()  # data the page must show escaped: never verbatim in Markdown it renders
    secret: str = ""  # content of a file outside the source that no message may show
    make: Callable[[Ctx], Path] | None = None  # builds a special input (a run, a FIFO, a model folder): its path
    ui_skip: str = ""  # why the UI test does not drive a case that a page could produce


def rows(n: int = 60, labels: tuple[str, ...] = ("negative", "positive")) -> pd.DataFrame:
    """``n`` distinct sentences with labels taking turns."""
    return pd.DataFrame({"text": [f"this is sample sentence number {i} about the film" for i in range(n)],
                         "label": [labels[i % len(labels)] for i in range(n)]})


def csv_bytes(df: pd.DataFrame, **kw) -> bytes:
    return df.to_csv(index=False, **kw).encode("utf-8")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.csv", csv_bytes(rows()))
    return buf.getvalue()


def _parquet_nested() -> bytes:
    df = rows(20)
    df["tokens"] = [["a", "b"]] * len(df)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _excel_sheets() -> bytes:
    buf = io.BytesIO()
    with pd.ExcelWriter(buf) as xw:
        rows(30).to_excel(xw, sheet_name="train", index=False)
        rows(30).to_excel(xw, sheet_name="extra", index=False)
    return buf.getvalue()


def _ragged() -> bytes:
    lines = ["text,label"] + [f"sentence number {i} here,{'negative' if i % 2 else 'positive'}" for i in range(40)]
    lines[10] = "an unquoted, comma in this one,positive"
    return ("\n".join(lines) + "\n").encode()


def _with_texts(*texts: str) -> bytes:
    df = rows(60)
    for i, t in enumerate(texts):
        df.loc[i, "text"] = t
    return csv_bytes(df)


def _labels(values: list) -> bytes:
    df = rows(len(values))
    df["label"] = values
    return csv_bytes(df)


LONG = "word " * 20_000  # 100,000 characters
EMOJI = "this film 😀🎬🍿 was a joy 👍🏽"
RTL = "هذا الفيلم رائع جدا وممتع"
ZERO_WIDTH = "a\u200bgreat\u200c film\u200d with\ufeff hidden spaces"
SCRIPT = "<script>alert('x')</script> <b>bold</b> review"
F = "Files"
C = "Columns and labels"
T = "Texts"
M = "Models"
H = "Hyperparameters"
S = "Names, paths and public-demo limits"

CASES: list[Case] = [
    # --- files ---------------------------------------------------------------------------------------------
    Case("empty-file", F, "an empty file", "file", "empty.csv is empty", file=lambda: ("empty.csv", b"")),
    Case("header-only", F, "a header with no rows", "file", "has a header but no rows",
         file=lambda: ("header.csv", b"text,label\n")),
    Case("binary-as-csv", F, "a binary file (a zip) named .csv", "file", "looks like a binary file",
         file=lambda: ("binary.csv", _zip())),
    Case("wrong-delimiter", F, "semicolons in a .csv file", "file", "detected the delimiter ';'", ok=True,
         file=lambda: ("semi.csv", csv_bytes(rows(), sep=";"))),
    Case("latin-1", F, "Latin-1 text", "file", "decoded as Latin-1", ok=True,
         file=lambda: ("latin.csv", rows().assign(text=lambda d: d["text"] + " café").to_csv(index=False).encode("latin-1"))),
    Case("utf8-bom", F, "a UTF-8 byte-order mark", "file", "removed the UTF-8 byte-order mark", ok=True,
         file=lambda: ("bom.csv", b"\xef\xbb\xbf" + csv_bytes(rows()))),
    Case("ragged-rows", F, "a row with more fields than the header", "file", "has ragged rows",
         file=lambda: ("ragged.csv", _ragged())),
    Case("duplicate-columns", F, "duplicate column names", "file", "duplicate column names: text",
         file=lambda: ("dups.csv", b"text,text,label\n" + b"".join(f"a b {i},c d {i},x\n".encode() for i in range(20)))),
    Case("json-not-records", F, "JSON that is not a list of records", "file", "is not a list of records",
         file=lambda: ("data.json", b'{"text": "one", "label": [1, 2]}')),
    Case("jsonl-broken-line", F, "JSONL with one broken line", "file", "line 3 is not valid JSON",
         file=lambda: ("data.jsonl", b'{"text": "a b", "label": "x"}\n{"text": "c d", "label": "y"}\n{"text": "e f", "label"\n')),
    Case("parquet-nested", F, "Parquet with a nested (list) column", "file", "has nested columns (tokens)",
         file=lambda: ("nested.parquet", _parquet_nested())),
    Case("excel-sheets", F, "Excel with several filled sheets", "file", "has several sheets with data (train, extra)",
         file=lambda: ("book.xlsx", _excel_sheets())),
    Case("over-upload-limit", F, "an upload over the size limit", "file", "over the upload limit of 1 MB",
         file=lambda: ("big.csv", csv_bytes(rows(30_000))), env={"BMCORE_MAX_UPLOAD_MB": "1"},
         no_cli="the CLI reads local files, which have no upload limit"),
    # --- columns and labels --------------------------------------------------------------------------------
    Case("no-text-column", C, "no text-like column (only numbers and ids)", "file", "no text-like column found",
         file=lambda: ("numbers.csv", b"id,label,score\n" + b"".join(f"{i},{i % 2},{i * 0.5}\n".encode() for i in range(50)))),
    Case("label-column-missing", C, "a label column that is not in the file", "file", "column 'category' is missing",
         file=lambda: ("rows.csv", csv_bytes(rows())), cli_args=("--label-column", "category"),
         no_ui="the page offers only the file's own columns"),
    Case("label-column-empty", C, "a label column with no values", "file", "label column 'label' is empty",
         file=lambda: ("nolabels.csv", _labels([""] * 60))),
    Case("one-class", C, "one class only", "file", "only one class ('ham')",
         file=lambda: ("one.csv", _labels(["ham"] * 60))),
    Case("class-of-one", C, "a class with a single example when a split is made", "file", "class 'rare' has only 1 example",
         file=lambda: ("rare.csv", _labels(["negative", "positive"] * 30 + ["rare"]))),
    Case("float-labels", C, "a float label column (a regression target)", "file",
         "holds numbers that are not whole (60 distinct values from 0 to 8.429), read as a score", ok=True,
         file=lambda: ("floats.csv", _labels([i / 7 for i in range(60)]))),
    Case("thousand-classes", C, "1,000 classes", "file", "has 1000 classes (more than 500)",
         file=lambda: ("many.csv", _labels([f"class{i % 1000}" for i in range(3000)]))),
    Case("labels-case-space", C, "labels that differ only in case or whitespace", "file",
         "labels that differ only in case: POS / Pos / pos", ok=True,
         file=lambda: ("case.csv", _labels(["pos", " pos", "Pos ", "POS", "neg", "neg "] * 10))),
    # --- texts in data -------------------------------------------------------------------------------------
    Case("empty-texts", T, "empty and whitespace-only texts in the data", "file", "rows with an empty text or label", ok=True,
         file=lambda: ("blanks.csv", _with_texts("", "   ", "\t"))),
    Case("long-text", T, "a 100,000-character text in the data", "file", "will be truncated", ok=True,
         file=lambda: ("long.csv", _with_texts(LONG))),
    Case("unicode-texts", T, "emoji, right-to-left and zero-width characters in the data", "file", "all 60 rows kept",
         ok=True, file=lambda: ("unicode.csv", _with_texts(EMOJI, RTL, ZERO_WIDTH))),
    Case("html-texts", T, "HTML and <script> in the data", "file", "all 60 rows kept, stored as text", ok=True,
         file=lambda: ("html.csv", _with_texts(SCRIPT))),
    Case("predict-blank", T, "a blank text to predict", "predict", "the text is empty; type a sentence", text="   "),
    Case("predict-long", T, "a 100,000-character text to predict", "predict", "longer than max_seq_length", ok=True, text=LONG),
    Case("predict-emoji", T, "emoji to predict", "predict", "a prediction", ok=True, text=EMOJI),
    Case("predict-rtl", T, "right-to-left text to predict", "predict", "a prediction", ok=True, text=RTL),
    Case("predict-zero-width", T, "zero-width characters to predict", "predict", "a prediction", ok=True, text=ZERO_WIDTH),
    Case("predict-script", T, "HTML and <script> to predict", "predict", "&lt;script&gt;", ok=True, text=SCRIPT),
    # --- models ---------------------------------------------------------------------------------------------
    Case("model-missing", M, "a model path that does not exist", "train", "does not exist",
         train={"model": "{tmp}/no-such-model"}),
    Case("model-no-weights", M, "a model folder without weights", "train", "has no weights (model.safetensors)",
         train={"model": "{no_weights}"}),
    Case("model-pickle", M, "weights only as a pickle pytorch_model.bin", "train", "has only pickle weights",
         train={"model": "{pickle}"}),
    Case("model-remote-code", M, "a config that asks for remote code (auto_map)", "train", "asks for remote code",
         train={"model": "{remote}"}),
    Case("model-hub-offline", M, "a Hub model id while offline", "train", "from the Hugging Face Hub: offline",
         train={"hub": "bert-base-uncased"}),
    Case("eval-label-mismatch", M, "a model whose labels differ from the dataset's, at evaluation", "evaluate",
         "do not match dataset labels"),
    # --- hyperparameters ------------------------------------------------------------------------------------
    Case("lr-zero", H, "a learning rate of 0", "train", "learning_rate must be positive", train={"learning_rate": 0.0}),
    Case("lr-negative", H, "a negative learning rate", "train", "learning_rate must be positive",
         train={"learning_rate": -1e-4}, no_ui="the learning-rate box stops at 0"),
    Case("batch-zero", H, "a batch size of 0", "train", "per_device_train_batch_size must be at least 1",
         train={"per_device_train_batch_size": 0}, no_ui="the batch-size box stops at 1"),
    Case("seq-above-limit", H, "max_seq_length above the model's limit", "train", "above the model's limit of 512 tokens",
         train={"max_seq_length": 1024}),
    Case("fp16-on-cpu", H, "fp16 asked for on a CPU", "train", "fp16 is not supported on the CPU", ok=True,
         train={"precision": "fp16"}),
    Case("steps-and-epochs", H, "max_steps together with epochs", "train", "not both",
         train={"num_train_epochs": 2.0}, no_ui="one switch picks epochs or steps"),
    # --- names, paths and limits ----------------------------------------------------------------------------
    Case("dataset-name-escape", S, "a dataset name that climbs out of the workspace (../)", "name",
         "invalid dataset name '../evil'"),
    Case("run-name-escape", S, "a run name that climbs out of the workspace (../)", "train", "invalid run name '../evil'",
         train={"name": "../evil"}, cli_expect="no run '../evil'"),
    Case("tracking-password", S, "an MLflow tracking URI with a password in it", "train", "holds a password",
         train={"report_to": "mlflow", "tracking_uri": "http://me:secret@mlflow.lan:5000"}),
    Case("demo-path-outside", S, "a server path outside the workspace in a public demo", "limit",
         "outside the workspace, and paths outside it are turned off", env={"BMCORE_PUBLIC_DEMO": "1"}),
    Case("demo-epochs", S, "more epochs than a public demo allows", "train", "above this deployment's limit of 3",
         train={"num_train_epochs": 10.0, "max_steps": None}, env={"BMCORE_PUBLIC_DEMO": "1", "BMCORE_ALLOW_LOCAL_PATHS": "1"}),
    Case("demo-rows", S, "a training split over a public demo's row cap", "train", "above this deployment's limit of 20",
         env={"BMCORE_PUBLIC_DEMO": "1", "BMCORE_MAX_TRAIN_ROWS": "20", "BMCORE_ALLOW_LOCAL_PATHS": "1"}),
    Case("demo-hub", S, "a Hub model id in a public demo", "train", "Hub downloads are turned off here",
         train={"hub": "bert-base-uncased"}, env={"BMCORE_PUBLIC_DEMO": "1"}),
    Case("demo-jobs", S, "a new job while every job slot (BMCORE_MAX_JOBS) is taken", "train",
         "training jobs are already queued or running", train={"background": True},
         env={"BMCORE_MAX_JOBS": "1"}),
]

# --- hostile input, round two: security (issue 17, items 1-4) ---------------------------------------------

X = "Hostile input (security)"
PORT = 9  # the discard port: nothing should ever be fetched from it
IMG = f"![t](http://127.0.0.1:{PORT}/t.png)"
LINK = "[a](javascript:alert(1))"
HTML = f"<a href='http://127.0.0.1:{PORT}/x'>x</a>"
LATEX = "$\\frac{a}{b}$"
MARKDOWN = (IMG, IMG.replace("[t]", "[T]"), LINK, HTML, LATEX)
FORMULAS = ('=HYPERLINK("http://127.0.0.1:9/x","click")', "+1 call me", "-2 dollars", "@SUM(A1:A2)", "\tcell")
SECRET = "SECRET-FIRST-LINE-of-a-server-file"


def _md_labels() -> bytes:
    """Two large classes and five small ones named with Markdown, HTML and LaTeX (two differ only in case)."""
    df = rows(120)
    for i, label in enumerate(MARKDOWN):
        df.loc[100 + 4 * i: 103 + 4 * i, "label"] = label
    return csv_bytes(df)


def _md_columns() -> bytes:
    cols = [f"<img src=http://127.0.0.1:{PORT}/c.png>", IMG, LATEX]
    return ",".join(f'"{c}"' for c in cols).encode() + b"\n" + b"".join(f"{i},{i % 2},{i * 0.5}\n".encode() for i in range(50))


def _formulas() -> bytes:
    df = rows(60)
    for i, t in enumerate(FORMULAS):
        df.loc[i, "text"] = t
    return csv_bytes(df)


def _parquet(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _repeated(n: int, text: str, labels: tuple[str, ...] = ("negative", "positive")):
    """A table of ``n`` rows whose text is one string, dictionary-encoded: a few hundred bytes on disk."""
    import numpy as np
    import pyarrow as pa

    dictionary = pa.DictionaryArray.from_arrays
    return pa.table({"text": dictionary(pa.array(np.zeros(n, dtype=np.int32)), pa.array([text])),
                     "label": dictionary(pa.array((np.arange(n) % len(labels)).astype(np.int32)), pa.array(labels))})


def _xlsx_bomb() -> bytes:
    """A real workbook plus a member of 4 MB of zeros that packs to a few KB (a zip bomb, scaled down)."""
    buf = io.BytesIO()
    rows(30).to_excel(buf, index=False)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/padding.xml", b"\0" * 4_000_000)
    return buf.getvalue()


def _linked_folder(base: Path) -> Path:
    """A folder source whose train.csv is a link to a file outside it."""
    outside = base / "server-file.csv"
    outside.write_text(f"{SECRET},x\n" + "".join(f"line {i},y\n" for i in range(30)))
    folder = base / "linked"
    folder.mkdir()
    (folder / "train.csv").symlink_to(outside)
    (folder / "test.csv").write_bytes(csv_bytes(rows(20)))
    return folder


DEMO_FILES = {"BMCORE_PUBLIC_DEMO": "1", "BMCORE_ALLOW_LOCAL_PATHS": "1"}  # the CLI reads a file outside the workspace

CASES += [
    Case("markdown-labels", X, "labels made of Markdown images, links, raw HTML and LaTeX", "file",
         "classes too small to learn or score well", ok=True, markdown=MARKDOWN,
         file=lambda: ("labels.csv", _md_labels())),
    Case("markdown-columns", X, "column names made of Markdown and HTML, and no text-like column", "file",
         "no text-like column found among", markdown=(IMG, LATEX, f"<img src=http://127.0.0.1:{PORT}/c.png>"),
         file=lambda: ("columns.csv", _md_columns())),
    Case("formula-texts", X, "texts that a spreadsheet runs as formulas (=, +, -, @, tab)", "file",
         "all 60 rows kept; every CSV written neutralises them with a leading '", ok=True,
         file=lambda: ("formulas.csv", _formulas())),
    Case("parquet-bomb", X, "a Parquet file of 1 KB that decodes to 10^9 characters, in a public demo", "file",
         "decodes to more than 50,000,000 characters", env=DEMO_FILES,
         file=lambda: ("bomb.parquet", _parquet(_repeated(16_667, "a" * 60_000)))),
    Case("parquet-rows", X, "a Parquet file of 300,000 rows, in a public demo", "file", "has more than 200,000 rows",
         env=DEMO_FILES, file=lambda: ("rows.parquet", _parquet(_repeated(300_000, "a short text")))),
    Case("long-cell", X, "a cell of 2,000,000 characters (any mode)", "file", "has a cell of 2,000,000 characters",
         file=lambda: ("long.parquet", _parquet(_repeated(40, "word " * 400_000)))),
    Case("xlsx-bomb", X, "an xlsx whose zip unpacks to far more than its size", "file", "unpacks to",
         env={**DEMO_FILES, "BMCORE_MAX_FILE_CHARS": "1000000"}, file=lambda: ("bomb.xlsx", _xlsx_bomb())),
    Case("csv-rows", X, "a CSV file over the row cap", "file", "has more than 100 rows",
         env={**DEMO_FILES, "BMCORE_MAX_FILE_ROWS": "100"}, file=lambda: ("many.csv", csv_bytes(rows(200)))),
    Case("folder-symlink", X, "a folder source whose train.csv links to a file outside the folder", "folder",
         "train.csv is a link to a file outside the folder", folder=_linked_folder, secret=SECRET),
]

# --- round two (issue 17, items 5-14): runs that overwrite runs, tracebacks and hangs, notices ---------------
# Kinds: ``cli`` (a command only: ``cli_args`` is a template with {path} from ``make``, {model}, {data}),
# ``runs`` (damaged runs among good ones: ``runs list`` and the pages' runs tables), ``path`` (a local path
# for ``data inspect`` and the Data page), ``model`` (a model folder for ``predict`` and the Playground),
# ``readonly`` (a command in a workspace made read-only).
R = "Runs and the file system"
BIDI = "\u202e"  # RIGHT-TO-LEFT OVERRIDE


def _parquet_categorical() -> bytes:
    df = rows()
    df["text"], df["label"] = df["text"].astype("category"), df["label"].astype("category")  # Arrow dictionaries
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _jsonl_surrogate() -> bytes:
    lines = [json.dumps({"text": f"sentence number {i} here", "label": "ab"[i % 2]}) for i in range(40)]
    lines[2] = '{"text": "half a pair \\ud800 here", "label": "a"}'
    return ("\n".join(lines) + "\n").encode()


def _run_folder(ctx: Ctx, name: str, state: str, **status: object) -> Path:
    """A run folder in the workspace as a finished job leaves it (the tiny model as its model)."""
    folder = ctx.workspace / "runs" / name
    folder.parent.mkdir(exist_ok=True)
    shutil.copytree(ctx.tiny_model, folder / "model")
    (folder / "config.json").write_text(json.dumps({"model_name_or_path": str(ctx.tiny_model), "dataset": "tiny-data"}))
    (folder / "status.json").write_text(json.dumps({"state": state, "created": "2026-01-01T00:00:00", **status}))
    scores = {"accuracy": 0.5, "macro_f1": 0.5}
    (folder / "eval.json").write_text(json.dumps({"validation": scores, "test": scores}))
    return folder


def _live_run(ctx: Ctx) -> Path:
    """A run whose job is alive: a process with 'bmcore' in its command line (killed after the test)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "bmcore-live-job"])
    ctx.procs.append(proc)
    return _run_folder(ctx, "live", "running", pid=proc.pid, pid_start=process_start(proc.pid))


def _damaged_runs(ctx: Ctx) -> Path:
    _run_folder(ctx, "good", "completed", best_metric=0.9, best_metric_name="macro_f1")
    for name, bad in (("bad-created", {"created": 5}), ("bad-started", {"started_ts": "x"}),
                      ("bad-pid", {"state": "running", "pid": [1]}), ("bad-metric", {"best_metric": "high"})):
        (_run_folder(ctx, name, "completed") / "status.json").write_text(
            json.dumps({"state": "completed", "created": "2026-01-01T00:00:00", **bad}))
    return ctx.workspace / "runs"


def _fifo(ctx: Ctx) -> Path:
    path = ctx.tmp / "pipe.csv"
    os.mkfifo(path)
    return path


def _dev_zero(ctx: Ctx) -> Path:
    path = ctx.tmp / "zero.csv"
    path.symlink_to("/dev/zero")
    return path


def _damaged_model(change: Callable[[Path], None]) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        folder = ctx.tmp / f"model-{len(list(ctx.tmp.iterdir()))}"
        shutil.copytree(ctx.tiny_model, folder)
        change(folder)
        return folder
    return make


def _half_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _tokenizer_wrong_shape(folder: Path) -> None:
    tok = json.loads((folder / "tokenizer.json").read_text())
    del tok["added_tokens"]
    (folder / "tokenizer.json").write_text(json.dumps(tok))


def _id2label_words(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"neg": "negative", "pos": "positive"}
    (folder / "config.json").write_text(json.dumps(config))


def _a_file(ctx: Ctx) -> Path:
    path = ctx.tmp / "not-a-folder"
    path.write_text("a file")
    return path


def _rows_file(ctx: Ctx) -> Path:
    path = ctx.tmp / "rows.csv"
    path.write_bytes(csv_bytes(rows()))
    return path


def _rows_file_and_run(ctx: Ctx) -> Path:
    _run_folder(ctx, "done", "completed")
    return _rows_file(ctx)


ON_PAGES = "the page offers Resume only for a failed or cancelled run, and refuses a live one"
READ_ONLY = "the test makes the workspace read-only (chattr +i as root) around one CLI command"
TRAIN_FLAGS = ("--max-steps", "2", "--max-seq-length", "32")

CASES += [
    Case("parquet-categorical", F, "Parquet with dictionary (categorical) text and label columns", "file",
         "all 60 rows kept", ok=True, file=lambda: ("categorical.parquet", _parquet_categorical())),
    Case("csv-huge-line", F, "a CSV whose first line is one 200,000-character field (over Python's csv limit)", "file",
         "its first line is not a header row", file=lambda: ("huge.csv", b'"' + b"y" * 200_000 + b'",label\na b,c\n')),
    Case("jsonl-lone-surrogate", F, "JSONL with a lone surrogate escape (\\ud800)", "file",
         "line 3 has a lone surrogate", file=lambda: ("surrogate.jsonl", _jsonl_surrogate())),
    Case("data-fifo", F, "a named pipe (FIFO) given as the data path", "path", "is a named pipe (FIFO)",
         make=_fifo, cli_args=("data", "inspect", "{path}")),
    Case("data-dev-zero", F, "a .csv that is a link to /dev/zero", "path", "is a device, not a regular file",
         make=_dev_zero, cli_args=("data", "inspect", "{path}")),
    Case("predict-file-fifo", F, "a named pipe given to predict --file", "cli", "is a named pipe (FIFO)",
         make=_fifo, cli_args=("predict", "--model", "{model}", "--file", "{path}"),
         no_ui="the Playground takes uploads, which are bytes, never a path"),
    Case("label-bidi", C, "labels with a right-to-left override (U+202E)", "file", "invisible text-direction controls",
         ok=True, file=lambda: ("bidi.csv", _labels([f"neg{BIDI}", "pos"] * 30))),
    Case("label-invisible", C, "a label made only of zero-width characters", "file",
         "labels made only of invisible characters", ok=True,
         file=lambda: ("invisible.csv", _labels(["\u200b\u200c", "pos"] * 30))),
    Case("label-long", C, "a 10,000-character label", "file", "labels longer than 200 characters", ok=True,
         file=lambda: ("long-label.csv", _labels(["x" * 10_000, "pos"] * 30))),
    Case("label-newline", C, "a label with a line break inside", "file", "labels with a line break inside", ok=True,
         file=lambda: ("newline.csv", _labels(["neg\native", "pos"] * 30))),
    Case("model-half-weights", M, "a model.safetensors truncated to half", "model", "has a damaged model.safetensors",
         make=_damaged_model(_half_weights), cli_args=("predict", "--model", "{path}", "a fine film")),
    Case("model-tokenizer-not-json", M, "a tokenizer.json that is not JSON", "model", "is damaged: not valid JSON",
         make=_damaged_model(lambda f: (f / "tokenizer.json").write_text("not json {")),
         cli_args=("predict", "--model", "{path}", "a fine film")),
    Case("model-tokenizer-shape", M, "a tokenizer.json of the wrong structure", "model", "its files are damaged (KeyError",
         make=_damaged_model(_tokenizer_wrong_shape), cli_args=("predict", "--model", "{path}", "a fine film")),
    Case("model-id2label-words", M, "id2label keyed by words, not class ids", "model", "id2label is not numbered by class id",
         make=_damaged_model(_id2label_words), cli_args=("predict", "--model", "{path}", "a fine film")),
    Case("dataset-name-space", S, "a dataset name with a leading line break", "cli", "starts or ends with a space or line break",
         make=_rows_file, cli_args=("data", "prepare", "{path}", "--name", "\ntiny"),
         no_ui="the Name box drops outer spaces and holds no line breaks"),
    Case("prepare-over-used-dataset", S, "data prepare over a dataset a finished run was trained on", "cli",
         "is used by run done (completed)", make=_rows_file_and_run,
         cli_args=("data", "prepare", "{path}", "--name", "tiny-data"),
         no_ui="the Data page case page-save-over-used-dataset; --overwrite replaces it on the CLI"),
    Case("train-live-run", R, "train RUN on a run whose job is still running", "cli", "is already running (process",
         make=_live_run, cli_args=("train", "{path}"), no_ui=ON_PAGES),
    Case("train-completed-run", R, "train RUN on a completed run (it would be retrained over)", "cli",
         "is already completed; training it again would replace its model", make=lambda ctx: _run_folder(ctx, "done", "completed"),
         cli_args=("train", "{path}"), no_ui=ON_PAGES),
    Case("runs-damaged-status", R, "status.json fields of the wrong type (\"created\": 5, \"started_ts\": \"x\", \"pid\": [1], "
         "a text best_metric)", "runs", "is damaged", ok=True, make=_damaged_runs, cli_args=("runs", "list")),
    Case("train-out-file", R, "train --out naming an existing file", "cli", "is a file, not a folder", make=_a_file,
         cli_args=("train", "--data", "tiny-data", "--model", "{model}", "--out", "{path}", *TRAIN_FLAGS),
         no_ui="the page names runs, not folders"),
    Case("readonly-prepare", R, "data prepare in a read-only workspace", "readonly", "permission denied", make=_rows_file,
         cli_args=("data", "prepare", "{path}", "--name", "fresh")),
    Case("readonly-train", R, "train in a read-only workspace", "readonly", "permission denied",
         cli_args=("train", "--data", "tiny-data", "--model", "{model}", *TRAIN_FLAGS), ui_skip=READ_ONLY),
    Case("readonly-evaluate", R, "evaluate into a read-only workspace", "readonly", "permission denied",
         make=lambda ctx: _run_folder(ctx, "done", "completed"),
         cli_args=("evaluate", "--model", "{model}", "--data", "tiny-data", "--out", "{path}/evaluation/again"),
         ui_skip=READ_ONLY),
    Case("readonly-export", R, "export from a read-only workspace", "readonly", "permission denied",
         make=lambda ctx: _run_folder(ctx, "done", "completed"), cli_args=("export", "{path}"), ui_skip=READ_ONLY),
    Case("readonly-cancel", R, "runs cancel in a read-only workspace", "readonly", "permission denied",
         make=lambda ctx: _run_folder(ctx, "done", "completed"), cli_args=("runs", "cancel", "{path}"), ui_skip=READ_ONLY),
]

# --- issue 26, runs, processes and run files (runs) ---
# Kinds: ``run`` (one run folder, ``make`` builds it beside a good run: the command of ``cli_args``, and on the
# Train page the run opened), ``evaluation`` (a run with a saved test evaluation: the command, and on the Evaluate
# page the run picked).


def _damaged_run(change: Callable[[Path], None]) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        _run_folder(ctx, "good", "completed", best_metric=0.9, best_metric_name="macro_f1")
        folder = _run_folder(ctx, "damaged", "completed")
        change(folder)
        return folder
    return make


def _status(**fields: object) -> Callable[[Path], None]:
    return lambda folder: (folder / "status.json").write_text(json.dumps({"created": "2026-01-01T00:00:00", **fields}))


def _metrics_line(line: str) -> Callable[[Path], None]:
    good = json.dumps({"kind": "train", "step": 1, "total_steps": 2, "epoch": 0.5, "loss": 0.69})
    return lambda folder: (folder / "metrics.jsonl").write_text(f"{good}\n{line}\n")


def _evaluated_run(ctx: Ctx) -> Path:
    """A completed run with its test evaluation saved (as training leaves it), then its accuracy made text."""
    from bmcore.data import load_prepared
    from bmcore.evaluate import evaluate_model
    from bmcore.inference import load_for_inference

    folder = _damaged_run(lambda f: None)(ctx)
    out = folder / "evaluation" / "test"
    evaluate_model(load_for_inference(str(folder / "model")), load_prepared("tiny-data"), "test", out_dir=out)
    metrics = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps({**metrics, "accuracy": "high"}))
    return folder


def _job_folder(**fields: object) -> Callable[[Ctx], Path]:
    def make(ctx: Ctx) -> Path:
        folder = ctx.workspace / "jobs" / "estimate-1"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"kind": "estimate", "key": "k", "params": {}}))
        (folder / "status.json").write_text(json.dumps({"state": "running", "created": "2026-01-01T00:00:00",
                                                        "handles_sigterm": True, **fields}))
        return folder
    return make


def _busy_run(ctx: Ctx) -> Path:
    """A run whose job is alive (a stand-in job process, with its start time): it takes the one job slot."""
    from conftest import start_stand_in_job

    proc = start_stand_in_job()
    ctx.procs.append(proc)
    return _run_folder(ctx, "busy", "running", pid=proc.pid, pid_start=process_start(proc.pid))


OPEN_RUN = "the Train page shows the run opened as damaged, with this line"
CANCEL_JOB = "a page reads a damaged job as failed with this line, and offers Cancel only for a live job"

CASES += [
    Case("run-pid-minus-one", R, "runs cancel on a running run whose status.json says pid -1 (every process)", "run",
         "pid is -1, not a job's process id", make=_damaged_run(_status(state="running", pid=-1)),
         cli_args=("runs", "cancel", "{path}")),
    Case("job-pid-zero", R, "jobs cancel on a job whose status.json says pid 0 (its whole process group)", "cli",
         "pid is 0, not a job's process id", make=_job_folder(pid=0), cli_args=("jobs", "cancel", "{path}"),
         no_ui=CANCEL_JOB),
    Case("metrics-line-list", R, "a metrics.jsonl line that is [1,2]", "run",
         "metrics.jsonl in damaged is damaged: line 2 is", cli_expect="line 2 is [1, 2], not a JSON object",
         make=_damaged_run(_metrics_line("[1,2]")), cli_args=("runs", "show", "{path}")),
    Case("metrics-line-null", R, "a metrics.jsonl line that is null (export --format zip)", "run",
         "metrics.jsonl in damaged is damaged: line 2 is null", make=_damaged_run(_metrics_line("null")),
         cli_args=("export", "{path}", "--format", "zip")),
    Case("metrics-text-loss", R, "a metrics.jsonl line whose loss is text", "run", 'has loss "low", not a number',
         make=_damaged_run(_metrics_line(json.dumps({"kind": "train", "step": 2, "loss": "low"}))),
         cli_args=("runs", "show", "{path}")),
    Case("eval-test-text", R, "an eval.json whose test scores are a string", "run",
         "eval.json in damaged is damaged: test is 'x'",
         make=_damaged_run(lambda f: (f / "eval.json").write_text(json.dumps({"test": "x"}))),
         cli_args=("export", "{path}")),
    Case("evaluation-accuracy-text", R, "an evaluation's metrics.json whose accuracy is text", "evaluation",
         "is damaged: accuracy is 'high', not a number", make=_evaluated_run, cli_args=("export", "{path}")),
    Case("pretrain-background-slots", R, "pretrain --background while every job slot (BMCORE_MAX_JOBS) is taken", "cli",
         "training jobs are already queued or running", make=_busy_run, env={"BMCORE_MAX_JOBS": "1"},
         cli_args=("pretrain", "--data", "tiny-data", "--model", "{model}", "--max-steps", "2", "--background"),
         no_ui="the Pretrain page starts through the same start_pretraining, refused before a run folder exists"),
]


# --- issue 26, data readers, caps and parsing (readers) ---
# Bombs: a small file that expands to gigabytes when read. Built in memory in about a second each; the memory-bounded
# test (tests/test_reader_caps.py) reads them in a subprocess and checks its peak memory.


def xlsx_shared_string_bomb(text_chars: int = 100_000, cells: int = 20_000) -> bytes:
    """A workbook of ``cells`` rows whose text cell is one shared string of ``text_chars`` characters (2*10^9
    characters in all by default, in about 170 KB): the zip's unpacked size is small, the sheet is not."""
    shared = ["text", "label", "x" * text_chars, "pos", "neg"]
    sst = "".join(f"<si><t>{t}</t></si>" for t in shared)
    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>']
    rows += [f'<row r="{i}"><c r="A{i}" t="s"><v>2</v></c><c r="B{i}" t="s"><v>{3 + i % 2}</v></c></row>'
             for i in range(2, cells + 2)]
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006"
    members = {
        "[Content_Types].xml": f'<Types xmlns="{pkg}/content-types"><Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
        'ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{pkg}/relationships"><Relationship Id="rId1" '
        f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet name="data" sheetId="1" '
        'r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{pkg}/relationships"><Relationship Id="rId1" '
        f'Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" '
        f'Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/sharedStrings.xml": f'<sst xmlns="{main}" count="{2 * cells + 2}" uniqueCount="{len(shared)}">{sst}</sst>',
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{"".join(rows)}</sheetData></worksheet>',
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def csv_one_cell(chars: int = 45_000_000) -> bytes:
    """A CSV of 45 MB whose first text is one cell of ``chars`` characters, then ordinary rows."""
    return b'text,label\n"' + b"y" * chars + b'",pos\n' + csv_bytes(rows(20)).split(b"\n", 1)[1]


def parquet_nested_bomb(rows_n: int = 2_000, items: int = 1_000, chars: int = 1_000) -> bytes:
    """A list column whose items are one dictionary-encoded string: 2*10^9 characters in a few KB."""
    import numpy as np
    import pyarrow as pa

    values = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows_n * items, dtype=np.int32)), pa.array(["z" * chars]))
    offsets = pa.array(np.arange(0, rows_n * items + 1, items, dtype=np.int32))
    table = pa.table({"text": pa.array([f"sentence {i} here" for i in range(rows_n)]),
                      "label": pa.array(["ab"[i % 2] for i in range(rows_n)]),
                      "tokens": pa.ListArray.from_arrays(offsets, values)})
    return _parquet(table)


def parquet_binary_bomb(rows_n: int = 20_000, nbytes: int = 100_000) -> bytes:
    """An image Parquet (a binary column) whose every row is one dictionary-encoded value of ``nbytes`` bytes;
    written without Arrow's schema, so a reader sees a plain binary column, as most writers leave it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows_n, dtype=np.int32)), pa.array([b"\x89PNG" + b"\0" * nbytes]))
    buf = io.BytesIO()
    pq.write_table(pa.table({"image": image, "label": pa.array(["ab"[i % 2] for i in range(rows_n)])}), buf,
                   compression="zstd", store_schema=False)
    return buf.getvalue()


def _loop(ctx: Ctx) -> Path:
    """A file that is a link to itself (``ln -s x.csv x.csv``)."""
    path = ctx.tmp / "loop.csv"
    path.symlink_to(path.name)
    return path


def _loop_in_folder(ctx: Ctx) -> Path:
    """A folder source whose train.csv is a link to itself."""
    folder = ctx.tmp / "looped"
    folder.mkdir()
    (folder / "train.csv").symlink_to("train.csv")
    (folder / "test.csv").write_bytes(csv_bytes(rows(20)))
    return folder


def _loop_in_images(ctx: Ctx) -> Path:
    """An image folder (cat/, dog/) where one image is a link to itself."""
    folder = ctx.tmp / "pets"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        (folder / label / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "cat" / "2.png").symlink_to("2.png")
    return folder


def _deep_json(lines: bool) -> bytes:
    deep = "[" * 100_000 + "]" * 100_000
    if lines:
        return "".join(json.dumps({"text": f"sentence {i} here", "label": "ab"[i % 2]}) + "\n" for i in range(20)).encode() \
            + ('{"text": "deep", "label": ' + deep + "}\n").encode()
    return deep.encode()


def _json_objects() -> bytes:
    return json.dumps([{"text": t, "label": lab, "meta": {"source": "web", "n": i}}
                       for i, (t, lab) in enumerate(zip(rows()["text"], rows()["label"], strict=True))]).encode()


def _cr_only() -> bytes:
    return csv_bytes(rows()).replace(b"\n", b"\r")


def _quoted_labels() -> bytes:
    """Multi-label cells separated by ';' whose parts are CSV-quoted when they hold a comma: '"good, fun";pos'."""
    labels = ['"good, fun";pos', "pos", "neg", "good, fun", '"good, fun";neg', "neg;pos"]
    return _labels([labels[i % len(labels)] for i in range(120)])


LOOP = "too many levels of symbolic links"
CASES += [
    Case("xlsx-shared-strings", X, "an xlsx of 170 KB whose one 100,000-character shared string fills 20,000 cells "
         "(2*10^9 characters), in a public demo", "file", "decodes to more than 50,000,000 characters", env=DEMO_FILES,
         file=lambda: ("shared.xlsx", xlsx_shared_string_bomb())),
    Case("csv-long-cell", X, "a CSV with a cell of 2,000,000 characters (any mode)", "file",
         "has a cell of 2,000,000 characters", file=lambda: ("long-cell.csv", _with_texts("y" * 2_000_000))),
    Case("jsonl-long-cell", X, "JSONL with a 200,000-character text, in a public demo", "file",
         "has a cell of 200,000 characters", env=DEMO_FILES,
         file=lambda: ("long-cell.jsonl", json.dumps({"text": "y" * 200_000, "label": "a"}).encode() + b"\n")),
    Case("parquet-nested-bomb", X, "a Parquet file of 10 KB whose list column decodes to 2*10^9 characters", "file",
         "has nested columns (tokens)", file=lambda: ("nested.parquet", parquet_nested_bomb())),
    Case("parquet-image-bomb", X, "an image Parquet of 600 bytes whose one image is used by 20,000 rows (2 GB), "
         "in a public demo", "file", "more than the limit of 1000 MB", env=DEMO_FILES,
         file=lambda: ("images.parquet", parquet_binary_bomb())),
    Case("json-deep", F, "JSON nested 100,000 lists deep", "file", "is nested too deeply",
         file=lambda: ("deep.json", _deep_json(False))),
    Case("jsonl-deep", F, "JSONL with a record nested 100,000 lists deep", "file", "is nested too deeply",
         file=lambda: ("deep.jsonl", _deep_json(True))),
    Case("symlink-loop-file", F, "a data path that is a link to itself (ln -s x.csv x.csv)", "path", LOOP,
         make=_loop, cli_args=("data", "inspect", "{path}")),
    Case("symlink-loop-demo", S, "a link to itself as the data path, in a public demo (paths outside the workspace "
         "turned off)", "path", LOOP, make=_loop, cli_args=("data", "inspect", "{path}"),
         env={"BMCORE_PUBLIC_DEMO": "1"}),
    Case("symlink-loop-folder", F, "a folder source whose train.csv is a link to itself", "path", LOOP,
         make=_loop_in_folder, cli_args=("data", "inspect", "{path}")),
    Case("symlink-loop-images", F, "an image folder with an image that is a link to itself", "path", LOOP,
         make=_loop_in_images, cli_args=("data", "inspect", "{path}")),
    Case("json-object-cells", F, "JSON records with an object in a cell", "file", "JSON objects in column 'meta' kept as JSON text",
         ok=True, file=lambda: ("objects.json", _json_objects())),
    Case("csv-cr-only", F, "a CSV whose lines end in CR alone (old Mac)", "file", "lines end in a carriage return alone",
         ok=True, file=lambda: ("mac.csv", _cr_only())),
    Case("label-quoted-parts", C, "multi-label cells whose CSV-quoted parts hold a comma (\"good, fun\";pos)", "file",
         "parts in double quotes read whole", ok=True, file=lambda: ("quoted.csv", _quoted_labels())),
]


# --- issue 26, images, predict and model configs (images) ---


def _wide_csv(columns: int) -> bytes:
    """A header of ``columns`` names and 8 rows of digits."""
    return (",".join(f"c{i}" for i in range(columns)) + "\n" + (",".join("7" * columns) + "\n") * 8).encode()


def solid_png(side: int = 5000, value: int = 0) -> bytes:
    """A solid side x side RGB PNG (75 MB decoded at 5000, about 80 KB as a file), written row by row."""
    comp = zlib.compressobj(9)
    row = b"\x00" + bytes([value]) * (3 * side)
    idat = b"".join(comp.compress(row * 100) for _ in range(side // 100)) + comp.compress(row * (side % 100)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def solid_zip(n: int) -> bytes:
    """A zip of ``n`` solid 5000x5000 PNGs in two class folders (20 of them: 500,000,000 pixels in 9 KB)."""
    png = solid_png()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            zf.writestr(f"{'class_0' if i % 2 else 'class_1'}/{i}.png", png)
    return buf.getvalue()


def _big_images_and_model(ctx: Ctx) -> Path:
    """A folder with a tiny random ViT (model/) and three solid 5000x5000 PNGs (a.png, b.png, c.png)."""
    from bmcore.tiny_models import make_tiny_vit

    folder = ctx.tmp / "big-images"
    with contextlib.redirect_stderr(io.StringIO()):  # transformers' progress bar: not the command's output
        make_tiny_vit(folder / "model")
    for name in "abc":
        (folder / f"{name}.png").write_bytes(solid_png())
    return folder


def _config_change(**changes: object) -> Callable[[Path], None]:
    """Set (None: remove) keys of a copied model's config.json."""
    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return change


PIXELS_CAP = {"BMCORE_MAX_TOTAL_PIXELS": "250000000"}  # the public demo's default, set alone

CASES += [
    Case("csv-30000-columns", C, "a 560 KB CSV with 30,000 columns", "file", "has 30,000 columns, more than 2,000",
         file=lambda: ("wide.csv", _wide_csv(30_000))),
    Case("zip-total-pixels", F, "a 9 KB zip of 20 solid 5000x5000 PNGs (500,000,000 pixels), with "
         "BMCORE_MAX_TOTAL_PIXELS at the demo's 250,000,000", "file", "its images add up to more than 250,000,000 pixels",
         env=PIXELS_CAP, file=lambda: ("solid.zip", solid_zip(20))),
    Case("predict-total-pixels", F, "predict on three 5000x5000 images (75,000,000 pixels) over a BMCORE_MAX_TOTAL_PIXELS "
         "of 50,000,000", "cli", "the images given: its images add up to more than 50,000,000 pixels",
         env={"BMCORE_MAX_TOTAL_PIXELS": "50000000"}, make=_big_images_and_model,
         cli_args=("predict", "--model", "{path}/model", "{path}/a.png", "{path}/b.png", "{path}/c.png"),
         no_ui="the Playground predicts one image, or a zip (case zip-total-pixels; tests/test_images_limits.py "
               "drives its batch path and measures its memory)"),
    Case("model-num-labels-huge", M, "a config.json with num_labels 50,000,000 (no id2label)", "model",
         "config.json says 50,000,000 labels but the weights have 2",
         make=_damaged_model(_config_change(num_labels=50_000_000, id2label=None, label2id=None)),
         cli_args=("predict", "--model", "{path}", "a fine film")),
    Case("model-id2label-huge", M, "a config.json whose id2label has 100,000 entries", "model",
         "config.json says 100,000 labels but the weights have 2",
         make=_damaged_model(_config_change(id2label={str(i): f"l{i}" for i in range(100_000)}, label2id=None)),
         cli_args=("predict", "--model", "{path}", "a fine film")),
    Case("model-hidden-size", M, "a config.json whose hidden_size is not the weights'", "model",
         "config.json builds bert.embeddings.LayerNorm.bias as 64 but the weights hold 32",
         make=_damaged_model(_config_change(hidden_size=64)), cli_args=("predict", "--model", "{path}", "a fine film")),
    Case("model-intermediate-size", M, "a config.json whose intermediate_size is not the weights'", "model",
         "config.json builds bert.encoder.layer.0.intermediate.dense.bias as 64 but the weights hold 128",
         make=_damaged_model(_config_change(intermediate_size=64)), cli_args=("predict", "--model", "{path}", "a fine film")),
]


# --- issue 26, saving datasets and label review (saves) ---


def _prepared(ctx: Ctx, name: str, raw_source: str | Path, **columns: object) -> None:
    """Prepare ``raw_source`` into the workspace as ``name`` (what a user saved earlier)."""
    from bmcore import data as bdata

    raw = bdata.load_source(str(raw_source))
    cols = bdata.choose_columns(raw.frames["all"], **columns)[0] if columns else None
    bdata.save_prepared(bdata.prepare(raw, name, columns=cols, seed=0))


def _image_dataset(ctx: Ctx) -> Path:
    """A prepared image dataset: two class folders of twelve small PNGs each (plain colours: the case is the modality)."""
    from PIL import Image

    for label, colour in (("dark", 20), ("light", 230)):
        (ctx.tmp / "shapes" / label).mkdir(parents=True)
        for i in range(12):
            Image.new("L", (8, 8), colour + i).save(ctx.tmp / "shapes" / label / f"{i}.png")
    _prepared(ctx, "shapes", ctx.tmp / "shapes")
    return ctx.tmp / "shapes"


def _multi_label_dataset(ctx: Ctx) -> Path:
    """A prepared multi-label dataset: GoEmotions rows whose label column lists several emotions."""
    from conftest import SHARED_DATA

    path = ctx.tmp / "emotions.csv"
    pd.read_csv(SHARED_DATA / "goemotions" / "train.csv", nrows=300).to_csv(path, index=False)
    _prepared(ctx, "emotions", path)
    return path


CASES += [
    Case("page-save-over-used-dataset", S, "the Data page's Save under the name of a dataset a finished run was trained "
         "on", "resave", "is used by run done (completed)", make=_rows_file_and_run,
         cli_args=("data", "prepare", "{path}", "--name", "tiny-data"),
         no_cli="the CLI case prepare-over-used-dataset (refused unless --overwrite)"),
    Case("quality-image-dataset", S, "data quality with a text encoder (TF-IDF) on an image dataset", "cli",
         "the encoder 'tfidf' does not read image data; 'shapes' takes builtin:efficientnet-lite0",
         make=_image_dataset, cli_args=("data", "quality", "shapes", "--encoder", "tfidf"),
         no_ui="the Data page offers an image dataset only the image model's features"),
    Case("quality-multi-label-dataset", S, "data quality on a multi-label dataset", "cli",
         "label quality works on single-label datasets (texts or images); 'emotions' is a multi-label classification "
         "dataset", make=_multi_label_dataset, cli_args=("data", "quality", "emotions", "--encoder", "tfidf"),
         no_ui="the Data page offers the check only for single-label datasets"),
    Case("quality-out-missing-folder", S, "data quality --out into a folder that does not exist", "cli",
         "cannot write --out /missing/dir/x.csv: folder /missing/dir does not exist",
         cli_args=("data", "quality", "tiny-data", "--encoder", "tfidf", "--out", "/missing/dir/x.csv"),
         no_ui="the page offers the scores as a download, not a path"),
]


# --- issue 26, pages: warnings, settings, charts (pages) ---
def _overfit_run_with_junk(ctx: Ctx) -> Path:
    """A finished run whose metrics.jsonl shows overfitting between lines the readers skip (not JSON, a NaN loss, a
    half-written last line), and whose eval.json names a class the model never predicts with a Markdown image."""
    folder = _run_folder(ctx, "overfit", "completed")
    lines = []
    for step, (train, val) in enumerate(((0.7, 0.5), (0.5, 0.4), (0.3, 0.5), (0.1, 0.7)), start=1):
        lines += [{"kind": "train", "step": 10 * step, "total_steps": 40, "epoch": step, "loss": train},
                  {"kind": "eval", "step": 10 * step, "epoch": step, "eval_loss": val, "eval_accuracy": 0.5}]
    junk = ["not json", '{"kind": "eval", "step": 45, "eval_loss": NaN}']  # skipped; a record of the wrong shape
    # makes the run damaged instead (the runs area's cases)
    text = "\n".join([*map(json.dumps, lines[:4]), *junk, *map(json.dumps, lines[4:])]) + '\n{"kind": "eval", "st'
    (folder / "metrics.jsonl").write_text(text)
    test = {"accuracy": 0.5, "macro_f1": 0.33, "confusion_matrix": [[5, 0], [5, 0]], "labels": ["fine", IMG]}
    (folder / "eval.json").write_text(json.dumps({"validation": test, "test": test}))
    return folder


P = "Pages: warnings, settings, charts"
CASES += [
    Case("run-metrics-junk", P, "a metrics.jsonl with lines to skip (not JSON, a NaN loss, half a line) around an "
         "overfitting run, and a never-predicted class named with a Markdown image", "run",
         "Overfitting: the validation loss rose from its lowest, 0.400 at step 20, to 0.700 at step 40", ok=True,
         make=_overfit_run_with_junk, markdown=(IMG,),
         no_cli="the warnings are drawn by the Train and Evaluate pages (train.log words the missed classes itself)"),
]



# --- issue 27, evaluate folders ---
# evaluate --data FOLDER on the CLI; the same class folders zipped and uploaded on the Evaluate page (kind
# "evaluate-source", driven by tests/test_catalogue.py).


def _eval_source(classes: tuple[str, ...], model: tuple[str, ...] | None = ("Bag", "Trouser"),
                 junk: bool = False) -> Callable[[Ctx], Path]:
    """A folder with ``photos/`` (three small PNGs per class folder; ``junk``: a text file named notes.png in the first),
    ``photos.zip`` (the same, zipped) and ``model/`` (a tiny random ResNet knowing ``model``; None: no model, the case
    uses the tiny text model)."""
    def make(ctx: Ctx) -> Path:
        from PIL import Image

        folder = ctx.tmp / "eval-source"
        (folder / "photos").mkdir(parents=True)
        for c in classes:
            (folder / "photos" / c).mkdir()
            for i in range(3):
                Image.new("L", (8, 8), 40 * i + 20).save(folder / "photos" / c / f"{i}.png")
        if junk:
            (folder / "photos" / classes[0] / "notes.png").write_text("not an image, despite its name")
        with zipfile.ZipFile(folder / "photos.zip", "w") as zf:
            for f in sorted((folder / "photos").rglob("*.png")):
                zf.write(f, f.relative_to(folder / "photos").as_posix())
        if model:
            from bmcore.tiny_models import make_tiny_resnet

            with contextlib.redirect_stderr(io.StringIO()):
                make_tiny_resnet(folder / "model", list(model))
        return folder
    return make


def _eval_pixel_bomb(ctx: Ctx) -> Path:
    """``photos.zip``: 20 solid 5000x5000 PNGs in two class folders (500,000,000 pixels in 9 KB), and the model."""
    folder = _eval_source((), model=("class_0", "class_1"))(ctx)
    (folder / "photos.zip").write_bytes(solid_zip(20))
    return folder


EVAL_SOURCE = ("evaluate", "--model", "{path}/model", "--data", "{path}/photos", "--out", "{path}/out")
EV = "Evaluating a folder or zip of images"
CASES += [
    Case("eval-images-unknown-class", EV, "evaluate a folder (or an uploaded zip) of class folders, one of them a class "
         "the model does not know", "evaluate-source", "has 1 class the model does not know (Coat)",
         make=_eval_source(("Bag", "Coat", "Trouser")), cli_args=EVAL_SOURCE),
    Case("eval-images-empty", EV, "evaluate an empty folder (an empty zip on the Evaluate page)", "evaluate-source",
         "has no images in class folders", cli_expect="is empty: there is nothing to score", make=_eval_source(()),
         cli_args=EVAL_SOURCE),
    Case("eval-images-not-an-image", EV, "evaluate class folders holding a text file named notes.png", "evaluate-source",
         "Bag/notes.png is not an image", make=_eval_source(("Bag", "Trouser"), junk=True), cli_args=EVAL_SOURCE),
    Case("eval-images-text-model", EV, "evaluate a text model on a folder (or an uploaded zip) of image class folders",
         "evaluate-source", "holds image data, but the model classifies text; evaluate an image model on it",
         make=_eval_source(("Bag", "Trouser"), model=None),
         cli_args=("evaluate", "--model", "{model}", "--data", "{path}/photos", "--out", "{path}/out")),
    Case("eval-images-total-pixels", EV, "evaluate a 9 KB zip of 20 solid 5000x5000 PNGs (500,000,000 pixels), with "
         "BMCORE_MAX_TOTAL_PIXELS at the demo's 250,000,000", "evaluate-source",
         "its images add up to more than 250,000,000 pixels", env=PIXELS_CAP, make=_eval_pixel_bomb,
         cli_args=("evaluate", "--model", "{path}/model", "--data", "{path}/photos.zip", "--out", "{path}/out")),
]


# --- issue 27, Grad-CAM: an explanation method that does not fit the model ------------------------------------------


def _tiny_image_model(kind: str) -> Callable[[Ctx], Path]:
    """A folder with a tiny random image model (model/: ``kind`` resnet or vit) and one 32x32 PNG (a.png)."""
    def make(ctx: Ctx) -> Path:
        from bmcore.tiny_models import make_tiny_resnet, make_tiny_vit

        folder = ctx.tmp / f"tiny-{kind}"
        with contextlib.redirect_stderr(io.StringIO()):  # transformers' progress bar: not the command's output
            (make_tiny_resnet if kind == "resnet" else make_tiny_vit)(folder / "model")
        (folder / "a.png").write_bytes(solid_png(32, 128))
        return folder
    return make


def _explain_with(method: str, *extra: str) -> tuple[str, ...]:
    return ("predict", "--model", "{path}/model", *extra, "--method", method, "{path}/a.png")


METHOD_FITS = "the Playground offers only the methods that fit the model"
CASES += [
    Case("predict-method-rollout-cnn", M, "predict --explain --method rollout on a CNN (ResNet)", "cli",
         "rollout needs attention over image patches (a ViT-like model), and this is a resnet model; use gradcam or "
         "integrated_gradients", make=_tiny_image_model("resnet"), cli_args=_explain_with("rollout", "--explain"),
         no_ui=METHOD_FITS),
    Case("predict-method-gradcam-vit", M, "predict --explain --method gradcam on a ViT", "cli",
         "gradcam needs a convolutional feature map (a CNN such as ResNet, EfficientNet or ConvNeXt), and this is a vit "
         "model; use rollout or integrated_gradients", make=_tiny_image_model("vit"),
         cli_args=_explain_with("gradcam", "--explain"), no_ui=METHOD_FITS),
    Case("predict-method-unknown", M, "predict --explain --method smoothgrad (no such method)", "cli",
         "unknown explanation method 'smoothgrad'; choose one of gradcam, rollout, integrated_gradients",
         make=_tiny_image_model("resnet"), cli_args=_explain_with("smoothgrad", "--explain"), no_ui=METHOD_FITS),
    Case("predict-method-without-explain", M, "predict --method gradcam without --explain", "cli",
         "--method chooses how --explain draws an image's heat map; add --explain", make=_tiny_image_model("resnet"),
         cli_args=_explain_with("gradcam"), no_ui="the Playground always explains one image"),
    Case("predict-method-text-model", M, "predict --explain --method gradcam on a text model", "cli",
         "--method is for image models", cli_args=("predict", "--model", "{model}", "--explain", "--method", "gradcam",
                                                  "a fine film"),
         no_ui="the text Playground has no method choice"),
]


# --- issue 27, label quality for images ---


def _damaged_image_dataset(ctx: Ctx) -> Path:
    """The prepared image dataset of :func:`_image_dataset` with one stored image overwritten by junk afterwards (a
    workspace file changed by hand, or half-written by a full disk)."""
    from bmcore import data as bdata

    folder = _image_dataset(ctx)
    path = bdata.dataset_dir("shapes") / "train.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "image"] = b"not an image"
    frame.to_parquet(path, index=False)
    return folder


IQ = "Label quality for images"
CASES += [
    Case("quality-image-damaged", IQ, "data quality on an image dataset whose stored image was damaged after it was "
         "prepared", "cli", "is not an image (PNG, JPEG, BMP, GIF, WebP or TIFF)", make=_damaged_image_dataset,
         cli_args=("data", "quality", "shapes"),
         ui_skip="the Data page runs the same check as a background job and shows its one-line failure"),
]


# --- issue 27, calibration (temperature scaling) ---


def _temperature(value: object) -> Callable[[Path], None]:
    """Write ``value`` as the temperature in a model folder's bmcore.json (what evaluation saves there)."""
    def change(folder: Path) -> None:
        meta_file = folder / "bmcore.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        meta_file.write_text(json.dumps({**meta, "temperature": value}))
    return change


CASES += [
    Case("model-temperature-word", M, "a bmcore.json whose temperature is a word", "model",
         "its temperature must be a positive number, not 'hot'", make=_damaged_model(_temperature("hot")),
         cli_args=("predict", "--model", "{path}", "--calibrated", "a fine film")),
    Case("model-temperature-true", M, "a bmcore.json whose temperature is true (JSON's boolean)", "model",
         "its temperature must be a positive number, not 'True'", make=_damaged_model(_temperature(True)),
         cli_args=("predict", "--model", "{path}", "--calibrated", "a fine film")),
]


# Search, the labelling loop and serving: each refused in one line before anything starts.
L = "Search, the labelling loop and serving"


def _texts_file(ctx: Ctx) -> Path:
    """Texts without labels, as the labelling loop takes them."""
    path = ctx.tmp / "texts.csv"
    path.write_bytes(csv_bytes(rows()[["text"]]))
    return path


def _project(ctx: Ctx) -> Path:
    """A labelling project 'loop' on unlabelled texts, classes a and b: its folder."""
    from bmcore.labelling.project import create_project

    return create_project("loop", str(_texts_file(ctx)), classes=["a", "b"]).folder


PAGE_LOOP = "tests/test_labelling_page.py::test_bad_input_is_one_line drives the Data page's Classes box"
CASES += [
    Case("tune-budget-words", L, "a search budget in words", "cli", "is not a duration",
         cli_args=("tune", "--data", "tiny-data", "--budget", "soon"),
         no_ui="the Search tab's budget is a number of minutes"),
    Case("tune-model-missing", L, "a search over a model path that does not exist", "cli", "does not exist",
         cli_args=("tune", "--data", "tiny-data", "--models", "/nonexistent-model", "--budget", "5m"),
         ui_skip="the Search tab checks every model as Train does when Start is pressed (case model-missing)"),
    Case("tune-storage-unreachable", L, "a study storage that cannot be reached, its password in the URL", "cli",
         "cannot be reached", secret="pw-of-the-db",
         cli_args=("tune", "--data", "tiny-data", "--budget", "5m", "--storage", "mysql://u:pw-of-the-db@nohost/db"),
         no_ui="the Search tab keeps its studies in the workspace"),
    Case("label-one-class", L, "a labelling project with one class", "cli", "give between 2 and 500 classes",
         make=_texts_file, cli_args=("label", "new", "loop", "--file", "{path}", "--classes", "a"), ui_skip=PAGE_LOOP),
    Case("label-class-twice", L, "a labelling project naming a class twice", "cli", "'a' is named twice",
         make=_texts_file, cli_args=("label", "new", "loop", "--file", "{path}", "--classes", "a,b,a"),
         ui_skip=PAGE_LOOP),
    Case("label-unknown-project", L, "a label given to a project that does not exist", "cli",
         "no labelling project named 'nosuch'", cli_args=("label", "give", "nosuch", "3", "a"),
         no_ui="the page lists the projects there are"),
    Case("label-unknown-class", L, "a label that is not one of the project's classes", "cli", "is not a class of labelling project", make=_project,
         cli_args=("label", "give", "loop", "3", "c"), no_ui="the page offers a button per class"),
    Case("label-row-missing", L, "a label for a row the project does not have", "cli", "row 999 is outside", make=_project,
         cli_args=("label", "give", "loop", "999", "a"), no_ui="the page labels the text it shows"),
    Case("label-batch-zero", L, "a labelling step that picks no rows", "cli", "the batch must hold at least one row",
         make=_project, cli_args=("label", "step", "loop", "--batch", "0"), no_ui="the Batch size box starts at 1"),
    Case("label-simulate-over-pool", L, "a simulation budget over the rows the pool holds", "cli",
         "is more than the pool holds", cli_args=("label", "simulate", "--data", "tiny-data", "--budget", "100000"),
         ui_skip="the page's simulation form runs the same check (bmcore.labelling.simulate.check_simulation)"),
    Case("label-simulate-strategy", L, "a simulation strategy that does not exist", "cli", "unknown strategy 'greedy'",
         cli_args=("label", "simulate", "--data", "tiny-data", "--strategy", "greedy"),
         no_ui="the page runs both strategies"),
    Case("serve-model-missing", L, "serving a model path that does not exist", "cli", "does not exist",
         cli_args=("serve", "--model", "/nonexistent-model"), no_ui="serving is a command, not a page"),
    Case("serve-port", L, "serving on a port that is not a port", "cli", "99999 is not a port",
         cli_args=("serve", "--model", "{model}", "--port", "99999"), no_ui="serving is a command, not a page"),
]

BY_ID = {c.id: c for c in CASES}


def sees(case: Case) -> str:
    """What the user sees, for the README table."""
    if case.ok:
        return f"accepted, with the notice “…{case.expect}…”"
    return f"refused: “…{case.expect}…” (CLI exit 2; `st.error` in the UI)"


def readme_table() -> str:
    """The Markdown table of every case, grouped, for the README."""
    lines = ["| group | case | what the user sees | notes |", "| --- | --- | --- | --- |"]
    for c in CASES:
        note = (f"UI: cannot be entered ({c.no_ui})" if c.no_ui else f"UI: not driven by the tests ({c.ui_skip})"
                if c.ui_skip else f"CLI: {c.no_cli}" if c.no_cli
                else f"CLI words it “…{c.cli_expect}…”" if c.cli_expect else "CLI and UI")
        lines.append(f"| {c.group} | `{c.id}`: {c.title} | {sees(c)} | {note} |".replace("<", "&lt;"))
    return "\n".join(lines)

