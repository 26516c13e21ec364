"""bmcore: the engine of bmcore studio - data, training, evaluation and explanations.

It never imports streamlit; the dashboard in ``app.py`` and ``pages/`` draws what it returns.
Heavy libraries (torch, transformers) load lazily, on first use.
"""

from .data import (
    Columns,
    PreparedDataset,
    RawData,
    compute_stats,
    detect_columns,
    list_prepared,
    load_prepared,
    load_source,
    prepare,
    resolve_dataset,
    save_prepared,
    warnings_for,
)
from .errors import BmcoreError
from .models import (
    DeviceInfo,
    ModelRef,
    detect_device,
    load_classifier,
    load_tokenizer,
    make_tiny_bert,
    resolve_model,
    select_precision,
)
from .workspace import datasets_dir, runs_dir, workspace_dir

__version__ = "0.1.0"

__all__ = [
    "BmcoreError",
    "Columns",
    "DeviceInfo",
    "ModelRef",
    "PreparedDataset",
    "RawData",
    "compute_stats",
    "datasets_dir",
    "detect_columns",
    "detect_device",
    "list_prepared",
    "load_classifier",
    "load_prepared",
    "load_source",
    "load_tokenizer",
    "make_tiny_bert",
    "prepare",
    "resolve_dataset",
    "resolve_model",
    "runs_dir",
    "save_prepared",
    "select_precision",
    "warnings_for",
    "workspace_dir",
]
