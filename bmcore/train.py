"""The fine-tuning job: ``python -m bmcore train RUN_DIR``, built on ``transformers.Trainer``.

Trainer provides precision, checkpoints, resume, early stopping, gradient accumulation and DDP
(under ``torchrun`` or ``accelerate launch``). This module adds what a dashboard needs: the run
folder contract (:mod:`bmcore.runs`), a queue so one job uses the device at a time, progress
lines in ``metrics.jsonl``, a graceful cancel, an atomic save of ``model/`` and the final scoring
of the locked test split with the best model.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import queue, runs
from .config import TrainConfig
from .data import PreparedDataset, is_prepared, load_prepared, resolve_dataset, save_prepared
from .errors import BmcoreError
from .inference import write_model_meta
from .limits import check_training
from .models import (
    DeviceInfo,
    ModelRef,
    check_max_seq_length,
    detect_device,
    dropout_overrides,
    load_classifier,
    load_tokenizer,
    resolve_model,
    select_precision,
)

log = logging.getLogger("bmcore.train")

AUTO_IMBALANCE = 3.0  # class_weights=auto weighs the loss from this largest:smallest class ratio on
AUTO_WEIGHTS = "balanced"  # emotion with 1.6% surprise: its recall 0.80 (balanced), 0.50 (sqrt), 0.11 (none)
PROGRESS_EVERY_S = 5  # a progress line at least this often (seconds), whatever logging_steps says


def rank() -> int:
    """This process's global rank under torchrun/accelerate (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes under torchrun/accelerate (1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _setup_logging(run_dir: Path) -> None:
    """Log to ``train.log``; also to stderr unless stderr already is ``train.log`` (a UI-launched job)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in [h for h in root.handlers if getattr(h, "_bmcore", False)]:  # a second job in one process (bench, tests)
        root.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    log_path = run_dir / runs.LOG_FILE
    same = False
    try:
        same = os.path.samefile(f"/proc/self/fd/{sys.stderr.fileno()}", log_path)
    except (OSError, ValueError, AttributeError):
        pass
    if not same:
        fh = logging.FileHandler(log_path, encoding="utf-8")
        fh.setFormatter(fmt)
        fh._bmcore = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    sh._bmcore = True  # type: ignore[attr-defined]
    root.addHandler(sh)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()


# --- data -----------------------------------------------------------------------------------


def _load_dataset(config: TrainConfig) -> PreparedDataset:
    if is_prepared(config.dataset):
        return load_prepared(config.dataset)
    ds = resolve_dataset(config.dataset, text_columns=config.text_column, label_column=config.label_column, seed=config.seed)
    # Save it so Evaluate and Playground can find the same splits by name.
    if rank() == 0 and not is_prepared(ds.name):
        save_prepared(ds)
    return ds


def tokenize_split(df: Any, tokenizer: Any, max_seq_length: int, label2id: dict[str, int]) -> Any:
    """Tokenise one split without padding (the collator pads each batch) into a ``datasets.Dataset``.

    A ``length`` column lets Trainer group batches by length.
    """
    import datasets

    args = (df["text"].tolist(), df["text_pair"].tolist()) if "text_pair" in df else (df["text"].tolist(),)
    enc = tokenizer(*args, truncation=True, max_length=max_seq_length)
    cols = {k: list(v) for k, v in enc.items()}
    cols["labels"] = [label2id[str(v)] for v in df["label"]]
    cols["length"] = [len(x) for x in enc["input_ids"]]
    return datasets.Dataset.from_dict(cols)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix (rows gold, columns predicted, in ``label_names`` order)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    pred = logits.argmax(axis=-1)
    ids = list(range(len(label_names)))
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, average="macro", labels=ids, zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, pred, labels=ids).tolist(),
        "labels": list(label_names),
        "n": int(len(labels)),
    }


# --- the trainer ------------------------------------------------------------------------------


def _trainer_class() -> Any:
    """``transformers.Trainer`` plus token-budget batches (:mod:`bmcore.batching`) and a count of examples trained on."""
    from torch.utils.data import DataLoader
    from transformers import Trainer

    from .batching import TokenBudgetBatchSampler

    class BmcoreTrainer(Trainer):
        def __init__(self, *args: Any, batch_growth: int = 1, max_seq_length: int = 128, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.batch_growth, self.max_seq_length = batch_growth, max_seq_length
            self.examples_seen = 0  # on this process; examples per step vary with token-budget batches

        def get_train_dataloader(self) -> Any:
            if self.batch_growth <= 1:
                return super().get_train_dataloader()
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            sampler = TokenBudgetBatchSampler(self.train_dataset["length"], self.args.per_device_train_batch_size,
                                              self.max_seq_length, self.batch_growth, seed=seed,
                                              rank=self.args.process_index, world_size=self.args.world_size)
            data = self._remove_unused_columns(self.train_dataset, description="training")
            loader = DataLoader(data, batch_sampler=sampler, collate_fn=self.data_collator,
                                num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
            loader = self.accelerator.prepare(loader)
            # The sampler already gives each process its share; accelerate's wrapper would split it again
            # (and pads uneven batches wrongly), so make it a passthrough, as Trainer does for its own
            # rank-aware BatchRebalanceSampler. Trainer calls set_epoch on the sampler each epoch.
            shard = getattr(loader, "batch_sampler", None)
            if shard is not None and getattr(shard, "batch_sampler", None) is sampler:
                shard.num_processes, shard.process_index = 1, 0
            return loader

        def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
            labels = inputs.get("labels")
            self.examples_seen += int(labels.shape[0]) if labels is not None else 0
            return super().training_step(model, inputs, num_items_in_batch)

    return BmcoreTrainer


# --- progress -------------------------------------------------------------------------------


def _make_callback(run_dir: Path, config: TrainConfig, precision: str) -> Any:
    from transformers import TrainerCallback

    class RunFolderCallback(TrainerCallback):
        """Writes progress to ``metrics.jsonl``, honours stop requests, and refuses NaN losses."""

        def __init__(self) -> None:
            self.t0 = time.time()
            self.last_t = self.t0
            self.last_step = 0
            self.last_tokens = 0
            self.last_examples = 0
            self.train_s = 0.0  # seconds spent in training steps, evaluations and checkpoint saves excluded
            self.mark = self.t0
            self.cancelled = False
            self.trainer: Any = None  # set after the Trainer is built; counts the examples of each step
            self.first_step_end: tuple[int, float] | None = None  # the ETA leaves out the first step's warm-up

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t0 = self.last_t = self.mark = time.time()
            self.last_step = state.global_step
            self.last_tokens = state.num_input_tokens_seen
            self.last_examples = self.examples(state, args)
            if state.is_world_process_zero:
                runs.write_status(run_dir, total_steps=state.max_steps, precision=precision, phase="training")

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            now = time.time()
            self.train_s += now - self.mark
            self.mark = now
            if self.first_step_end is None:
                self.first_step_end = (state.global_step, now)
            # Progress by time as well as by step: on a slow machine 10 steps can take minutes. Not under DDP,
            # where logging gathers across ranks and every rank must decide alike.
            if now - self.last_t >= PROGRESS_EVERY_S and world_size() == 1:
                control.should_log = True
            if state.global_step >= state.max_steps:
                control.should_log = True  # a last progress line: a finished run shows its final epoch and learning rate
            if runs.stop_requested(run_dir):
                self.cancelled = True
                control.should_training_stop = True
                control.should_save = True  # a checkpoint to resume from
            return control

        def on_evaluate(self, args, state, control, **kw):  # noqa: ANN001
            self.mark = time.time()

        def on_save(self, args, state, control, **kw):  # noqa: ANN001
            self.mark = time.time()

        def examples(self, state: Any = None, args: Any = None) -> int:
            """Examples trained on so far: counted by bmcore's trainer, else steps x the fixed batch."""
            if self.trainer is not None and hasattr(self.trainer, "examples_seen"):
                return self.trainer.examples_seen * max(world_size(), 1)
            if state is None or args is None:
                return 0
            return (state.global_step * args.per_device_train_batch_size * args.gradient_accumulation_steps
                    * max(args.world_size, 1))

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            logs = logs or {}
            loss = logs.get("loss")
            if loss is not None and not math.isfinite(loss):
                raise BmcoreError(f"the training loss became {loss} at step {state.global_step}; "
                                  "lower the learning rate or check the data")
            if not state.is_world_process_zero:
                return
            now = time.time()
            elapsed = now - self.t0
            if "eval_loss" in logs:
                rec = {"kind": "eval", "step": state.global_step, "epoch": round(state.epoch or 0, 4),
                       "elapsed_s": round(elapsed, 2), "train_s": round(self.train_s, 2), "examples": self.examples(state, args),
                       **{k: v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, (int, float))}}
                runs.append_metrics(run_dir, rec)
                return
            if loss is None:
                return
            dt = max(now - self.last_t, 1e-9)
            samples = self.examples(state, args) - self.last_examples
            tokens = state.num_input_tokens_seen - self.last_tokens
            rate = 0.0  # steps per second since the end of the first step; no ETA before two more steps
            if self.first_step_end is not None and state.global_step - self.first_step_end[0] >= 2:
                rate = (state.global_step - self.first_step_end[0]) / max(now - self.first_step_end[1], 1e-9)
            rec = {"kind": "train", "step": state.global_step, "total_steps": state.max_steps,
                   "epoch": round(state.epoch or 0, 4), "loss": loss, "learning_rate": logs.get("learning_rate"),
                   "grad_norm": logs.get("grad_norm"), "samples_per_s": round(samples / dt, 2),
                   "tokens_per_s": round(tokens / dt, 1), "elapsed_s": round(elapsed, 2),
                   "train_s": round(self.train_s, 2), "examples": self.examples(state, args), "tokens": state.num_input_tokens_seen,
                   "remaining_s": round((state.max_steps - state.global_step) / rate, 1) if rate > 0 else None}
            runs.append_metrics(run_dir, rec)
            log.info("step %d/%d loss %.4f lr %.2e %.1f samples/s", state.global_step, state.max_steps, loss,
                     logs.get("learning_rate") or 0, rec["samples_per_s"])
            self.last_t, self.last_step, self.last_tokens = now, state.global_step, state.num_input_tokens_seen
            self.last_examples = self.examples(state, args)

        resumed_from: int | None = None

    return RunFolderCallback()


