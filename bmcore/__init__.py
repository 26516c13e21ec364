"""bmcore: the engine of bmcore studio - data, training, evaluation and explanations.

It never imports streamlit; the dashboard in ``app.py`` and ``pages/`` draws what it returns.
Heavy libraries (torch, transformers) load lazily, on first use.
"""

from .config import PretrainConfig, TrainConfig
from .data import (
    Columns,
    PreparedDataset,
    RawData,
    compute_stats,
    detect_columns,
    drop_duplicates,
    list_prepared,
    load_prepared,
    load_source,
    prepare,
    resolve_dataset,
    save_prepared,
    warnings_for,
    with_test_file,
)
from .errors import BmcoreError
from .evaluate import EvalResult, compare_runs, compute_metrics, evaluate_model, load_eval, predict_split
from .explain import Explanation, attention_rollout, attributions_html
from .export.bundle import export_zip
from .export.card import write_model_card
from .export.hub import push_to_hub
from .export.onnx import export_onnx
from .inference import Classifier, load_for_inference, predict
from .launch import start_run
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
from .pretrain import start_pretraining
from .runs import list_runs, read_metrics, read_status, request_stop
from .workspace import datasets_dir, runs_dir, workspace_dir

__version__ = "0.1.0"

__all__ = [
    "BmcoreError",
    "Classifier",
    "Columns",
    "DeviceInfo",
    "EvalResult",
    "Explanation",
    "ModelRef",
    "PreparedDataset",
    "PretrainConfig",
    "RawData",
    "TrainConfig",
    "attention_rollout",
    "attributions_html",
    "compare_runs",
    "compute_metrics",
    "compute_stats",
    "datasets_dir",
    "detect_columns",
    "detect_device",
    "drop_duplicates",
    "evaluate_model",
    "export_onnx",
    "export_zip",
    "list_prepared",
    "list_runs",
    "load_classifier",
    "load_eval",
    "load_for_inference",
    "load_prepared",
    "load_source",
    "load_tokenizer",
    "make_tiny_bert",
    "predict",
    "predict_split",
    "push_to_hub",
    "prepare",
    "read_metrics",
    "read_status",
    "request_stop",
    "resolve_dataset",
    "resolve_model",
    "runs_dir",
    "save_prepared",
    "select_precision",
    "start_pretraining",
    "start_run",
    "warnings_for",
    "with_test_file",
    "workspace_dir",
    "write_model_card",
]
