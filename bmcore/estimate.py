"""How long will a run take? A measured probe on this machine, extrapolated.

The probe loads the run's model as the job would (precision, attention kernel, dropout), takes real
training batches in the order the job's sampler draws them (token-budget batches of short texts
included, padded as the collator pads; images decoded, augmented and resized to the run's image size), and times whole optimizer steps (forward, backward, gradient
clipping, the Trainer's default fused AdamW) past a warm-up, for a few seconds. The median step, times
the run's steps, is the training time; the spread of the steps gives a likely range. A few validation
batches, longest first as Trainer groups them, are then timed forward only (evaluation's own cost per
example: on a tiny or small model fixed costs make it far more than a third of a training example), for
each validation pass during training, then validation and test once more and the test split again in the
full evaluation after it. The job itself then corrects the figure from its own measured speed (the ETA of
its progress lines, which counts the evaluations and the scoring after training too).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .batching import TokenBudgetBatchSampler
from .config import TrainConfig
from .data.resolve import resolve_dataset
from .device import autocast_dtype, detect_device, torch_device
from .models import resolve_model
from .schedule import resolve_schedule, steps_per_epoch
from .train import task_for_config
from .trainer import EVAL_COST, build_training_args, device_plan, passes_after_training
from .vision import is_convolutional

PROBE_WARMUP_STEPS = 2  # untimed: first-call allocations, kernel selection, the optimizer's state
PROBE_MIN_STEPS = 3  # timed steps at least...
PROBE_MIN_S = 4.0  # ...and seconds at least, so one slow or fast step does not decide
PROBE_MAX_STEPS = 40
PROBE_MAX_S = 40.0  # a probe on a very slow machine stops here and extrapolates from what it has
EVAL_PROBE_BATCHES = 3  # evaluation batches timed after one untimed: forward passes as the job's evaluations run them


def total_steps(config: TrainConfig, n_train: int, world_size: int = 1, lengths: Sequence[int] | None = None) -> int:
    """Optimizer steps of the whole run: ``max_steps``, or epochs x steps per epoch."""
    if config.max_steps is not None:
        return int(config.max_steps)
    return max(1, math.ceil(config.epochs * steps_per_epoch(config, n_train, world_size, lengths)))


def count_evaluations(config: TrainConfig, n_train: int, world_size: int = 1, lengths: Sequence[int] | None = None) -> int:
    """Validation passes during training (each epoch, or every ``eval_steps`` steps)."""
    steps = total_steps(config, n_train, world_size, lengths)
    if config.eval_strategy == "steps":
        return steps // int(config.eval_steps or steps)
    return max(1, math.ceil(steps / steps_per_epoch(config, n_train, world_size, lengths)))


COST_FIELDS = ("model_name_or_path", "dataset", "max_seq_length", "num_train_epochs", "max_steps",
               "per_device_train_batch_size", "gradient_accumulation_steps", "precision", "eval_strategy",
               "eval_steps", "freeze_embeddings", "seed", "batch_growth", "hidden_dropout", "attention_dropout", "image_size",
               "augment")


def estimate_key(config: TrainConfig, data_version: Any = None) -> str:
    """What an estimate depends on: the settings that change the cost of a run, and the data's version."""
    return repr([getattr(config, f, None) for f in COST_FIELDS] + [data_version])


