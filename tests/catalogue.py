"""The bad-input catalogue: every case, how to make it, and what the user sees.

One table feeds three things: ``tests/test_catalogue.py`` runs each case through the CLI and the UI,
``scripts/catalogue_table.py`` writes the README table, and a test checks that the README is current.
Each input is built from scratch (``Ctx`` gives a temp folder, the tiny model and the workspace).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


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
    Case("float-labels", C, "a float label column (a regression target)", "file", "holds non-integer numbers",
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
    return _run_folder(ctx, "live", "running", pid=proc.pid)


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
    Case("model-tokenizer-not-json", M, "a tokenizer.json that is not JSON", "model", "has an unreadable tokenizer.json",
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
         no_ui="the page warns before saving over it; --overwrite replaces it on the CLI"),
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
CASES += [
]


# --- issue 26, data readers, caps and parsing (readers) ---
CASES += [
]


# --- issue 26, images, predict and model configs (images) ---
CASES += [
]


# --- issue 26, saving datasets and label review (saves) ---
CASES += [
]


# --- issue 26, pages: warnings, settings, charts (pages) ---
def _overfit_run_with_junk(ctx: Ctx) -> Path:
    """A finished run whose metrics.jsonl shows overfitting between lines a visitor could have written (not JSON, not
    a record, text and NaN where numbers go, a half-written last line), and whose eval.json names a class the model
    never predicts with a Markdown image."""
    folder = _run_folder(ctx, "overfit", "completed")
    lines = []
    for step, (train, val) in enumerate(((0.7, 0.5), (0.5, 0.4), (0.3, 0.5), (0.1, 0.7)), start=1):
        lines += [{"kind": "train", "step": 10 * step, "total_steps": 40, "epoch": step, "loss": train},
                  {"kind": "eval", "step": 10 * step, "epoch": step, "eval_loss": val, "eval_accuracy": 0.5}]
    junk = ["not json", "[1, 2]", json.dumps({"kind": "eval", "step": "<b>", "eval_loss": "high"}),
            '{"kind": "eval", "step": 45, "eval_loss": NaN}', json.dumps({"kind": "train", "step": True, "loss": 0.0})]
    text = "\n".join([*map(json.dumps, lines[:4]), *junk, *map(json.dumps, lines[4:])]) + '\n{"kind": "eval", "st'
    (folder / "metrics.jsonl").write_text(text)
    test = {"accuracy": 0.5, "macro_f1": 0.33, "confusion_matrix": [[5, 0], [5, 0]], "labels": ["fine", IMG]}
    (folder / "eval.json").write_text(json.dumps({"validation": test, "test": test}))
    return folder


P = "Pages: warnings, settings, charts"
CASES += [
    Case("run-metrics-junk", P, "a metrics.jsonl with junk lines (not JSON, text and NaN for numbers, half a line) "
         "around an overfitting run, and a never-predicted class named with a Markdown image", "runfiles",
         "Overfitting: the validation loss rose from its lowest, 0.400 at step 20, to 0.700 at step 40", ok=True,
         make=_overfit_run_with_junk, markdown=(IMG,),
         no_cli="the warnings are drawn by the Train and Evaluate pages (train.log words the missed classes itself)"),
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
