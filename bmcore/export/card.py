"""The model card: ``model/README.md`` of a run, Markdown with Hugging Face YAML metadata.

It holds the data (dataset, classes, split sizes), the hyperparameters from ``config.json`` and the test metrics
against the baseline, then how to use the model. It is also written when a training run completes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import runs
from ..data import DATASET_META, dataset_dir
from ..display import md, md_code
from ..errors import BmcoreError
from ..evaluation_files import EVAL_METRICS_FILE
from ..files import write_text_atomic
from ..metrics import check_scores
from ..modalities import modality_of_ref
from ..models import resolve_model
from ..tasks import Task, get_task
from .run import CARD_FILE, read_or_empty

# The Hub ids of bundled models, for the card's base_model (a local folder has none).
BUILTIN_HUB_IDS = {"builtin:minilm": "sentence-transformers/all-MiniLM-L6-v2"}


def base_model_id(model_name_or_path: str) -> str | None:
    """The Hub id of the model a run started from, when it has one (a builtin or a Hub id; not a local folder)."""
    ref = str(model_name_or_path or "").strip()
    if ref in BUILTIN_HUB_IDS:
        return BUILTIN_HUB_IDS[ref]
    try:
        mref = resolve_model(ref)
    except BmcoreError:
        return None
    return mref.hub_id if mref.kind == "hub" else None


def _test_metrics(run_dir: Path, task: Task) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, baseline) test metrics: the full evaluation where it exists, else ``eval.json``'s summary (in the
    evaluation's key names, as the task reads them)."""
    full = check_scores(read_or_empty(run_dir / runs.EVALUATION_DIR / "test" / EVAL_METRICS_FILE),
                        f"the test evaluation of {run_dir.name}")
    if task.card_has_results(full):
        return full, full.get("baseline") or {}
    summary = check_scores(read_or_empty(run_dir / runs.EVAL_FILE), f"eval.json in {run_dir.name}")
    return task.card_test_metrics(summary.get("test") or {}, summary.get("baseline") or {})


def _task_of(model_dir: Path, meta: dict[str, Any], model_config: dict[str, Any]) -> tuple[Task, str]:
    """The saved model's task and the name of its modality ("text", "image"), from ``bmcore.json`` and
    ``config.json``; single-label text when they say too little."""
    try:
        modality = modality_of_ref(str(model_dir)).name
    except (BmcoreError, OSError, ValueError):
        modality = str(meta.get("modality") or "text")
    try:
        return get_task(meta.get("problem_type") or model_config.get("problem_type"), modality), modality
    except BmcoreError:  # a problem type this version does not know: the card still says what it can
        return get_task(None, modality), modality


@dataclass
class _Facts:
    """What the card's sections are written from, read once from the run folder and its dataset."""

    run_dir: Path
    config: dict[str, Any]
    meta: dict[str, Any]  # model/bmcore.json
    labels: list[str]
    dataset: str
    base_ref: str
    base_id: str | None
    base_shown: str  # the base model as the card names it
    model: dict[str, Any]  # test metrics
    baseline: dict[str, Any]
    task: Task  # the saved model's: it writes the results, the usage and what the model predicts
    kind: str  # the modality's name: "text" or "image"
    data_meta: dict[str, Any]  # the prepared dataset's dataset.json; {} for a raw source


def _read_facts(run_dir: Path) -> _Facts:
    """The run's configuration, model metadata, labels, base model, test metrics and dataset metadata."""
    config = read_or_empty(run_dir / runs.CONFIG_FILE)
    meta = read_or_empty(run_dir / runs.MODEL_DIR / "bmcore.json")
    model_config = read_or_empty(run_dir / runs.MODEL_DIR / "config.json")
    id2label = model_config.get("id2label") or {}
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)] or list(meta.get("label_names") or [])
    dataset = str(meta.get("dataset") or config.get("dataset") or "unknown")
    base_ref = str(config.get("model_name_or_path") or meta.get("base_model") or "")
    base_id = base_model_id(base_ref)
    # A local base model is named by its folder only: the card may be published, a home path should not be.
    base_shown = base_ref if base_id or not base_ref or base_ref.startswith("builtin:") else f"{Path(base_ref).name} (a local folder)"
    task, kind = _task_of(run_dir / runs.MODEL_DIR, meta, model_config)
    model, baseline = _test_metrics(run_dir, task)
    try:
        data_meta = read_or_empty(dataset_dir(dataset) / DATASET_META)
    except BmcoreError:  # a raw source rather than a prepared dataset's name
        data_meta = {}
    return _Facts(run_dir, config, meta, labels, dataset, base_ref, base_id, base_shown, model, baseline, task, kind,
                  data_meta)


def _card_data(f: _Facts) -> Any:
    """The card's YAML metadata: library, pipeline tag, base model and the test results as Hub eval results."""
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCardData

    results = []
    for metric, key, name, args in f.task.card_metrics:
        if f.model.get(key) is not None:
            results.append(HubEvalResult(task_type=f"{f.kind}-classification", task_name=f"{f.kind.title()} Classification",
                                         dataset_type=f.dataset, dataset_name=f.dataset, dataset_split="test",
                                         metric_type=metric, metric_name=name, metric_value=round(float(f.model[key]), 4),
                                         metric_args=args))
    return ModelCardData(library_name="transformers", pipeline_tag=f"{f.kind}-classification", base_model=f.base_id,
                         metrics=sorted({m for m, *_ in f.task.card_metrics}), tags=[f"{f.kind}-classification", "bmcore"],
                         model_name=f.run_dir.name, eval_results=results or None)


