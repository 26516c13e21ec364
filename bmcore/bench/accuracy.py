"""Time to accuracy: training seconds until SST-2 dev accuracy reaches a target (or one epoch), ``trainer-best``
against ``bmcore``, each with its own defaults, side by side for each seed.

Both sides score SST-2 dev about every 2,000 examples; evaluation time is not counted. bmcore's job is stopped
through the UI's own cancel, as a user would.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .. import runs
from ..config import TrainConfig
from ..data import Columns, PreparedDataset, save_prepared
from ..device import detect_device
from ..models import DEFAULT_MODEL, load_tokenizer, resolve_model
from ..train import run_training
from ..trainer import mean_examples_per_step
from .measure import BATCH, quiet_transformers, training_log_at
from .texts import sst2_splits

TARGET_ACCURACY = 0.88
EVAL_EVERY_EXAMPLES = 2000  # both recipes score SST-2 dev about this often; evaluation time is not counted
TTA_SEEDS = (42, 7, 1)  # one setting's crossing point moves by up to ~28k examples between seeds: the median is reported


def _eval_every(train: Any) -> float:
    """Examples between dev scores: EVAL_EVERY_EXAMPLES, or a quarter epoch of a smaller training set."""
    return min(EVAL_EVERY_EXAMPLES, len(train) / 4)


def _tta_trainer_best(model_dir: str, train: Any, dev: Any, target: float, workdir: Path, seed: int = 42) -> dict[str, Any]:
    """``Trainer`` with its default hyperparameters plus the best precision here and length grouping; stops at
    ``target`` or one epoch."""
    import datasets
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    names = sorted(set(train["label"].astype(str)))
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(names))

    def encode(df: Any) -> Any:
        enc = tok(df["text"].astype(str).tolist(), truncation=True, max_length=128)
        return datasets.Dataset.from_dict({**enc, "labels": [names.index(str(v)) for v in df["label"]]})

    curve: list[dict[str, float]] = []

    class Clock(TrainerCallback):
        """Training seconds only (evaluations excluded), and the stop at the target or after one epoch."""

        def __init__(self) -> None:
            self.train_s, self.mark = 0.0, time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            now = time.perf_counter()
            self.train_s, self.mark = self.train_s + now - self.mark, now
            if state.epoch is not None and state.epoch >= 1:
                control.should_evaluate = True  # one last score at the end of the epoch
                control.should_training_stop = True

        def on_evaluate(self, args, state, control, metrics=None, **kw):  # noqa: ANN001
            acc = float((metrics or {}).get("eval_accuracy", 0))
            curve.append({"examples": state.global_step * BATCH, "train_s": self.train_s, "accuracy": acc})
            if acc >= target:
                control.should_training_stop = True
            self.mark = time.perf_counter()

    args = TrainingArguments(output_dir=str(workdir / "tta-trainer-best"), per_device_train_batch_size=BATCH,
                             per_device_eval_batch_size=64, eval_strategy="steps",
                             eval_steps=max(1, int(_eval_every(train) // BATCH)), save_strategy="no", logging_strategy="no",
                             report_to=[], disable_tqdm=True, use_cpu=detect_device().kind == "cpu",
                             bf16=detect_device().precision == "bf16", fp16=detect_device().precision == "fp16",
                             train_sampling_strategy="group_by_length",
                             dataloader_num_workers=0, seed=seed)
    trainer = Trainer(model=model, args=args, train_dataset=encode(train), eval_dataset=encode(dev),
                      data_collator=DataCollatorWithPadding(tok), processing_class=tok, callbacks=[Clock()],
                      compute_metrics=lambda p: {"accuracy": float((np.asarray(p.predictions).argmax(-1) == p.label_ids).mean())})
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return _tta_result(curve, target)


def _tta_bmcore(train: Any, dev: Any, target: float, workdir: Path, **overrides: Any) -> dict[str, Any]:
    """bmcore's job with its defaults (or ``overrides``) on SST-2 train, scored on dev; stopped through the UI's own cancel."""
    os.environ["BMCORE_WORKSPACE"] = str(workdir / "ws-tta")
    train = pd.DataFrame({"text": train["text"].astype(str), "label": train["label"].astype(str)})
    dev = pd.DataFrame({"text": dev["text"].astype(str), "label": dev["label"].astype(str)})
    names = sorted(set(train["label"]))
    save_prepared(PreparedDataset("sst2-tta", "sst2-tta", Columns(["text"], "label"), names,
                                  {"train": train, "validation": dev, "test": dev}), overwrite=True)  # scratch workspace
    defaults = TrainConfig(**overrides)
    lengths = [len(x) for x in load_tokenizer(defaults.model_name_or_path)(train["text"].tolist(), truncation=True,
                                                                         max_length=defaults.max_seq_length)["input_ids"]]
    per_step = mean_examples_per_step(defaults, lengths)  # as the job computes it
    config = TrainConfig(**{**overrides, "dataset": "sst2-tta", "eval_strategy": "steps",
                            "eval_steps": max(1, round(_eval_every(train) / per_step))})
    run_dir = runs.create_run(config, f"tta-{time.time_ns()}")
    done = threading.Event()

    def watch() -> None:  # stops the job at the target, or after one epoch, as a user pressing Cancel would
        while not done.wait(0.5):
            evals = [m for m in runs.read_metrics(run_dir) if m.get("kind") == "eval"]
            if any(m.get("eval_accuracy", 0) >= target or m.get("epoch", 0) >= 1 for m in evals):
                runs.request_stop(run_dir)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run_training(run_dir)
    finally:
        done.set()
    curve = [{"examples": m["examples"], "train_s": m["train_s"], "accuracy": m["eval_accuracy"]}
             for m in runs.read_metrics(run_dir) if m.get("kind") == "eval"]
    return _tta_result(curve, target)


def _tta_result(curve: list[dict[str, float]], target: float) -> dict[str, Any]:
    hit = next((c for c in curve if c["accuracy"] >= target), None)
    last = hit or curve[-1]
    return {"seconds": last["train_s"], "accuracy": last["accuracy"], "examples": last["examples"],
            "reached": hit is not None, "curve": curve}


@training_log_at(logging.WARNING)

def bench_time_to_accuracy(model: str = DEFAULT_MODEL, target: float = TARGET_ACCURACY, seeds: tuple[int, ...] = TTA_SEEDS,
                           log: Callable[[str], None] = print, data: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Seconds of training until SST-2 dev accuracy reaches ``target`` (or one epoch): ``trainer-best`` against
    ``bmcore``, side by side for each seed; the speedup reported is the median of the per-seed ratios. ``data``
    (train, dev) replaces SST-2."""
    train, dev = data if data is not None else sst2_splits()
    log(f"\ntime to {target:.2f} SST-2 dev accuracy (or one epoch; training seconds, evaluations not counted), "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    out: dict[str, Any] = {"target": target, "seeds": list(seeds), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            row: dict[str, Any] = {"seed": seed}
            for recipe in ("trainer-best", "bmcore"):
                quiet_transformers()
                if recipe == "bmcore":
                    res = _tta_bmcore(train, dev, target, Path(tmp), model_name_or_path=model, seed=seed)
                else:
                    res = _tta_trainer_best(str(resolve_model(model).location), train, dev, target, Path(tmp), seed=seed)
                row[recipe] = res
                log(f"seed {seed:<4}{recipe:<14}{res['seconds']:>8.0f} s  dev accuracy {res['accuracy']:.4f} after "
                    f"{res['examples']} examples{'' if res['reached'] else ' (target not reached in one epoch)'}")
            row["speedup"] = row["trainer-best"]["seconds"] / max(row["bmcore"]["seconds"], 1e-9)
            out["runs"].append(row)
    ratios = [r["speedup"] for r in out["runs"]]
    for recipe in ("trainer-best", "bmcore"):  # the median run of each recipe, for the summary line
        ordered = sorted((r[recipe] for r in out["runs"]), key=lambda res: res["seconds"])
        out[recipe] = ordered[len(ordered) // 2]
    out["speedup"] = statistics.median(ratios)
    spread = f", the median of {len(ratios)} seeds (per seed {', '.join(f'{r:.2f}x' for r in ratios)})" if len(ratios) > 1 else ""
    log(f"bmcore reaches it {out['speedup']:.2f}x faster{spread}")
    return out