def format_duration(seconds: float | None) -> str:
    """A short human duration: ``45 s``, ``3 min 20 s``, ``1 h 05 min``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _probe_batches(config: TrainConfig, lengths: list[int], n: int, grow: bool = True) -> list[list[int]]:
    """The first ``n`` batches (index lists) in the order the job's sampler draws them (``grow``: token-budget
    batches of short texts when ``batch_growth`` asks for them; images are drawn at random, a fixed batch size)."""
    import random

    if config.batch_growth > 1 and grow:
        batches = list(TokenBudgetBatchSampler(lengths, config.per_device_train_batch_size, config.max_seq_length,
                                               config.batch_growth, seed=config.seed))
    else:
        order = list(range(len(lengths)))
        random.Random(config.seed).shuffle(order)
        size = config.per_device_train_batch_size
        batches = [order[i:i + size] for i in range(0, len(order), size)]
    return batches[:n]


def _time_steps(model: Any, batches: list[dict[str, Any]], optimizer: Any, dtype: Any, accumulation: int,
                device_type: str, min_steps: int) -> list[float]:
    """Seconds of each timed optimizer step (``accumulation`` batches each), after the warm-up steps."""
    import torch

    def step(k: int) -> None:
        for j in range(accumulation):
            batch = batches[(k * accumulation + j) % len(batches)]
            with torch.autocast(device_type=device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = model(**batch).loss / accumulation
            loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device_type == "cuda":
            torch.cuda.synchronize()

    for k in range(PROBE_WARMUP_STEPS):
        step(k)
    times: list[float] = []
    k = PROBE_WARMUP_STEPS
    while len(times) < PROBE_MAX_STEPS and sum(times) < PROBE_MAX_S and (len(times) < min_steps or sum(times) < PROBE_MIN_S):
        t0 = time.perf_counter()
        step(k)
        times.append(time.perf_counter() - t0)
        k += 1
    return times


def _eval_batches(n: int, size: int, lengths: Sequence[int] | None, seed: int) -> list[list[int]]:
    """Validation batches (index lists) for the evaluation probe: a seeded sample, longest first as Trainer groups
    evaluation batches by length (texts; ``lengths`` None for images); at least two, the first untimed."""
    import random

    order = list(range(n))
    random.Random(seed).shuffle(order)
    order = order[: (EVAL_PROBE_BATCHES + 1) * size]
    if lengths is not None:
        order.sort(key=lambda i: -lengths[i])
    batches = [order[i:i + size] for i in range(0, len(order), size)]
    return batches if len(batches) > 1 else batches * 2


def _time_eval(model: Any, batches: list[dict[str, Any]], dtype: Any, device_type: str) -> float | None:
    """Seconds per example of evaluation: forward passes without gradients (the loss included, as Trainer computes
    it), the first batch untimed. None without batches."""
    import torch

    if not batches:
        return None
    model.eval()
    seconds, examples = 0.0, 0
    with torch.no_grad():
        for k, batch in enumerate(batches):
            t0 = time.perf_counter()
            with torch.autocast(device_type=device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
                model(**batch)
            if device_type == "cuda":
                torch.cuda.synchronize()
            if k:
                seconds += time.perf_counter() - t0
                examples += len(batch["labels"])
    return seconds / max(examples, 1)


def estimate_duration(config: TrainConfig, probe_steps: int = PROBE_MIN_STEPS, world_size: int = 1) -> dict[str, Any]:
    """Measure training steps of ``config`` on this machine and extrapolate to the whole run.

    Returns ``seconds_per_step`` (the median optimizer step, gradient accumulation included),
    ``total_steps``, ``estimated_seconds`` with ``low_seconds``/``high_seconds`` (the likely range from
    the spread of the timed steps), ``samples_per_s``, ``precision``, ``probe_steps`` and ``probe_seconds``,
    ``busy`` (the machine was loaded while timing, so the figure errs long), and the parts of the total
    (``eval_seconds`` from ``eval_seconds_per_example``, timed on validation batches).
    """
    import torch

    probe = load_probe(config, world_size)
    config, dev = probe.config, probe.device
    wanted = (PROBE_WARMUP_STEPS + PROBE_MAX_STEPS) * config.gradient_accumulation_steps
    index_batches = _probe_batches(config, probe.lengths or [0] * probe.n_train, wanted, grow=probe.task.grows_batches)
    timing = time_probe(probe, index_batches, probe_steps)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    timed = [index_batches[(k * config.gradient_accumulation_steps + j) % len(index_batches)]
             for k in range(PROBE_WARMUP_STEPS, PROBE_WARMUP_STEPS + len(timing["times"]))
             for j in range(config.gradient_accumulation_steps)]
    return extrapolate(probe, timing, sum(len(b) for b in timed) / len(timing["times"]), world_size)


@dataclass
class Probe:
    """What the timing needs: the run's resolved config, task, model on its device, and the split items to batch."""

    config: TrainConfig
    task: Any
    device: Any
    precision: str
    model: Any
    load_seconds: float
    collate: Any
    train_items: Any
    val_items: Any
    lengths: list[int] | None
    val_lengths: list[int] | None
    n_train: int
    n_val: int
    n_test: int