# --- the job --------------------------------------------------------------------------------


def device_plan(config: TrainConfig, device: DeviceInfo) -> dict[str, Any]:
    """How a run uses ``device``: precision (with a notice when it fell back), attention kernel and Trainer's device flags.

    A pure function of the config and the device, so the CUDA path is tested on machines without a GPU.
    """
    precision, notice = select_precision(config.precision, device)
    attn = config.attn_implementation
    if attn == "auto":
        attn = "eager" if device.kind == "cpu" else "sdpa"
    return {"precision": precision, "notice": notice, "attn_implementation": attn,
            "bf16": precision == "bf16", "fp16": precision == "fp16", "use_cpu": device.kind == "cpu"}


def mean_examples_per_step(config: TrainConfig, lengths: list[int]) -> float:
    """Examples in an average training step for texts of these token ``lengths``.

    ``per_device_train_batch_size`` unless short texts ride in larger batches (``batch_growth``).
    The learning rate is not scaled to those batches: on SST-2 the square-root rule (about 2e-4 at
    ~124 examples a step) needed 36-38k examples to reach 0.88 dev accuracy, the unscaled 1e-4 with
    hidden dropout 0 needed 22-31k over two seeds (bench/NOTES.md).
    """
    if config.batch_growth <= 1 or not lengths:
        return float(config.per_device_train_batch_size)
    from .batching import TokenBudgetBatchSampler

    return TokenBudgetBatchSampler(lengths, config.per_device_train_batch_size, config.max_seq_length,
                                   config.batch_growth).mean_batch_size()


