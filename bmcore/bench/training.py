"""Training speed: four recipes on the same model, texts, batch size and timed steps, side by side.

* ``seed``: the classic tutorial loop (pad to max_length, fp32, plain AdamW);
* ``trainer``: ``transformers.Trainer`` with ``DataCollatorWithPadding``, fp32;
* ``trainer-best``: the same with the machine's fast precision and length grouping;
* ``bmcore``: bmcore's own training job with its defaults, as the Train page runs it.

On short texts (SST-2 sentences) and long ones (BBC News articles at 256 tokens): samples/s, real tokens/s,
MFU over the matmul peak of each recipe's precision, and peak resident memory.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .. import runs
from ..config import TrainConfig
from ..data import Columns, PreparedDataset, save_prepared
from ..device import detect_device
from ..models import DEFAULT_MODEL, load_config, load_tokenizer, resolve_model
from ..train import run_training
from .measure import BATCH, PeakRSS, quiet_transformers, training_log_at
from .peak import machine_peak, train_flops_per_token
from .texts import bench_texts

RECIPES = ("seed", "trainer", "trainer-best", "bmcore")


def _recipe_seed(model_dir: str, texts: list[str], ids: list[int], labels: int, max_len: int, warmup: int, steps: int) -> float:
    """The classic tutorial loop: pad everything to max_length, fp32, plain AdamW, shuffled batches. Returns seconds for ``steps``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=labels)
    enc = tok(texts, padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
    y = torch.tensor(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0))
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        idx = order[(step * BATCH) % len(texts):][:BATCH]
        out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx], labels=y[idx])
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - t0


def _recipe_trainer(model_dir: str, texts: list[str], ids: list[int], labels: int, max_len: int, warmup: int, steps: int,
                    best: bool, workdir: Path) -> float:
    """``transformers.Trainer`` with ``DataCollatorWithPadding``: fp32 (``trainer``), or the best precision this
    machine has (bf16 only where it is fast) + length grouping (``trainer-best``)."""
    import datasets
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=labels)
    enc = tok(texts, truncation=True, max_length=max_len)
    ds = datasets.Dataset.from_dict({**enc, "labels": ids})
    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            marks[state.global_step] = time.perf_counter()

    args = TrainingArguments(output_dir=str(workdir / ("best" if best else "plain")), per_device_train_batch_size=BATCH,
                             max_steps=warmup + steps, learning_rate=5e-5, report_to=[], disable_tqdm=True,
                             save_strategy="no", logging_strategy="no", use_cpu=detect_device().kind == "cpu",
                             bf16=best and detect_device().precision == "bf16",
                             fp16=best and detect_device().precision == "fp16",
                             train_sampling_strategy="group_by_length" if best else "random", dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok),
                      processing_class=tok, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # keeps the table readable; it prints nothing per step here anyway
    trainer.train()
    return marks[warmup + steps] - marks[warmup]


def _recipe_bmcore(texts: list[str], gold: list[str], max_len: int, warmup: int, steps: int,
                   workdir: Path) -> tuple[float, int, int]:
    """bmcore's own training job with its defaults, as the Train page runs it (``run_training`` on a run folder).

    Returns the seconds of the timed steps, and the examples and real (non-padding) tokens they trained on.
    """
    os.environ["BMCORE_WORKSPACE"] = str(workdir / "ws")
    df = pd.DataFrame({"text": texts, "label": gold})
    names = sorted(set(gold))
    small = df.groupby("label", group_keys=False).head(4)  # validation/test: a token few, the job scores them once
    ds = PreparedDataset("bench", "bench", Columns(["text"], "label"), names,
                         {"train": df, "validation": small, "test": small})
    save_prepared(ds, overwrite=True)  # the bench's own scratch workspace: its earlier runs are done with it
    config = TrainConfig(dataset="bench", max_steps=warmup + steps, max_seq_length=max_len, logging_steps=1,
                         eval_strategy="steps", eval_steps=10**6)
    run_dir = runs.create_run(config, f"bench-{max_len}-{time.time_ns()}")
    run_training(run_dir)
    lines = {m["step"]: m for m in runs.read_metrics(run_dir) if m.get("kind") == "train"}
    first, last = lines[warmup], lines[warmup + steps]
    # Token-budget batches (batch_growth) hold more than 32 short texts: count the examples really trained on.
    return last["train_s"] - first["train_s"], last["examples"] - first["examples"], last["tokens"] - first["tokens"]


