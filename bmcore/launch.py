"""Starting a run: check everything that can be checked before a run folder exists, then create and launch it.

The checks ask the model's modality and the dataset's task (:mod:`bmcore.modalities`, :mod:`bmcore.tasks`); the run
folder itself is :mod:`bmcore.runs`' business, which knows no task.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from . import runs
from .config import TrainConfig
from .data.readers import load_source
from .data.storage import DATASET_META, dataset_dir, is_prepared
from .device import select_precision
from .errors import BmcoreError
from .fewshot import few_shot_reason
from .files import read_json
from .limits import check_jobs, check_training
from .modalities import modality_of
from .models import check_max_seq_length, load_config, resolve_model
from .tasks import get_task
from .tracking import check_installed


def preflight(config: TrainConfig) -> str | None:
    """Check a config against its model before a run folder exists: the model loads safely, ``max_seq_length``
    fits it, it reads the prepared dataset's kind of input (text or images), a raw data source exists, and the tracker's
    package (``report_to``) is installed. Returns the precision notice (e.g. fp16 on a CPU), if any.
    """
    check_installed(getattr(config, "report_to", "none"))  # a tracker's missing package: refused before anything loads
    model = resolve_model(config.model_name_or_path)
    check_max_seq_length(config.max_seq_length, model)
    if model.kind == "local":  # a damaged tokenizer (image processor) fails here, before a run folder exists
        modality_of(load_config(model)).load_processor(model)
    if is_prepared(config.dataset):
        meta = read_json(dataset_dir(config.dataset) / DATASET_META)
        if not config.pretraining:  # a text model on images (or the reverse): refused before it starts
            task = get_task(meta.get("problem_type"), meta.get("modality"))
            task.check_model(model, SimpleNamespace(name=config.dataset))
            if getattr(config, "few_shot", False) and (
                    reason := few_shot_reason(task, two_texts=len(meta.get("text_columns") or ()) > 1)):
                raise BmcoreError(reason)
        check_training(int(meta.get("splits", {}).get("train", 0)), config.max_steps,
                       config.per_device_train_batch_size * config.gradient_accumulation_steps)
    elif not config.dataset.startswith(("builtin:", "hub:")):
        load_source(config.dataset)  # a missing or malformed file fails here, not in the background job
    return select_precision(config.precision)[1]


def start_run(config: TrainConfig, name: str | None = None) -> Path:
    """Create a run in the workspace and launch it in the background. Returns the run folder.

    Everything that can be checked before training is checked first (model, limits), so a
    refused run leaves nothing in the workspace.
    """
    check_jobs(runs.active_runs())
    preflight(config)
    run_dir = runs.create_run(config, name)
    runs.launch_new(run_dir)
    return run_dir