def loss_class_weights(mode: str, counts: Any) -> tuple[str, np.ndarray | None]:
    """The loss weight of each class for ``class_weights`` ``mode`` and the train split's class ``counts``.

    ``balanced`` is inverse frequency (n / (k x count)); ``sqrt`` its square root, a milder push towards
    rare classes; ``auto`` picks :data:`AUTO_WEIGHTS` when the largest class has at least :data:`AUTO_IMBALANCE`
    times the examples of the smallest, else none. Returns the mode used and the weights (None for none).
    """
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1)
    if mode == "auto":
        mode = AUTO_WEIGHTS if counts.max() / counts.min() >= AUTO_IMBALANCE else "none"
    if mode == "none":
        return mode, None
    balanced = counts.sum() / (len(counts) * counts)
    return mode, balanced if mode == "balanced" else np.sqrt(balanced)


def start_job(config: TrainConfig, run_dir: Path, main: bool) -> tuple[DeviceInfo, dict[str, Any], ModelRef]:
    """What every job (fine-tuning or pretraining) settles first: the device, its plan, and the base model.

    A precision fallback is logged and recorded in ``status.json``; a ``max_seq_length`` above the
    model's limit is refused.
    """
    device = detect_device()
    plan = device_plan(config, device)
    log.info("precision %s", device.reason_for(plan["precision"]))
    if plan["notice"]:
        log.warning(plan["notice"])
        if main:
            runs.write_status(run_dir, notice=plan["notice"])
    mref = resolve_model(config.model_name_or_path)
    check_max_seq_length(config.max_seq_length, mref)
    return device, plan, mref