@training_log_at(logging.WARNING)

def bench_training(kinds: tuple[str, ...] = ("short", "long"), quick: bool = False, model: str = DEFAULT_MODEL,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train with the four recipes on each kind of text; samples/s, real tokens/s, MFU, peak RSS and ratios."""
    warmup, steps = (2, 6) if quick else (3, 20)
    device = detect_device()
    measured = machine_peak(device, log)
    peak = {p: m["flops"] for p, m in measured.items()}
    mref = resolve_model(model)
    cfg = load_config(mref)
    tok = load_tokenizer(mref)
    results: dict[str, Any] = {"peak_flops": peak, "peak": measured, "precision": device.precision,
                               "warmup_steps": warmup, "timed_steps": steps}
    for kind in kinds:
        # Enough texts for bmcore's larger batches of short texts (up to batch_growth x 32), twice over.
        texts, gold, max_len, where = bench_texts(kind, (warmup + steps) * BATCH * TrainConfig().batch_growth * 2)
        names = sorted(set(gold))
        ids = [names.index(g) for g in gold]
        real = [min(len(x), max_len) for x in tok(texts, truncation=False, verbose=False)["input_ids"]]
        mean_tokens = sum(real) / len(real)
        log(f"\n{kind} texts: {where}, max_seq_length {max_len}, {mean_tokens:.1f} real tokens per text on average")
        log(f"{'recipe':<14}{'precision':>10}{'batch':>6}{'samples/s':>10}{'tokens/s':>10}{'MFU':>7}{'peak RSS':>10}"
            "   (MFU: over the matmul peak of the recipe's own precision)")
        rows: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for recipe in RECIPES:
                quiet_transformers()
                with PeakRSS() as rss:
                    if recipe == "seed":
                        secs = _recipe_seed(str(mref.location), texts, ids, len(names), max_len, warmup, steps)
                    elif recipe in ("trainer", "trainer-best"):
                        secs = _recipe_trainer(str(mref.location), texts, ids, len(names), max_len, warmup, steps,
                                               recipe == "trainer-best", work)
                    else:
                        secs, examples, tokens = _recipe_bmcore(texts, gold, max_len, warmup, steps, work)
                batch = examples / steps if recipe == "bmcore" else BATCH
                prec = "fp32" if recipe in ("seed", "trainer") else device.precision  # the best this machine has
                if recipe == "bmcore":
                    # Length-sorted batches make a short window of steps uneven (a run of short-text batches would
                    # flatter samples/s): count its real tokens, and state samples/s at the sample's mean length.
                    tps, tokens_per_text = tokens / secs, tokens / examples
                    sps = tps / mean_tokens
                else:  # batches drawn at random: the sample's mean length
                    sps = steps * batch / secs
                    tps, tokens_per_text = sps * mean_tokens, mean_tokens
                mfu = tps * train_flops_per_token(cfg, tokens_per_text) / peak[prec]
                rows[recipe] = {"samples_per_s": sps, "tokens_per_s": tps, "mfu": mfu, "peak_rss_mb": rss.peak_mb,
                                "precision": prec, "examples_per_step": batch}
                log(f"{recipe:<14}{prec:>10}{batch:>6.0f}{sps:>10.1f}{tps:>10.0f}{mfu:>7.1%}{rss.peak_mb:>9.0f}M")
        ours = rows["bmcore"]["samples_per_s"]
        log("bmcore vs " + ", ".join(f"{r}: {ours / rows[r]['samples_per_s']:.2f}x" for r in RECIPES if r != "bmcore"))
        results[kind] = rows
    return results
