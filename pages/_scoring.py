"""The Evaluate page's uploaded file, scored whole (issue 27): a zip of image class folders for an image model, a data
file for a text model. The upload is read (and refused, in one line) in the page, as the Data page reads one; the
rows it read are saved into the evaluation's folder only when scoring starts, and scored by the background job."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore import limits, scoring
from bmcore.models import load_config, resolve_model
from bmcore.tasks import task_of_model

UPLOAD_TYPES = ["zip", "csv", "tsv", "txt", "json", "jsonl", "ndjson", "parquet", "pq", "xlsx", "xls"]
UPLOAD_LABEL = "A zip of class folders (image model) or a data file (text model), scored whole"
UPLOAD_HELP = ("A zip holds one folder per class, named as the model's classes (cat/1.jpg, dog/2.jpg), optionally under "
               "train/, validation/ and test/: every image is scored. A CSV, JSON, Parquet or Excel file needs a text "
               "and a label column: every row is scored.")


@dataclass(frozen=True)
class Upload:
    """An uploaded file to score: its name, a key naming its content, the split scored, where its evaluation goes."""

    name: str
    key: str  # <name>-<content hash>: what the evaluation folder is named after (the same file: the same results)
    split: str
    out_dir: Path


def upload_box(column) -> object | None:
    """The uploader (drawn in ``column``); the browser refuses a file over the upload limit before sending it."""
    return column.file_uploader(UPLOAD_LABEL, type=UPLOAD_TYPES, key="evaluate_upload", help=UPLOAD_HELP,
                                max_upload_size=max(1, int(limits.current().max_upload_mb)))


def target(uploaded, model_dir: str, run_dataset: str | None) -> Upload:
    """Where the uploaded file's evaluation by ``model_dir`` is kept (nothing is read or written here)."""
    digest = hashlib.sha256(uploaded.getvalue()).hexdigest()[:8]
    key = f"{bdata.suggest_name(uploaded.name)}-{digest}"
    return Upload(uploaded.name, key, scoring.ALL, evf.evaluation_dir(model_dir, key, scoring.ALL, run_dataset))


@st.cache_data(show_spinner="Reading the upload...", max_entries=1)
def read(name: str, key: str, model_dir: str, _data: bytes) -> tuple[bdata.PreparedDataset, str]:
    # Keyed by the file's name and content hash (in ``key``) and the model: _data is not hashed again.
    limits.check_upload(name, len(_data))
    config = load_config(resolve_model(model_dir))
    labels = [str(config.id2label[i]) for i in sorted(config.id2label)]
    return scoring.whole_dataset(name, task_of_model(config), labels, data=_data)


def meta(up: Upload) -> dict:
    """What was scored, read as a prepared dataset's ``dataset.json`` reads for the page (modality, label names,
    problem type, rows per split); ``{}`` before the upload was first scored."""
    return scoring.rows_meta(up.out_dir)


def job_params(up: Upload, ds: bdata.PreparedDataset, model_dir: str, baseline_train: str | None) -> dict:
    """Save the rows read into the evaluation's folder; the scoring job's parameters (``baseline_train``: the prepared
    dataset whose train split trains the baseline, the run's own; an upload has none)."""
    scoring.save_rows(ds, up.split, up.out_dir)
    return {"model_dir": model_dir, "rows": str(up.out_dir), "split": up.split, "out_dir": str(up.out_dir),
            "precision": st.session_state.get("precision", "auto"), "baseline_train": baseline_train}


UPLOAD_OMITS = ("gold",)  # the label-quality check reads a prepared dataset's split, which an upload has not


def sections(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The results sections (by key) for an upload: the task's and modality's, less those that need a prepared dataset."""
    return tuple(key for key in keys if key not in UPLOAD_OMITS)