def build_training_args(config: TrainConfig, run_dir: Path, precision: str, n_train: int) -> Any:
    """``TrainingArguments`` for a config: dynamic padding, length grouping, the chosen precision."""
    from transformers import TrainingArguments

    device = detect_device()
    steps = config.eval_strategy == "steps"
    best = config.metric_for_best_model
    kwargs: dict[str, Any] = dict(
        output_dir=str(run_dir),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler_type,
        seed=config.seed,
        eval_strategy=config.eval_strategy,
        save_strategy=config.eval_strategy,
        eval_steps=config.eval_steps if steps else None,
        save_steps=(config.save_steps or config.eval_steps) if steps else None,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        load_best_model_at_end=True,
        metric_for_best_model="loss" if best == "loss" else best,
        greater_is_better=best != "loss",
        save_total_limit=config.save_total_limit,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device_plan(config, device)["use_cpu"],
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="non_padding",
        report_to=[],
        disable_tqdm=True,
        logging_nan_inf_filter=False,  # the filter would log a NaN loss as a number and hide it from our NaN stop
        dataloader_num_workers=0,
        save_only_model=False,
    )
    if config.max_steps is not None:
        kwargs["max_steps"] = config.max_steps
    else:
        kwargs["num_train_epochs"] = config.epochs
    if steps and kwargs["save_steps"] != config.eval_steps:
        kwargs["load_best_model_at_end"] = False  # Trainer needs saves to line up with evaluations
    return TrainingArguments(**kwargs)