def load_probe(config: TrainConfig, world_size: int) -> Probe:
    """The run as its job would start it: the dataset, the small-data schedule, and the task's processor, model and
    encoded splits (the task's targets, as training feeds them)."""
    ds = resolve_dataset(config.dataset, text_columns=config.text_column, label_column=config.label_column,
                         label_columns=config.label_columns, label_delimiter=config.label_delimiter, seed=config.seed)
    train, val = ds.splits["train"], ds.splits["validation"]
    device = detect_device()
    t0 = time.perf_counter()
    mref = resolve_model(config.model_name_or_path)
    plan = device_plan(config, device, convolutional=is_convolutional(mref))
    dev = torch_device(device)
    task = task_for_config(config, ds)
    config = resolve_schedule(config, len(train), task.min_train_steps, world_size,
                              grows=task.grows_batches).apply(config)  # as the job resolves it
    label_names = task.label_names(ds)
    processor = task.load_processor(mref, config, ds)
    model = task.load_model(mref, label_names, config, plan).to(dev)
    load_seconds = time.perf_counter() - t0
    items = task.encode_split(train, processor, config, task.targets(train, label_names), train=True)
    val_items = task.encode_split(val, processor, config, task.targets(val, label_names), train=False) if len(val) else []
    return Probe(config, task, dev, plan["precision"], model, load_seconds, task.collator(processor), items, val_items,
                 _lengths(items), _lengths(val_items), len(train), len(val), len(ds.splits["test"]))


def _lengths(items: Any) -> list[int] | None:
    """Token lengths of encoded text items (a ``length`` column); None for images, which batch by count."""
    return list(items["length"]) if "length" in (getattr(items, "column_names", None) or ()) else None


def _features(items: Any, rows: list[int]) -> list[dict[str, Any]]:
    """The model inputs of ``rows`` (the ``length`` column, for grouping batches, is no model input)."""
    return [{k: v for k, v in items[i].items() if k != "length"} for i in rows]


def time_probe(probe: Probe, index_batches: list[list[int]], probe_steps: int) -> dict[str, Any]:
    """Time optimizer steps on ``index_batches`` and forward passes on validation batches; the machine's load before
    and after (a loaded machine makes the figure err long). Frees the model afterwards."""
    import os

    from transformers import Trainer

    config, dev, model = probe.config, probe.device, probe.model
    batches = [{k: v.to(dev) for k, v in probe.collate(_features(probe.train_items, b)).items()} for b in index_batches]
    model.train()
    args = build_training_args(config, "/nonexistent-estimate", probe.precision, probe.n_train)
    optim_cls, optim_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer = optim_cls([p for p in model.parameters() if p.requires_grad], **optim_kwargs)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    times = _time_steps(model, batches, optimizer, autocast_dtype(probe.precision), config.gradient_accumulation_steps,
                        dev.type, probe_steps)
    eval_index = _eval_batches(probe.n_val, config.per_device_eval_batch_size, probe.val_lengths, config.seed) if probe.n_val else []
    eval_batches = [{k: v.to(dev) for k, v in probe.collate(_features(probe.val_items, b)).items()} for b in eval_index]
    eval_per_example = _time_eval(model, eval_batches, autocast_dtype(probe.precision), dev.type)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    probe.model = None  # free the memory before the process ends or the next job
    del model, optimizer, batches, eval_batches
    return {"times": times, "eval_per_example": eval_per_example, "load": max(load_before, load_after)}


