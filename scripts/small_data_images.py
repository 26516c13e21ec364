"""Small data, images (issue 27): the built-in image model on Fashion-MNIST cut to a few images per class.

For each size in --per-class and each seed in --seeds, builds a prepared dataset from Debian's Fashion-MNIST
(``/usr/share/datasets/fashion-mnist``): N training images per class drawn stratified from the official train split
with that seed, ceil(N/8) validation images per class from the rest of train (what an 80/10/10 split of a user's folder
would hold), and as test a fixed stratified sample of the official 10,000-image test split (seed 0, --test-per-class
per class; 1000 takes it whole). Then runs ``python -m bmcore train --data NAME --seed SEED`` with every other setting
at its default (plus --extra flags), and prints a table: test accuracy of the run, and of the pixel baseline
(logistic regression on pixels, bmcore.baseline) trained on the same images.

--diagnose also scores each saved model on the test split twice: with the batch-norm statistics it saved, and with
statistics recomputed on its own training images (the cause issue 27 names: statistics that never left ImageNet's).

    BMCORE_WORKSPACE=/tmp/sdi python scripts/small_data_images.py --per-class 50 100 500 --seeds 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bmcore import data as bdata  # noqa: E402
from bmcore.images import FASHION_MNIST_CLASSES, read_fashion_mnist  # noqa: E402
from bmcore.workspace import runs_dir  # noqa: E402


def stratified(df: pd.DataFrame, per_class: int, seed: int, exclude: pd.Index | None = None) -> pd.DataFrame:
    """``per_class`` rows of each label, drawn with ``seed`` (rows in ``exclude`` left out), shuffled."""
    pool = df if exclude is None else df.drop(index=exclude)
    parts = [g.sample(per_class, random_state=seed) for _, g in pool.groupby("label", sort=True)]
    return pd.concat(parts).sample(frac=1, random_state=seed)


def build(frames: dict[str, pd.DataFrame], per_class: int, seed: int, test_per_class: int) -> str:
    """Save the cut as a prepared dataset; returns its name."""
    train = stratified(frames["train"], per_class, seed)
    validation = stratified(frames["train"], math.ceil(per_class / 8), seed, exclude=train.index)
    test = frames["test"] if test_per_class >= 1000 else stratified(frames["test"], test_per_class, 0)
    name = f"fmnist-{per_class}-s{seed}-t{len(test)}"
    splits = {k: v.reset_index(drop=True) for k, v in (("train", train), ("validation", validation), ("test", test))}
    ds = bdata.PreparedDataset(name=name, source="fashion-mnist idx files", columns=bdata.Columns(["image"], "label"),
                               label_names=sorted(FASHION_MNIST_CLASSES), splits=splits, modality="image")
    bdata.save_prepared(ds, overwrite=True)
    return name


def recalibrated_accuracy(model_dir: Path, dataset: str) -> tuple[float, float]:
    """Test accuracy of a saved model with its saved batch-norm statistics, and with statistics recomputed on its
    training images (no augmentation, cumulative average)."""
    import torch

    from bmcore.tasks.image_classification import ImageSplit, collate
    from bmcore.vision import load_image_classifier, load_image_processor

    ds = bdata.load_prepared(dataset)
    model, processor = load_image_classifier(str(model_dir)).float().eval(), load_image_processor(str(model_dir))
    index = {n: i for i, n in enumerate(model.config.id2label.values())}

    def loader(split: str) -> torch.utils.data.DataLoader:
        df = ds.splits[split]
        data = ImageSplit(df["image"].tolist(), df["label"].map(index).tolist(), processor, 0)
        return torch.utils.data.DataLoader(data, batch_size=128, collate_fn=collate)

    def accuracy() -> float:
        model.eval()
        right = total = 0
        with torch.no_grad():
            for b in loader("test"):
                right += int((model(pixel_values=b["pixel_values"]).logits.argmax(-1) == b["labels"]).sum())
                total += len(b["labels"])
        return right / total

    saved = accuracy()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over every batch
    model.train()
    with torch.no_grad():
        for b in loader("train"):
            model(pixel_values=b["pixel_values"])
    return saved, accuracy()


# --frozen-bn: the lever issue 27 names beside momentum and recomputation. Every batch-norm layer keeps the statistics
# it was converted with (ImageNet's) and normalises with them in training too; its scale and shift still learn.
FROZEN_BN = """
import runpy, torch
from bmcore.tasks import image_classification as ic
def freeze(model, momentum=None):
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    def keep(module, args):  # returns None: the input goes on unchanged
        module.training = False
    for m in layers:
        m.register_forward_pre_hook(keep)
    return len(layers)
ic.follow_new_data = freeze
ic.recompute_batch_norm = lambda *a, **k: 0
runpy.run_module("bmcore", run_name="__main__", alter_sys=True)
"""


def train(name: str, seed: int, extra: list[str], tag: str, frozen_bn: bool = False) -> dict[str, float]:
    out = runs_dir() / f"{name}-{tag}-{time.strftime('%H%M%S')}"
    t0 = time.time()
    entry = ["-c", FROZEN_BN] if frozen_bn else ["-m", "bmcore"]
    proc = subprocess.run([sys.executable, *entry, "train", "--data", name, "--seed", str(seed),
                           "--out", str(out), *extra], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{name} {tag}: training failed\n{proc.stderr[-2000:]}")
    ev = json.loads((out / "eval.json").read_text())
    status = json.loads((out / "status.json").read_text())
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"accuracy": ev["test"]["accuracy"], "baseline": ev["baseline"]["accuracy"], "seconds": time.time() - t0,
            "steps": max((m["step"] for m in steps), default=0), "run": str(out), "total_steps": status.get("total_steps")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", nargs="+", type=int, default=[50, 100, 500])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--test-per-class", type=int, default=200, help="test images per class (1000: all 10,000)")
    parser.add_argument("--tag", default="default", help="a name for this variant in the run folders and the table")
    parser.add_argument("--diagnose", action="store_true", help="also score with batch-norm statistics recomputed")
    parser.add_argument("--frozen-bn", action="store_true",
                        help="keep every batch-norm layer's converted (ImageNet) statistics, in training too")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train flags for every run")
    args = parser.parse_args()
    frames, _ = read_fashion_mnist()
    print(f"| per class | seed | {args.tag} | pixel baseline | steps | seconds |"
          + (" saved BN | recomputed BN |" if args.diagnose else ""), flush=True)
    print("|---|---|---|---|---|---|" + ("---|---|" if args.diagnose else ""), flush=True)
    for n in args.per_class:
        for seed in args.seeds:
            name = build(frames, n, seed, args.test_per_class)
            r = train(name, seed, args.extra, args.tag, args.frozen_bn)
            line = f"| {n} | {seed} | {r['accuracy']:.3f} | {r['baseline']:.3f} | {r['steps']} | {r['seconds']:.0f} |"
            if args.diagnose:
                saved, recomputed = recalibrated_accuracy(Path(r["run"]) / "model", name)
                line += f" {saved:.3f} | {recomputed:.3f} |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