def _save_model_atomically(trainer: Any, tokenizer: Any, run_dir: Path, meta: dict[str, Any],
                           finish: Callable[[Path], None] | None = None) -> Path:
    """Save into a temporary folder, then swap it in: a crash mid-save leaves the previous ``model/`` intact.

    ``finish`` may complete the temporary folder before the swap (pretraining adds the base's pooler).
    """
    final = run_dir / runs.MODEL_DIR
    tmp = run_dir / f".{runs.MODEL_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_model_meta(tmp, **meta)
        if finish is not None:
            finish(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written copy must not fill the disk further
        raise
    old = run_dir / f".{runs.MODEL_DIR}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def run_training(run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Run the job of a run folder to the end and return its final status.

    Failures are recorded in ``status.json`` (``failed`` with a one-line error) and re-raised.
    """
    run_dir = Path(run_dir).resolve()
    main = rank() == 0
    _setup_logging(run_dir)
    config = runs.load_run_config(run_dir)
    lock = None
    if main:
        runs.write_status(run_dir, state=runs.QUEUED, pid=os.getpid())
        if world_size() == 1:
            lock = queue.wait_turn(run_dir)
            if lock is None:
                log.info("cancelled while queued")
                return runs.write_status(run_dir, state=runs.CANCELLED, ended=runs.now(), ended_ts=time.time())
        previous = runs.read_json(run_dir / runs.STATUS_FILE)
        started = {} if resume and previous.get("started_ts") else {"started": runs.now(), "started_ts": time.time()}
        runs.write_status(run_dir, state=runs.RUNNING, pid=os.getpid(), error=None, world_size=world_size(),
                          phase="loading the model and tokenizing the data",
                          **started, **({"resumed": runs.now()} if resume else {}))
    try:
        if getattr(config, "task", "classification") == "mlm":  # a pretraining run: same queue, status and callback
            from .pretrain import train_mlm

            status = train_mlm(run_dir, config, resume, main)  # type: ignore[arg-type]
        else:
            status = _train(run_dir, config, resume, main)
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


def _train(run_dir: Path, config: TrainConfig, resume: bool, main: bool) -> dict[str, Any]:
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback

    device, plan, mref = start_job(config, run_dir, main)
    precision = plan["precision"]
    ds = _load_dataset(config)
    check_training(len(ds.splits["train"]), config.max_steps,
                   config.per_device_train_batch_size * config.gradient_accumulation_steps * world_size())
    label_names = ds.label_names
    label2id = {n: i for i, n in enumerate(label_names)}
    tokenizer = load_tokenizer(mref)
    train_ds = tokenize_split(ds.splits["train"], tokenizer, config.max_seq_length, label2id)
    val_ds = tokenize_split(ds.splits["validation"], tokenizer, config.max_seq_length, label2id)
    test_ds = tokenize_split(ds.splits["test"], tokenizer, config.max_seq_length, label2id)
    log.info("device %s, precision %s; dataset %s: %d train / %d validation / %d test, %d classes",
             device.label, precision, ds.name, len(train_ds), len(val_ds), len(test_ds), len(label_names))
    model = load_classifier(mref, label_names, attn_implementation=plan["attn_implementation"],
                            **dropout_overrides(mref, config.attention_dropout, config.hidden_dropout))
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    mean_batch = mean_examples_per_step(config, train_ds["length"])
    if mean_batch > config.per_device_train_batch_size:
        log.info("short texts: %.0f examples per step on average (batch_growth %d)", mean_batch, config.batch_growth)
    if main:
        runs.write_status(run_dir, mean_examples_per_step=round(mean_batch, 1))
    args = build_training_args(config, run_dir, precision, len(train_ds))

    compute_loss = None
    counts = np.bincount(train_ds["labels"], minlength=len(label_names))
    mode, vector = loss_class_weights(config.class_weights, counts)
    if main:
        runs.write_status(run_dir, class_weights_used=mode)
    if vector is not None:
        weights = torch.tensor(vector, dtype=torch.float32)
        log.info("class weights (%s%s): %s", mode, ", chosen by auto" if config.class_weights == "auto" else "",
                 dict(zip(label_names, weights.round(decimals=3).tolist(), strict=True)))

        def compute_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
            logits = outputs["logits"].float()
            return torch.nn.functional.cross_entropy(logits, labels, weight=weights.to(logits.device))

    def compute_metrics(p: Any) -> dict[str, float]:
        m = classification_metrics(np.asarray(p.predictions), np.asarray(p.label_ids), label_names)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    callback = _make_callback(run_dir, config, precision)
    callbacks = [callback]
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
                               data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
                               compute_loss_func=compute_loss, callbacks=callbacks,
                               batch_growth=config.batch_growth, max_seq_length=config.max_seq_length)
    callback.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # our callback logs one readable line per step instead of dicts
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

    cancelled = callback.cancelled
    best = trainer.state.best_metric
    results: dict[str, Any] = {"label_names": label_names, "dataset": ds.name,
                               "best_checkpoint": trainer.state.best_model_checkpoint}
    if not cancelled:
        # Every rank takes part: prediction gathers across processes under DDP.
        for split, data in (("validation", val_ds), ("test", test_ds)):
            out = trainer.predict(data, metric_key_prefix=split)
            results[split] = classification_metrics(np.asarray(out.predictions), np.asarray(out.label_ids), label_names)
            results[split]["loss"] = float(out.metrics.get(f"{split}_loss", float("nan")))
    if not main:
        return {}
    meta = {"max_seq_length": config.max_seq_length, "dataset": ds.name, "label_names": label_names,
            "base_model": config.model_name_or_path, "run": run_dir.name, "precision": precision}
    _save_model_atomically(trainer, tokenizer, run_dir, meta)
    log.info("saved the %s model to %s", "best" if best is not None else "final", run_dir / runs.MODEL_DIR)
    if cancelled:
        return runs.write_status(run_dir, state=runs.CANCELLED, ended=runs.now(), ended_ts=time.time(),
                                 best_metric=best, best_metric_name=config.metric_for_best_model)
    model_dir = run_dir / runs.MODEL_DIR
    runs.write_status(run_dir, phase="scoring the test split")
    try:
        # The full evaluation: predictions, calibration (temperature saved with the model) and the baseline.
        from .evaluate import evaluate_model

        full = evaluate_model(model_dir, ds, "test", out_dir=run_dir / runs.EVALUATION_DIR / "test", save_temperature=True)
        base = full.metrics.get("baseline") or {}
        results["baseline"] = {"accuracy": base.get("accuracy"), "macro_f1": base.get("f1_macro")}
        results["temperature"] = full.metrics.get("temperature")
    except Exception as exc:  # the model and eval.json stand without it; say why in the log
        log.warning("the full test evaluation failed: %s", exc)
    runs.write_json_atomic(run_dir / runs.EVAL_FILE, results)
    log.info("test accuracy %.4f, macro F1 %.4f", results["test"]["accuracy"], results["test"]["macro_f1"])
    from .evaluate import missed_classes, missed_classes_note

    if note := missed_classes_note(missed_classes(results["test"]["confusion_matrix"], label_names)):
        log.warning(note)
    try:  # the model card (model/README.md): data, hyperparameters, test metrics; the run stands without it
        from .export import write_model_card

        write_model_card(run_dir)
    except Exception as exc:
        log.warning("the model card was not written: %s", exc)
    return runs.write_status(run_dir, state=runs.COMPLETED, ended=runs.now(), ended_ts=time.time(),
                             best_metric=best if best is not None else results["validation"][config.metric_for_best_model
                                                                                              if config.metric_for_best_model != "loss" else "loss"],
                             best_metric_name=config.metric_for_best_model,
                             test_accuracy=results["test"]["accuracy"], test_macro_f1=results["test"]["macro_f1"])
