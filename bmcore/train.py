"""The training job: ``python -m bmcore train RUN_DIR``, on ``transformers.Trainer``.

:func:`run_training` is the job: it waits for the device queue, keeps ``status.json`` up to date, and hands the run
to its task (:mod:`bmcore.tasks`, by the config's ``problem_type``). :func:`fine_tune` is the fine-tuning loop every
classification task shares: it asks the task for targets, the model, the loss and the metrics, and uses the Trainer
plumbing of :mod:`bmcore.trainer` for the rest. Neither knows a task.
"""

from __future__ import annotations

import errno
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import files, processes, queue, runs
from .config import TrainConfig
from .data.dataset import SPLITS, PreparedDataset
from .data.resolve import resolve_dataset
from .data.storage import is_prepared, load_prepared, save_prepared
from .errors import BmcoreError
from .evaluate import evaluate_model
from .export.card import write_model_card
from .fewshot import (
    BATCH_SIZE,
    NAME_EXAMPLES,
    few_shot_reason,
    fit_few_shot,
    fold_into,
    names_to_learn,
    pair_steps,
    setfit_bridge,
)
from .inference import load_for_inference
from .limits import check_training
from .model_meta import read_model_meta
from .pretrain import train_mlm
from .problem_types import chosen_problem_type
from .schedule import resolve_schedule
from .tasks import Task, get_task
from .tracking import run_tracked, track_late_test_scores, trainer_report_to
from .trainer import (
    build_training_args,
    make_callback,
    mean_examples_per_step,
    passes_after_training,
    rank,
    save_model_atomically,
    setup_logging,
    start_job,
    trainer_class,
    world_size,
)

log = logging.getLogger("bmcore.train")


# --- data -----------------------------------------------------------------------------------


def load_run_dataset(config: TrainConfig) -> PreparedDataset:
    """A run's prepared dataset: by name, or prepared (and saved) from its source as the job does."""
    if is_prepared(config.dataset):
        return load_prepared(config.dataset)
    ds = resolve_dataset(config.dataset, text_columns=config.text_column, label_column=config.label_column, seed=config.seed,
                         label_columns=config.label_columns, label_delimiter=config.label_delimiter)
    # Save it so Evaluate and Playground can find the same splits by name.
    if rank() == 0 and not is_prepared(ds.name):
        save_prepared(ds)
    return ds


def task_for_config(config: Any, dataset: PreparedDataset | None = None) -> Task:
    """The task of a run: its ``problem_type``, or with ``auto`` the prepared dataset's, for the dataset's modality."""
    if getattr(config, "pretraining", False):
        return get_task(config.task)  # masked_lm: the pretraining config's task is its problem type
    if dataset is None:
        dataset = load_run_dataset(config)
    return get_task(chosen_problem_type(getattr(config, "problem_type", None), getattr(dataset, "problem_type", None)),
                    getattr(dataset, "modality", None))


# --- the job --------------------------------------------------------------------------------


