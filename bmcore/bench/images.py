"""Image training speed: bmcore's job against Hugging Face's plain ``Trainer`` recipe for image classification,
EfficientNet-Lite0 on Fashion-MNIST at 64 px (Debian's dataset-fashion-mnist package); samples/s and peak memory.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from .. import runs
from ..config import TrainConfig
from ..data import Columns, PreparedDataset, save_prepared
from ..device import detect_device
from ..images.fashion_mnist import read_fashion_mnist
from ..modalities.image import processor_for_size
from ..models import resolve_model
from ..train import run_training
from .measure import BATCH, PeakRSS, quiet_transformers, training_log_at

IMAGE_RECIPES = ("trainer", "trainer-best", "bmcore")
IMAGE_SIZE = 64  # both sides train at bmcore's automatic size for Fashion-MNIST's 28 px images


def _fashion_sample(n: int) -> tuple[Any, list[str]]:
    """The first ``n`` Fashion-MNIST training images (PNG bytes and labels) from Debian's package."""
    frames, _ = read_fashion_mnist()
    return frames["train"].head(n).reset_index(drop=True), sorted(set(frames["train"]["label"]))


def _image_recipe_trainer(model_dir: str, df: Any, names: list[str], warmup: int, steps: int, best: bool,
                          workdir: Path) -> float:
    """Hugging Face's image-classification recipe: ``AutoImageProcessor`` in a ``datasets`` transform, the model from
    ``AutoModelForImageClassification`` and ``Trainer`` with its defaults (fp32, ``trainer``), or with the machine's
    fast precision and two DataLoader workers (``trainer-best``)."""
    import datasets
    import torch
    from transformers import (
        AutoImageProcessor,
        AutoModelForImageClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    processor = processor_for_size(AutoImageProcessor.from_pretrained(model_dir), IMAGE_SIZE)  # its own size keys
    model = AutoModelForImageClassification.from_pretrained(model_dir, num_labels=len(names), ignore_mismatched_sizes=True)
    ds = datasets.Dataset.from_dict({"image": df["image"].tolist(), "labels": [names.index(v) for v in df["label"]]})

    def transform(batch: dict[str, list[Any]]) -> dict[str, Any]:
        imgs = [Image.open(io.BytesIO(b)).convert("RGB") for b in batch["image"]]
        px = processor(imgs, return_tensors="pt")["pixel_values"]
        return {"pixel_values": px, "labels": batch["labels"]}

    ds.set_transform(transform)
    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            marks[state.global_step] = time.perf_counter()

    device = detect_device()
    args = TrainingArguments(output_dir=str(workdir / ("img-best" if best else "img-plain")),
                             per_device_train_batch_size=BATCH, max_steps=warmup + steps, learning_rate=5e-5,
                             report_to=[], disable_tqdm=True, save_strategy="no", logging_strategy="no",
                             use_cpu=device.kind == "cpu", remove_unused_columns=False,
                             bf16=best and device.precision == "bf16", fp16=best and device.precision == "fp16",
                             dataloader_num_workers=2 if best else 0)
    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      data_collator=lambda rows: {"pixel_values": torch.stack([r["pixel_values"] for r in rows]),
                                                  "labels": torch.tensor([r["labels"] for r in rows])},
                      callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return marks[warmup + steps] - marks[warmup]


def _image_recipe_bmcore(df: Any, names: list[str], model: str, warmup: int, steps: int,
                         workdir: Path) -> tuple[float, int, str]:
    """bmcore's training job with its image defaults on the same images; the timed steps' seconds and examples, and
    the precision it chose."""
    os.environ["BMCORE_WORKSPACE"] = str(workdir / "ws")
    small = df.groupby("label", group_keys=False).head(2)
    save_prepared(PreparedDataset("bench-images", "bench", Columns(["image"], "label"), names,
                                  {"train": df, "validation": small, "test": small}, modality="image"),
                  overwrite=True)  # the bench's scratch workspace
    config = TrainConfig(dataset="bench-images", model_name_or_path=model, max_steps=warmup + steps,
                         image_size=IMAGE_SIZE, per_device_train_batch_size=BATCH, logging_steps=1,
                         eval_strategy="steps", eval_steps=10**6)
    run_dir = runs.create_run(config, f"bench-images-{time.time_ns()}")
    status = run_training(run_dir)
    lines = {m["step"]: m for m in runs.read_metrics(run_dir) if m.get("kind") == "train"}
    first, last = lines[warmup], lines[warmup + steps]
    return last["train_s"] - first["train_s"], last["examples"] - first["examples"], str(status.get("precision", "?"))


@training_log_at(logging.ERROR)  # its 8 validation images draw a "never predicted" warning

def bench_images(quick: bool = False, model: str = "builtin:efficientnet-lite0",
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Training samples/s on Fashion-MNIST images at 64 px: bmcore's job against the plain ``Trainer`` recipe."""
    warmup, steps = (2, 6) if quick else (3, 25)
    try:
        df, names = _fashion_sample((warmup + steps) * BATCH * 2)
    except Exception as exc:  # Debian's dataset-fashion-mnist is missing: say so, measure the rest
        log(f"\nimages: skipped ({exc})")
        return {"skipped": str(exc)}
    mref = resolve_model(model)
    log(f"\nimages: Fashion-MNIST train, {model} at {IMAGE_SIZE} px, batch {BATCH}")
    log(f"{'recipe':<14}{'precision':>10}{'samples/s':>10}{'peak RSS':>10}")
    rows: dict[str, dict[str, Any]] = {}
    device = detect_device()
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in IMAGE_RECIPES:
            quiet_transformers()
            with PeakRSS() as rss:
                if recipe == "bmcore":
                    secs, examples, prec = _image_recipe_bmcore(df, names, model, warmup, steps, Path(tmp))
                else:
                    secs = _image_recipe_trainer(str(mref.location), df, names, warmup, steps, recipe == "trainer-best",
                                                 Path(tmp))
                    examples, prec = steps * BATCH, "fp32" if recipe == "trainer" else device.precision
            sps = examples / secs
            rows[recipe] = {"samples_per_s": sps, "precision": prec, "peak_rss_mb": rss.peak_mb}
            log(f"{recipe:<14}{prec:>10}{sps:>10.1f}{rss.peak_mb:>9.0f}M")
    ours = rows["bmcore"]["samples_per_s"]
    log("bmcore vs " + ", ".join(f"{r}: {ours / rows[r]['samples_per_s']:.2f}x" for r in IMAGE_RECIPES if r != "bmcore"))
    return {"model": model, "image_size": IMAGE_SIZE, **rows}
