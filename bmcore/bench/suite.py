"""``python -m bmcore bench``: each part in turn (training, time to accuracy, images, inference, serve), then the
summary of ratios, printed as the last line as JSON."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..device import detect_device
from ..models import DEFAULT_MODEL
from .accuracy import TTA_SEEDS, bench_time_to_accuracy
from .images import bench_images
from .inference import bench_inference
from .measure import quiet_transformers
from .serve import bench_serve
from .training import bench_training

PARTS = ("training", "accuracy", "images", "inference", "serve")


def run_bench(quick: bool = False, only: str | None = None, model: str | None = None,
              seeds: tuple[int, ...] = TTA_SEEDS, texts: str | None = None, onnx: bool = False) -> dict[str, Any]:
    """Run the benchmark, print its table, and return the summary (also printed as the last line, as JSON).

    ``model`` None is builtin:minilm for every part but serve, which takes the newest finished run; ``texts`` and
    ``onnx`` are serve's (:func:`bmcore.bench.serve.bench_serve`)."""
    serve_model = model
    model = model or DEFAULT_MODEL
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_transformers()
    device = detect_device()
    print(f"bmcore bench{' --quick' if quick else ''} on {device.label}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    print(f"precision {device.reason}", flush=True)
    summary: dict[str, Any] = {}
    if only in (None, "training"):
        tr = bench_training(quick=quick, model=model)
        for kind in ("short", "long"):
            rows = tr[kind]
            ours = rows["bmcore"]["samples_per_s"]
            for r in ("seed", "trainer", "trainer-best"):
                summary[f"{kind}_vs_{r.replace('-', '_')}"] = round(ours / rows[r]["samples_per_s"], 3)
            summary[f"{kind}_mfu"] = round(rows["bmcore"]["mfu"], 4)
        summary["training"] = tr
    if only in (None, "accuracy") and not quick:
        tta = bench_time_to_accuracy(model, seeds=seeds)
        summary.update(time_to_accuracy_vs_trainer_best=round(tta["speedup"], 3),
                       tta_seconds_trainer_best=round(tta["trainer-best"]["seconds"], 1),
                       tta_seconds_bmcore=round(tta["bmcore"]["seconds"], 1),
                       tta_accuracy_trainer_best=round(tta["trainer-best"]["accuracy"], 4),
                       tta_accuracy_bmcore=round(tta["bmcore"]["accuracy"], 4), time_to_accuracy=tta)
    if only in (None, "images"):
        img = bench_images(quick)
        if "bmcore" in img:
            for r in ("trainer", "trainer_best"):
                summary[f"images_vs_{r}"] = round(img["bmcore"]["samples_per_s"] / img[r.replace("_", "-")]["samples_per_s"], 3)
        summary["images"] = img
    if only in (None, "inference"):
        inf = bench_inference(model, quick)
        summary.update(predict_p50_vs_pipeline=round(inf["predict_p50_vs_pipeline"], 3),
                       batch_predict_vs_pipeline=round(inf["batch_predict_vs_pipeline"], 3),
                       explain_p50_ms=round(inf["explain_p50_ms"], 1),
                       inference=inf)
    if only in (None, "serve"):
        srv = bench_serve(serve_model, quick, texts_file=texts, onnx=onnx)
        for clients, ratio in srv["ratios"].items():
            summary[f"serve_vs_pipeline_{clients}"] = round(ratio, 3)
            summary[f"serve_p99_ms_{clients}"] = round(srv["servers"]["bmcore"]["levels"][clients]["p99_ms"], 1)
        for name, key in (("bmcore", "serve"), ("pipeline", "serve_pipeline")):
            levels = srv["servers"][name]["levels"].values()
            summary[f"{key}_errors"] = sum(r["errors"] for r in levels)
            summary[f"{key}_wrong_labels"] = sum(r["wrong"] for r in levels)
        summary["serve_rss_growth"] = round(srv["servers"]["bmcore"]["rss_growth"] or 0.0, 4)
        summary["serve"] = srv
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}))
    return summary