def run_training(run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Run the job of a run folder to the end and return its final status.

    Failures are recorded in ``status.json`` (``failed`` with a one-line error) and re-raised.
    """
    run_dir = Path(run_dir).resolve()
    main = rank() == 0
    setup_logging(run_dir)
    config = runs.load_run_config(run_dir)
    lock = None
    if main:
        runs.write_status(run_dir, state=runs.QUEUED, **processes.own_process())
        if world_size() == 1:
            lock = queue.wait_turn(run_dir)
            if lock is None:
                log.info("cancelled while queued")
                return runs.write_status(run_dir, state=runs.CANCELLED, ended=runs.now(), ended_ts=time.time())
        previous = files.read_json(run_dir / runs.STATUS_FILE)
        started = {} if resume and previous.get("started_ts") else {"started": runs.now(), "started_ts": time.time()}
        runs.write_status(run_dir, state=runs.RUNNING, **processes.own_process(), error=None, world_size=world_size(),
                          phase="loading the model and tokenizing the data",
                          **started, **({"resumed": runs.now()} if resume else {}))
    try:
        task = task_for_config(config)
        loop = LOOPS["few_shot" if getattr(config, "few_shot", False) else task.loop]
        ended = run_tracked(run_dir, config, main, lambda: loop(run_dir, config, task, resume, main))
        # The ended state is the run's last write, after the tracker has closed: whoever sees it may read everything.
        status = runs.write_status(run_dir, **ended, ended=runs.now(), ended_ts=time.time()) if main else ended
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" while writing {Path(exc.filename).name}" if exc.filename else ""
            exc = BmcoreError(f"the disk is full{where} (No space left on device); free some space, then resume the run")
        if main:
            message = str(exc) if isinstance(exc, BmcoreError) else f"{exc.__class__.__name__}: {exc}"
            message = " ".join(message.split())[:500] or exc.__class__.__name__
            # A user error (bad input, full disk, NaN loss) is one line; only a bug gets a traceback in the log.
            log.error("training failed: %s%s", message, "" if isinstance(exc, BmcoreError) else "\n" + traceback.format_exc())
            try:
                runs.write_status(run_dir, state=runs.FAILED, error=message, ended=runs.now(), ended_ts=time.time())
            except OSError:
                pass  # a full disk may refuse even this; the dead process then reads as failed with the log tail
        else:  # other ranks write no files: their stderr is where torchrun users look
            log.error("rank %d failed: %s\n%s", rank(), exc, traceback.format_exc())
        if isinstance(exc, BmcoreError):
            raise exc from None
        raise
    finally:
        if lock is not None:
            lock.close()
    return status


def fine_tune(run_dir: Path, config: TrainConfig, task: Task, resume: bool, main: bool) -> dict[str, Any]:
    """Fine-tune a model for ``task``: train, keep the best checkpoint, tune what the task tunes on the validation
    split, score validation and test, save ``model/`` and evaluate the test split in full."""
    device, plan, mref = start_job(config, run_dir, main)
    job = prepare_job(config, task, mref, main, run_dir)
    log.info("device %s, precision %s; dataset %s (%s): %d train / %d validation / %d test, %d %s", device.label,
             plan["precision"], job.ds.name, task.problem_type, *(len(job.data[s]) for s in SPLITS), len(job.label_names),
             task.label_unit)
    model = task.load_model(mref, job.label_names, config, plan)
    if note := task.init_model(model, job.train_targets, config, resume=resume):
        log.info(note)
    config = apply_schedule(config, task, len(job.data["train"]), run_dir, main)
    trainer, callback = build_trainer(run_dir, config, task, job, model, plan["precision"], main)
    train_from(trainer, callback, run_dir, resume)
    cancelled = callback.cancelled
    if not cancelled and (note := task.finish_training(trainer.model, job.data["train"])):
        log.info(note)
    results, tuned = score_splits(trainer, task, job, cancelled, run_dir, main, test=config.score_test)
    if not main:
        return {}
    save_model(trainer, task, job, config, run_dir, plan["precision"], tuned)
    best = trainer.state.best_metric
    if cancelled:
        return {"state": runs.CANCELLED, "best_metric": best, "best_metric_name": config.metric_for_best_model}
    ended = {"state": runs.COMPLETED, "best_metric_name": config.metric_for_best_model,
             "best_metric": best if best is not None else results["validation"].get(config.metric_for_best_model)}
    if not config.score_test:  # a search's trial: compared on validation; bmcore.train.score_test scores the chosen one
        files.write_json_atomic(run_dir / runs.EVAL_FILE, results)
        log.info("the test split is left unscored (score_test off): only a search's chosen trial is scored on it")
        return {**ended, "scored_test": False}
    evaluate_in_full(results, task, job, run_dir, plan["precision"])
    return {**ended, **{f"{runs.TEST_PREFIX}{k}": results["test"].get(k) for k in task.headline}}


@dataclass
class Job:
    """What a fine-tune reads: the dataset, its label names, the processor and each split encoded for Trainer."""

    ds: PreparedDataset
    label_names: list[str]
    processor: Any
    train_targets: list[Any]
    data: dict[str, Any]


def prepare_job(config: TrainConfig, task: Task, mref: Any, main: bool, run_dir: Path) -> Job:
    """Load and check the dataset and the model's kind, then encode each split with the task's processor (a
    tokenizer for text, an image processor and augmentation for images)."""
    ds = load_run_dataset(config)
    task.check_dataset(ds)
    task.check_model(mref, ds)
    check_training(len(ds.splits["train"]), config.max_steps,
                   config.per_device_train_batch_size * config.gradient_accumulation_steps * world_size())
    label_names = task.label_names(ds)
    processor = task.load_processor(mref, config, ds)
    train_targets = task.targets(ds.splits["train"], label_names)
    data = {name: task.encode_split(ds.splits[name], processor, config,
                                    train_targets if name == "train" else task.targets(ds.splits[name], label_names),
                                    train=name == "train")
            for name in SPLITS}
    return Job(ds, label_names, processor, train_targets, data)


def apply_schedule(config: TrainConfig, task: Task, n_train: int, run_dir: Path, main: bool) -> TrainConfig:
    """The small-data rule (:mod:`bmcore.schedule`): more epochs in plain batches when a small set would get too few
    optimiser steps; the config as it will train."""
    schedule = resolve_schedule(config, n_train, task.min_train_steps, world_size(), grows=task.grows_batches,
                                noun=task.example_noun)
    if not schedule.small_data:
        return config
    log.info(schedule.reason)
    if main:
        runs.write_status(run_dir, schedule=schedule.reason)
    return schedule.apply(config)


def build_trainer(run_dir: Path, config: TrainConfig, task: Task, job: Job, model: Any, precision: str,
                  main: bool) -> tuple[Any, Any]:
    """The Trainer with the task's loss, metrics and collator, token-budget batches and bmcore's callback."""
    from transformers import EarlyStoppingCallback, PrinterCallback

    train_ds = job.data["train"]
    lengths = list(train_ds["length"]) if "length" in (getattr(train_ds, "column_names", None) or ()) else []
    batch_growth = config.batch_growth if lengths else 1  # token-budget batches need token lengths
    mean_batch = mean_examples_per_step(config, lengths)
    if mean_batch > config.per_device_train_batch_size:
        log.info("short texts: %.0f examples per step on average (batch_growth %d)", mean_batch, config.batch_growth)
    if main:
        runs.write_status(run_dir, mean_examples_per_step=round(mean_batch, 1))
    args = build_training_args(config, run_dir, precision, len(train_ds),
                               **task.training_overrides(config, len(train_ds), world_size()))
    mode, compute_loss, shown_weights = task.loss(config, job.train_targets, job.label_names)
    if main:
        runs.write_status(run_dir, class_weights_used=mode)
    if shown_weights is not None:
        log.info("class weights (%s%s): %s", mode, ", chosen by auto" if config.class_weights == "auto" else "", shown_weights)

    def compute_metrics(p: Any) -> dict[str, float]:
        return task.validation_metrics(np.asarray(p.predictions), np.asarray(p.label_ids), job.label_names)

    callback = make_callback(run_dir, config, precision)
    callback.passes_after = passes_after_training(len(job.data["validation"]), len(job.data["test"]))  # the ETA counts scoring
    callbacks = [callback]
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = trainer_class()(model=model, args=args, train_dataset=train_ds, eval_dataset=job.data["validation"],
                              processing_class=job.processor, data_collator=task.collator(job.processor),
                              compute_metrics=compute_metrics, compute_loss_func=compute_loss, callbacks=callbacks,
                              batch_growth=batch_growth, max_seq_length=config.max_seq_length,
                              head_learning_rate=config.head_learning_rate)
    callback.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # our callback logs one readable line per step instead of dicts
    return trainer, callback


def train_from(trainer: Any, callback: Any, run_dir: Path, resume: bool) -> None:
    """Train, from the last checkpoint when resuming (optimizer, scheduler and RNG as they were)."""
    checkpoint = None
    if resume:
        checkpoint = runs.last_checkpoint(run_dir)
        if checkpoint is None:
            log.warning("no checkpoint to resume from; starting from the beginning")
        else:
            runs.check_checkpoint(checkpoint)
            log.info("resuming from %s", checkpoint.name)
            callback.resumed_from = int(checkpoint.name.split("-")[1])
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)


def score_splits(trainer: Any, task: Task, job: Job, cancelled: bool, run_dir: Path, main: bool, test: bool = True
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """eval.json's results: validation and test (unless not ``test``) scored by the final model, after the task tuned
    what it tunes (thresholds, ...) on validation; and what was tuned."""
    results: dict[str, Any] = {"label_names": job.label_names, "dataset": job.ds.name, "problem_type": task.problem_type,
                               "headline": task.headline[0], "best_checkpoint": trainer.state.best_model_checkpoint}
    tuned: dict[str, Any] = {}
    if cancelled:
        return results, tuned
    if main:
        runs.write_status(run_dir, phase="scoring validation and test")
    # Every rank takes part: prediction gathers across processes under DDP.
    outputs = {split: trainer.predict(job.data[split], metric_key_prefix=split)
               for split in (("validation", "test") if test else ("validation",))}
    # Trainer's evaluation batches are grouped by length: the targets come back with the predictions, in their order.
    val = outputs["validation"]
    tuned = task.tune(np.asarray(val.predictions), np.asarray(val.label_ids), job.label_names)
    for split, out in outputs.items():
        results[split] = task.split_metrics(np.asarray(out.predictions), np.asarray(out.label_ids), job.label_names, tuned)
        results[split]["loss"] = float(out.metrics.get(f"{split}_loss", float("nan")))
    return results, tuned


def save_model(trainer: Any, task: Task, job: Job, config: TrainConfig, run_dir: Path, precision: str,
               tuned: dict[str, Any]) -> None:
    """Save ``model/`` (best or final weights, the processor, ``bmcore.json`` with what was tuned) atomically."""
    meta = {"max_seq_length": config.max_seq_length, "dataset": job.ds.name, "label_names": job.label_names,
            "base_model": config.model_name_or_path, "run": run_dir.name, "precision": precision,
            "problem_type": task.problem_type, **task.model_meta(job.processor), **tuned}
    if note := task.before_save(trainer.model):
        log.info(note)
    save_model_atomically(trainer, job.processor, run_dir, meta)
    log.info("saved the %s model to %s", "best" if trainer.state.best_metric is not None else "final",
             run_dir / runs.MODEL_DIR)


def evaluate_in_full(results: dict[str, Any], task: Task, job: Job, run_dir: Path, precision: str) -> None:
    """Score the saved model on the test split in full, with the baseline (the Evaluate page's first view), write
    eval.json and the model card. The run stands without the evaluation or the card: the log says why."""
    model_dir = run_dir / runs.MODEL_DIR
    runs.write_status(run_dir, phase="evaluating the test split in full, with the baseline")
    try:
        # In the run's own precision, so eval.json and the full evaluation score the same predictions (a CNN trains in
        # fp32 on an AVX512-BF16 CPU, where inference would otherwise pick bf16 weights and flip borderline images).
        clf = load_for_inference(str(model_dir), precision=precision)
        full = evaluate_model(clf, job.ds, "test", out_dir=run_dir / runs.EVALUATION_DIR / "test", save_temperature=True)
        base = full.metrics.get("baseline") or {}
        results["baseline"] = {k: base.get(k) for k in task.headline}
        results["temperature"] = full.metrics.get("temperature")
    except Exception as exc:  # the model and eval.json stand without it; say why in the log
        log.warning("the full test evaluation failed: %s", exc)
    files.write_json_atomic(run_dir / runs.EVAL_FILE, results)
    log.info("test %s", ", ".join(f"{k} {v:.4f}" for k, v in results["test"].items()
                                  if k in (*task.headline, "loss") and isinstance(v, float)))
    if note := task.missed_note(results["test"]):
        log.warning(note)
    try:  # the model card (model/README.md): data, hyperparameters, test metrics; the run stands without it

        write_model_card(run_dir)
    except Exception as exc:
        log.warning("the model card was not written: %s", exc)


def score_test(run_dir: str | Path) -> dict[str, Any]:
    """Score a completed run's test split once, after the fact: a search's chosen trial, which trained with
    ``score_test`` off. Writes what a run that scored it would have: the full evaluation with the baseline, eval.json's
    test figures (the evaluation's scalar metrics), status.json's ``test_*`` and the model card. A run already scored
    is left as it is. Returns eval.json's content."""
    run_dir = Path(run_dir).resolve()
    status = runs.read_status(run_dir)
    results = files.read_json(run_dir / runs.EVAL_FILE)
    if status.get("state") != runs.COMPLETED:
        raise BmcoreError(f"run {run_dir.name} is {status.get('state')}, not completed: there is no model to score")
    if results.get("test"):
        return results
    config = runs.load_run_config(run_dir)
    ds = load_run_dataset(config)
    task = task_for_config(config, ds)
    model_dir = run_dir / runs.MODEL_DIR
    precision = read_model_meta(model_dir).get("precision") or "auto"
    clf = load_for_inference(str(model_dir), precision=precision)
    full = evaluate_model(clf, ds, "test", out_dir=run_dir / runs.EVALUATION_DIR / "test", save_temperature=True)
    results["test"] = {k: v for k, v in full.metrics.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seconds", "examples_per_second")}
    base = full.metrics.get("baseline") or {}
    results["baseline"] = {k: base.get(k) for k in task.headline}
    results["temperature"] = full.metrics.get("temperature")
    files.write_json_atomic(run_dir / runs.EVAL_FILE, results)
    runs.write_status(run_dir, scored_test=True, **{f"{runs.TEST_PREFIX}{k}": results["test"].get(k) for k in task.headline})
    track_late_test_scores(run_dir, config)
    try:
        write_model_card(run_dir)
    except Exception as exc:  # the scores stand without the card
        log.warning("the model card was not written: %s", exc)
    return results


def few_shot(run_dir: Path, config: Any, task: Any, resume: bool, main: bool) -> dict[str, Any]:
    """The few-shot job: SetFit on the training split, the head folded into the base's classifier, then the same
    scoring, saving and full test evaluation as a fine-tune (:mod:`bmcore.train`)."""
    if world_size() > 1:
        raise BmcoreError("few-shot training runs in one process; start it without torchrun or accelerate")
    if resume:
        log.info("few-shot training keeps no checkpoints: it starts again from the beginning")
    _, plan, mref = start_job(config, run_dir, main)
    job = prepare_job(config, task, mref, main, run_dir)
    if reason := few_shot_reason(task, two_texts="text_pair" in job.ds.splits["train"].columns):
        raise BmcoreError(reason)
    texts = job.ds.splits["train"]["text"].astype(str).tolist()
    names = names_to_learn(job.label_names, config.few_shot_label_names)
    log.info("few-shot (SetFit): %d training %s, %s%s; pairs of %d for at most %d steps", len(texts), task.example_noun,
             ", ".join(f"{k} {v}" for k, v in task.label_counts(job.ds.splits["train"], job.label_names).items()),
             f", and {NAME_EXAMPLES} examples made of each class name" if names else "", BATCH_SIZE,
             pair_steps(len(texts) + NAME_EXAMPLES * len(names or ()), config.max_steps))
    callback = make_callback(run_dir, config, "fp32")
    callback.passes_after = 2.0
    runs.write_status(run_dir, phase="training the body on pairs (SetFit)", few_shot=True)
    t0 = time.time()
    few = fit_few_shot(mref, task, texts, job.train_targets, len(job.label_names), seed=config.seed,
                       max_seq_length=config.max_seq_length, max_steps=config.max_steps, learning_rate=config.learning_rate,
                       callbacks=[setfit_bridge(), callback], report_to=trainer_report_to(config), label_names=names)
    if callback.cancelled:
        return {"state": runs.CANCELLED}
    log.info("SetFit trained in %.0f s", time.time() - t0)
    classifier = task.load_model(mref, job.label_names, config, {**plan, "attn_implementation": "eager"})
    diff = fold_into(classifier, few, texts)
    log.info("the head folded into %s's classification head (logits within %.1e)", classifier.config.model_type, diff)
    trainer = prediction_trainer(run_dir, config, task, job, classifier, plan["use_cpu"])
    results, tuned = score_splits(trainer, task, job, False, run_dir, main, test=config.score_test)
    save_model(trainer, task, job, config, run_dir, "fp32", {**tuned, "few_shot": "setfit", "few_shot_label_names": bool(names)})
    ended = {"state": runs.COMPLETED, "best_metric": results["validation"].get(config.metric_for_best_model),
             "best_metric_name": config.metric_for_best_model}
    if not config.score_test:
        files.write_json_atomic(run_dir / runs.EVAL_FILE, results)
        return {**ended, "scored_test": False}
    evaluate_in_full(results, task, job, run_dir, "fp32")
    return {**ended, **{f"{runs.TEST_PREFIX}{k}": results["test"].get(k) for k in task.headline}}


def prediction_trainer(run_dir: Path, config: Any, task: Any, job: Any, model: Any, use_cpu: bool) -> Any:
    """A Trainer that only predicts, for the scoring and saving a fine-tune does (:func:`bmcore.train.score_splits`)."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(run_dir), per_device_eval_batch_size=config.per_device_eval_batch_size,
                             report_to="none", use_cpu=use_cpu, save_strategy="no", disable_tqdm=True)
    return Trainer(model=model, args=args, processing_class=job.processor, data_collator=task.collator(job.processor))


def pretrain(run_dir: Path, config: Any, task: Task, resume: bool, main: bool) -> dict[str, Any]:
    """Masked-language-model pretraining (:func:`bmcore.pretrain.train_mlm`): no labels, so no task to ask."""
    return train_mlm(run_dir, config, resume, main)


# The training loops, by the name a task gives as its ``loop`` (bmcore.tasks.base.Task.loop). Each returns its ended
# fields (``state``, ``best_metric``...) unwritten: run_training writes them last, after the tracker has closed.
LOOPS = {"fine_tune": fine_tune, "pretrain": pretrain, "few_shot": few_shot}