def extrapolate(probe: Probe, timing: dict[str, Any], examples_per_step: float, world_size: int) -> dict[str, Any]:
    """The whole run's time from the timed steps: its steps, its evaluations and the scoring after training."""
    import os
    import statistics

    import numpy as np

    config, times = probe.config, timing["times"]
    steps = total_steps(config, probe.n_train, world_size, probe.lengths)
    seconds_per_step = statistics.median(times)
    low_step, high_step = (float(np.percentile(times, q)) for q in (10, 90))
    per_example = seconds_per_step / examples_per_step
    evaluations = count_evaluations(config, probe.n_train, world_size, probe.lengths)
    eval_per_example = timing["eval_per_example"]
    if eval_per_example is None:  # no validation rows to time: forward only, about a third of a training example
        eval_per_example = per_example * EVAL_COST
    # Each evaluation reads the validation split; after training the job scores validation and test, then the test
    # split again in the full evaluation.
    eval_seconds = (evaluations + passes_after_training(probe.n_val, probe.n_test)) * probe.n_val * eval_per_example \
        / max(world_size, 1)
    train_seconds = steps * seconds_per_step
    fixed = eval_seconds + probe.load_seconds
    cores = os.cpu_count() or 1
    return {
        "seconds_per_step": seconds_per_step, "total_steps": steps, "estimated_seconds": train_seconds + fixed,
        "low_seconds": steps * low_step + fixed, "high_seconds": steps * high_step + fixed,
        "samples_per_s": max(world_size, 1) * examples_per_step / seconds_per_step,
        "examples_per_step": examples_per_step, "precision": probe.precision, "train_seconds": train_seconds,
        "eval_seconds": eval_seconds, "eval_seconds_per_example": eval_per_example, "load_seconds": probe.load_seconds,
        "evaluations": evaluations, "n_train": probe.n_train, "probe_steps": len(times), "probe_seconds": sum(times),
        "busy": probe.device.type == "cpu" and timing["load"] > cores + 0.5, "load": round(timing["load"], 2),
        "cores": cores,
    }


# --- a search's trials (bmcore.tune) ---------------------------------------------------------------

OVERHEAD_S = 20.0  # a run's start (a new Python process, imports) and end (saving), which the probe does not time


class CostModel:
    """A trial's predicted seconds, from the run's own timing probe: one probe per model and batch shape, giving
    seconds per training example and per validation example (one probe per model); epochs scale it. Then calibrated by the trials this
    driver ran: the median ratio of their real seconds to the prediction (the probe times a few steps on a quiet
    device; other jobs, evaluation and start-up are what it misses)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds
        self.cache: dict[tuple, dict[str, float]] = {}
        self.ratios: list[float] = []

    def key(self, config: TrainConfig) -> tuple:
        # One probe per model and input shape: the cost of an example hardly depends on the batch it rides in, and a
        # probe costs a model load and a dozen steps (the calibration below corrects what this misses).
        return (config.model_name_or_path, config.max_seq_length, config.image_size, config.augment, config.precision)

    def resolved(self, config: TrainConfig) -> TrainConfig:
        task = task_for_config(config, self.ds)
        return resolve_schedule(config, len(self.ds.splits["train"]), task.min_train_steps,
                                grows=task.grows_batches).apply(config)

    def predict(self, config: TrainConfig) -> float:
        config = self.resolved(config)
        key = self.key(config)
        if key not in self.cache:
            est = estimate_duration(config)
            self.cache[key] = {"train_per_example": est["train_seconds"] / max(1.0, est["total_steps"] * est["examples_per_step"]),
                               "eval_per_example": est["eval_seconds_per_example"], "load": est["load_seconds"]}
        c = self.cache[key]
        n_train, n_val = len(self.ds.splits["train"]), len(self.ds.splits["validation"])
        epochs = config.epochs if config.max_steps is None else config.max_steps * config.per_device_train_batch_size / n_train
        evaluations = math.ceil(epochs) + 1  # one per epoch, then validation scored with the final model
        seconds = n_train * epochs * c["train_per_example"] + evaluations * n_val * c["eval_per_example"] + c["load"]
        return (seconds + OVERHEAD_S) * (statistics.median(self.ratios) if self.ratios else 1.0)

    def learn(self, predicted: float, actual: float, fraction: float) -> None:
        """A trial ran ``fraction`` of its schedule in ``actual`` seconds against ``predicted`` for all of it."""
        if fraction >= 0.2 and predicted > 0:
            self.ratios.append(min(20.0, max(0.05, actual / (predicted * fraction))))
