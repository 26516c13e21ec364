"""``python -m bmcore bench``: speed measured side by side, in one process, against what users would otherwise run.

Ratios, not seconds, are the result: the machines are noisy, so every comparison runs its two
sides back to back in the same process on the same model folder and the same texts.

Inference (the Playground and evaluation): ``bmcore`` against ``transformers.pipeline
("text-classification")`` on the same folder:

* one prediction: p50 and p95 latency of single texts;
* a batch: texts/s over the SST-2 dev sentences (pipeline with ``batch_size=64``), and how
  often the two agree on the label;
* one ``explain`` (attention + Integrated Gradients): p50 latency.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .models import DEFAULT_MODEL, detect_device

SHARED_SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def sentences(n: int | None = None) -> tuple[list[str], list[str] | None, str]:
    """Short texts to measure on: SST-2 dev from ../shared/data when present, else BBC News titles.

    Returns the texts, their gold labels (or None), and where they came from.
    """
    import pandas as pd

    dev = SHARED_SST2 / "dev.csv"
    if dev.is_file():
        df = pd.read_csv(dev)
        df = df.head(n) if n else df
        return df["text"].astype(str).tolist(), df["label"].astype(str).tolist(), "SST-2 dev (../shared/data/sst2)"
    from .data import read_bbc_news

    titles = read_bbc_news()["title"].astype(str).tolist()
    return (titles[:n] if n else titles[:872]), None, "BBC News titles (../shared/data/sst2 not found)"


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _latencies(fn: Callable[[str], Any], texts: list[str], warmup: int = 5) -> list[float]:
    for t in texts[:warmup]:
        fn(t)
    out = []
    for t in texts:
        t0 = time.perf_counter()
        fn(t)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _model_folder(ref: str, labels: list[str], workdir: Path) -> Path:
    """A save_pretrained folder both sides load: the model itself when it is a folder, else a copy with a head."""
    from .models import load_classifier, load_tokenizer, resolve_model

    mref = resolve_model(ref)
    if mref.kind == "local":
        return Path(mref.location)
    folder = workdir / "model"
    load_classifier(mref, labels).save_pretrained(folder)
    load_tokenizer(mref).save_pretrained(folder)
    return folder


def bench_inference(model: str = DEFAULT_MODEL, quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Playground latency and evaluation throughput, bmcore against ``transformers.pipeline`` on the same folder."""
    import torch
    from transformers import pipeline

    from .explain import explain
    from .inference import load_for_inference, predict

    texts, gold, where = sentences()
    labels = sorted(set(gold)) if gold else ["negative", "positive"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = _model_folder(model, labels, Path(tmp))
        pipe = pipeline("text-classification", model=str(folder), device=-1 if detect_device().kind == "cpu" else 0)
        clf = load_for_inference(str(folder))
        single = texts[: 40 if quick else 120]
        torch.set_grad_enabled(False)
        res: dict[str, Any] = {"texts": where, "model": model, "precision": clf.precision}
        # One prediction at a time: interleave the two sides in blocks so drift hits both alike.
        ours, theirs = [], []
        for i in range(0, len(single), 20):
            block = single[i:i + 20]
            theirs += _latencies(lambda t: pipe(t), block, warmup=2)
            ours += _latencies(lambda t: predict(clf, [t]), block, warmup=2)
        res["predict_p50_ms"], res["predict_p95_ms"] = _percentile(ours, 0.5), _percentile(ours, 0.95)
        res["pipeline_p50_ms"], res["pipeline_p95_ms"] = _percentile(theirs, 0.5), _percentile(theirs, 0.95)
        log(f"one prediction   bmcore p50 {res['predict_p50_ms']:.1f} ms p95 {res['predict_p95_ms']:.1f} ms | "
            f"pipeline p50 {res['pipeline_p50_ms']:.1f} ms p95 {res['pipeline_p95_ms']:.1f} ms")
        # A batch: every text once, warm both sides first.
        batch = texts if not quick else texts[:400]
        pipe(batch[:64], batch_size=64)
        clf.predict_proba(batch[:64])
        t0 = time.perf_counter()
        p_out = pipe(batch, batch_size=64)
        p_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours_pred = clf.predict_proba(batch)
        o_s = time.perf_counter() - t0
        ours_labels = ours_pred.labels
        p_labels = [o["label"] for o in p_out]
        res["batch_texts_per_s"] = len(batch) / o_s
        res["pipeline_texts_per_s"] = len(batch) / p_s
        res["batch_label_agreement"] = sum(a == b for a, b in zip(ours_labels, p_labels, strict=True)) / len(batch)
        if gold and all(lab in labels for lab in p_labels):
            g = gold[: len(batch)]
            res["batch_accuracy"] = sum(a == b for a, b in zip(ours_labels, g, strict=True)) / len(batch)
            res["pipeline_accuracy"] = sum(a == b for a, b in zip(p_labels, g, strict=True)) / len(batch)
        acc = (f" | accuracy {res['batch_accuracy']:.4f} vs {res['pipeline_accuracy']:.4f}" if "batch_accuracy" in res else "")
        log(f"batch of {len(batch)}     bmcore {res['batch_texts_per_s']:.0f} texts/s | pipeline (batch_size=64) "
            f"{res['pipeline_texts_per_s']:.0f} texts/s | same label {res['batch_label_agreement']:.1%}{acc}")
        torch.set_grad_enabled(True)
        ex_texts = texts[:3 if quick else 10]
        explain(clf, ex_texts[0])  # builds the eager twin once, as the Playground's cache does
        ex = _latencies(lambda t: explain(clf, t), ex_texts, warmup=0)
        res["explain_p50_ms"] = _percentile(ex, 0.5)
        log(f"one explain      bmcore p50 {res['explain_p50_ms']:.0f} ms (attention + Integrated Gradients, 64 steps)")
    res["predict_p50_vs_pipeline"] = res["pipeline_p50_ms"] / res["predict_p50_ms"]
    res["batch_predict_vs_pipeline"] = res["batch_texts_per_s"] / res["pipeline_texts_per_s"]
    return res


def run_bench(quick: bool = False, only: str | None = None, model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """Run the benchmark, print its table, and return the summary (also printed as the last line, as JSON)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = detect_device()
    print(f"bmcore bench{' --quick' if quick else ''} on {device.label}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    summary: dict[str, Any] = {}
    if only in (None, "inference"):
        inf = bench_inference(model, quick)
        summary.update(predict_p50_vs_pipeline=round(inf["predict_p50_vs_pipeline"], 3),
                       batch_predict_vs_pipeline=round(inf["batch_predict_vs_pipeline"], 3),
                       explain_p50_ms=round(inf["explain_p50_ms"], 1),
                       inference=inf)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}))
    return summary
