"""How long will a run take? A short measured throughput probe on this machine, extrapolated.

The probe loads the run's model, takes one batch of real training texts padded the way the
collator pads them (to the longest in the batch), and times a few forward/backward/AdamW steps
under the precision the job would use (on a CPU, on a slice of that batch, scaled up). Evaluation passes are counted as forward-only work,
about a third of a training step per example.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from .config import TrainConfig

EVAL_COST = 1 / 3  # forward only: roughly a third of forward + backward + optimizer per example
CPU_PROBE_BATCH = 4  # examples timed per probe step on a CPU, where cost is linear in the batch


def steps_per_epoch(config: TrainConfig, n_train: int, world_size: int = 1, lengths: Sequence[int] | None = None) -> int:
    """Optimizer steps in one pass over ``n_train`` examples (at least 1).

    With the training texts' token ``lengths``, short texts are counted in the larger batches
    that ``batch_growth`` gives them (:mod:`bmcore.batching`); without, every batch holds
    ``per_device_train_batch_size`` examples.
    """
    if lengths is not None and config.batch_growth > 1:
        from .batching import TokenBudgetBatchSampler

        sampler = TokenBudgetBatchSampler(lengths, config.per_device_train_batch_size, config.max_seq_length, config.batch_growth)
        batches = math.ceil(len(sampler) / max(world_size, 1))
    else:
        batches = math.ceil(n_train / (config.per_device_train_batch_size * max(world_size, 1)))
    return max(1, math.ceil(batches / config.gradient_accumulation_steps))


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
               "eval_steps", "freeze_embeddings", "seed", "batch_growth", "hidden_dropout", "attention_dropout")


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


def _time_steps(model: Any, batch: dict[str, Any], optimizer: Any, dtype: Any, steps: int) -> float:
    """Seconds per forward/backward/optimizer step, after one untimed warm-up step."""
    import torch

    kind = batch["input_ids"].device.type

    def step() -> None:
        with torch.autocast(device_type=kind, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if kind == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: first-call allocations and kernel selection are not typical
    sync()
    t0 = time.perf_counter()
    for _ in range(max(1, steps)):
        step()
    sync()
    return (time.perf_counter() - t0) / max(1, steps)


def _columns(df: Any) -> tuple[list[str], ...]:
    return (df["text"].tolist(), df["text_pair"].tolist()) if "text_pair" in df else (df["text"].tolist(),)


def estimate_duration(config: TrainConfig, probe_steps: int = 3, world_size: int = 1) -> dict[str, Any]:
    """Measure a few training steps of ``config`` on this machine and extrapolate to the whole run.

    Returns ``seconds_per_step`` (one optimizer step, gradient accumulation included), ``total_steps``,
    ``estimated_seconds`` (training, evaluations, the final validation and test scoring, and model
    loading), ``samples_per_s`` and ``precision``, plus the parts the total is made of.
    """
    import torch

    from .data import resolve_dataset
    from .models import autocast_dtype, detect_device, load_classifier, load_tokenizer, select_precision, torch_device

    ds = resolve_dataset(config.dataset, text_columns=config.text_column, label_column=config.label_column,
                         seed=config.seed)
    train = ds.splits["train"]
    n_train, n_val, n_test = (len(ds.splits[s]) for s in ("train", "validation", "test"))
    device = detect_device()
    precision, _ = select_precision(config.precision, device)
    dtype = autocast_dtype(precision)
    dev = torch_device(device)

    t0 = time.perf_counter()
    tokenizer = load_tokenizer(config.model_name_or_path)
    model = load_classifier(config.model_name_or_path, ds.label_names).to(dev)
    load_seconds = time.perf_counter() - t0
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)

    # A random batch of real texts: its padded length is what an average training batch costs.
    batch_size = min(config.per_device_train_batch_size, n_train)
    sample = train.sample(batch_size, random_state=config.seed)
    texts = _columns(sample)
    padded_length = max(len(ids) for ids in tokenizer(*texts, truncation=True, max_length=config.max_seq_length)["input_ids"])
    # On a CPU, time grows linearly with the batch: time a slice of it (padded alike) to keep the probe short.
    probe_batch = batch_size if dev.type != "cpu" else min(batch_size, CPU_PROBE_BATCH)
    label2id = {n: i for i, n in enumerate(ds.label_names)}
    batch = tokenizer(*(t[:probe_batch] for t in texts), truncation=True, max_length=padded_length,
                      padding="max_length", return_tensors="pt")
    batch["labels"] = torch.tensor([label2id[str(v)] for v in sample["label"].iloc[:probe_batch]])
    batch = {k: v.to(dev) for k, v in batch.items()}

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=config.weight_decay)

    per_batch = _time_steps(model, batch, optimizer, dtype, probe_steps) * batch_size / probe_batch
    del model, optimizer, batch  # free the memory before returning to a long-lived UI process
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    # Every training text's length decides how many examples each step holds (batch_growth).
    lengths = [len(ids) for ids in tokenizer(*_columns(train), truncation=True, max_length=config.max_seq_length)["input_ids"]]
    steps = total_steps(config, n_train, world_size, lengths)
    per_example = per_batch / batch_size
    examples_per_step = n_train / (steps_per_epoch(config, n_train, world_size, lengths) * config.gradient_accumulation_steps
                                   * max(world_size, 1))
    seconds_per_step = per_example * examples_per_step * config.gradient_accumulation_steps
    evaluations = count_evaluations(config, n_train, world_size, lengths)
    # Each evaluation reads the validation split; the end scores validation and test once more.
    eval_seconds = (evaluations * n_val + n_val + n_test) * per_example * EVAL_COST / max(world_size, 1)
    train_seconds = steps * seconds_per_step
    # On a CPU the probe's per-example cost is that of a full-length batch: short texts in larger, length-grouped
    # batches cost less, so this errs long.
    return {
        "seconds_per_step": seconds_per_step,
        "total_steps": steps,
        "estimated_seconds": train_seconds + eval_seconds + load_seconds,
        "samples_per_s": max(world_size, 1) / per_example,
        "precision": precision,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "load_seconds": load_seconds,
        "evaluations": evaluations,
        "n_train": n_train,
        "padded_length": padded_length,
    }