FEW_SHOT_CARD = ("Few-shot training with [SetFit](https://github.com/huggingface/setfit): the encoder was fine-tuned "
                 "contrastively on pairs of training examples (same class or not), pooling the first token, and a "
                 "logistic regression was fitted on its embeddings. The regression is folded into the model's own "
                 "classification head (a dense layer scaled to where tanh is linear, then the regression's weights), "
                 "so it loads as an ordinary classifier.")

FEW_SHOT_NAMES_CARD = (" The class names were training examples too: each became 8 examples \"This sentence is "
                       "NAME\" of its class.")


def _intro(f: _Facts) -> list[str]:
    """The title and one sentence: what the model predicts, what it was fine-tuned from and on what."""
    # Every name from data (labels, columns, files, runs) is shown as text: md() and md_code() make it inert.
    base = f"[{f.base_id}](https://huggingface.co/{f.base_id})" if f.base_id else md_code(f.base_shown)
    how = "trained few-shot" if f.meta.get("few_shot") else "fine-tuned"
    lines = [f"# {md(f.run_dir.name)}", "",
             f"{f.task.card_what(f.labels, f.kind)}, {how} with bmcore studio from {base} on the dataset "
             f"{md_code(f.dataset)}.", ""]
    if f.meta.get("few_shot"):
        lines += [FEW_SHOT_CARD + (FEW_SHOT_NAMES_CARD if f.meta.get("few_shot_label_names") else ""), ""]
    return lines + ["## Results on the test split", ""]


def _data_section(f: _Facts) -> list[str]:
    """The Data section: dataset and source file, columns, split sizes, what the model predicts, and what its task
    adds (images: their size and augmentation)."""
    source = str(f.data_meta.get("source") or "")
    source = Path(source).name if os.sep in source else source  # a file's name, not its path on this machine
    lines = ["## Data", "", f"- Dataset: {md_code(f.dataset)}" + (f", from {md_code(source)}" if source else "")]
    if f.data_meta.get("text_columns"):
        lines.append(f"- Text column(s): {', '.join(md_code(c) for c in f.data_meta['text_columns'])}; "
                     f"label column: {md_code(f.data_meta.get('label_column'))}")
    splits = f.data_meta.get("splits") or {}
    if splits:
        lines.append("- Splits: " + ", ".join(f"{int(v):,} {k}" for k, v in splits.items()))
    lines += [f.task.card_labels(f.labels), *f.task.card_data(f.meta, f.config)]
    return lines + [""]


def _hyperparameters_section(f: _Facts) -> list[str]:
    """The Training hyperparameters table: ``config.json``'s settings, steps and seconds, precision, schedule."""
    lines = ["## Training hyperparameters", "", "| setting | value |", "| --- | --- |"]
    shown = f.config | ({"model_name_or_path": f.base_shown} if f.base_ref else {})
    lines += [f"| `{k}` | {md_code(json.dumps(v), in_table=True)} |" for k, v in shown.items() if v is not None and k != "dataset"]
    last = next((r for r in reversed(runs.read_metrics(f.run_dir)) if r.get("elapsed_s") is not None), None)
    if last:
        lines.append(f"| training | {last.get('step', '-')} steps in {float(last['elapsed_s']):.0f} s |")
    if f.meta.get("precision"):
        lines.append(f"| precision used | `{f.meta['precision']}` |")
    status = read_or_empty(f.run_dir / runs.STATUS_FILE)
    if isinstance(status.get("schedule"), str):  # the small-data rule's epochs and batches, where the table says unset
        lines.append(f"| epochs and batches | {md_code(status['schedule'], in_table=True)} |")
    return lines + [""]


def model_card(run_dir: str | Path) -> str:
    """The model card of a run as Markdown with Hugging Face YAML metadata (``README.md`` of its model).

    Holds the data (dataset, classes, split sizes), the hyperparameters from ``config.json``
    and the test metrics against the baseline; the saved model's task (:mod:`bmcore.tasks`) writes the results
    (a multi-label model's tuned thresholds, a regression model's correlations and errors) and how to load the folder
    with ``transformers.pipeline``. Works on any run with a saved model and ``config.json``; sections whose files are
    missing say so.
    """
    from huggingface_hub import ModelCard

    f = _read_facts(Path(run_dir))
    lines = [*_intro(f), *f.task.card_results(f.model, f.baseline, f.meta, f.labels), *_data_section(f),
             *_hyperparameters_section(f), *f.task.card_usage(f.dataset, f.meta, f.config)]
    return str(ModelCard.from_template(_card_data(f), template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines)))


def write_model_card(run_dir: str | Path) -> Path:
    """Write (or refresh) ``model/README.md`` of a run; an unchanged card is not rewritten."""
    path = Path(run_dir) / runs.MODEL_DIR / CARD_FILE
    text = model_card(run_dir)
    try:
        if path.read_text(encoding="utf-8") == text:
            return path  # unchanged: leave the folder's mtime alone (the Playground caches models by it)
    except OSError:
        pass
    write_text_atomic(path, text)
    return path
