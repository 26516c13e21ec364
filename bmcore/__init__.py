"""bmcore: the engine of bmcore studio - data, training, evaluation and explanations.

It never imports streamlit; the dashboard in ``app.py`` and ``pages/`` draws what it returns.
``import bmcore`` loads nothing else: each name below is imported from its module on first use (PEP 562), so
``import bmcore.data`` costs only the data package, and heavy libraries (torch, transformers) load when used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The public API: name -> the module that defines it (its one home).
API: dict[str, str] = {
    "attention_rollout": "bmcore.explain",
    "attributions_html": "bmcore.explain",
    "BmcoreError": "bmcore.errors",
    "Classifier": "bmcore.inference",
    "Columns": "bmcore.data",
    "compare_runs": "bmcore.compare",
    "compute_metrics": "bmcore.metrics",
    "compute_stats": "bmcore.data",
    "datasets_dir": "bmcore.workspace",
    "detect_columns": "bmcore.data",
    "detect_device": "bmcore.device",
    "DeviceInfo": "bmcore.device",
    "drop_duplicates": "bmcore.data",
    "EvalResult": "bmcore.evaluation_files",
    "evaluate_model": "bmcore.evaluate",
    "Explanation": "bmcore.explain",
    "export_onnx": "bmcore.export.onnx",
    "export_zip": "bmcore.export.bundle",
    "list_prepared": "bmcore.data",
    "list_runs": "bmcore.run_list",
    "load_classifier": "bmcore.models",
    "load_eval": "bmcore.evaluation_files",
    "load_for_inference": "bmcore.inference",
    "load_prepared": "bmcore.data",
    "load_source": "bmcore.data",
    "load_tokenizer": "bmcore.models",
    "make_tiny_bert": "bmcore.tiny_models",
    "ModelRef": "bmcore.models",
    "predict": "bmcore.inference",
    "predict_split": "bmcore.evaluate",
    "prepare": "bmcore.data",
    "PreparedDataset": "bmcore.data",
    "PretrainConfig": "bmcore.config",
    "push_to_hub": "bmcore.export.hub",
    "RawData": "bmcore.data",
    "read_metrics": "bmcore.runs",
    "read_status": "bmcore.runs",
    "request_stop": "bmcore.runs",
    "resolve_dataset": "bmcore.data",
    "resolve_model": "bmcore.models",
    "runs_dir": "bmcore.workspace",
    "save_prepared": "bmcore.data",
    "select_precision": "bmcore.device",
    "start_pretraining": "bmcore.pretrain",
    "start_run": "bmcore.launch",
    "TrainConfig": "bmcore.config",
    "warnings_for": "bmcore.data",
    "with_test_file": "bmcore.data",
    "workspace_dir": "bmcore.workspace",
    "write_model_card": "bmcore.export.card",
}
__all__ = sorted(API)


def __getattr__(name: str) -> Any:
    if name in API:
        value = getattr(importlib.import_module(API[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'bmcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
