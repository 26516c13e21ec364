"""Inference speed, as the Playground and evaluation use it: ``bmcore`` against ``transformers.pipeline
("text-classification")`` on the same model folder and the same texts.

* one prediction: p50 and p95 latency of single texts;
* a batch: texts/s over the SST-2 dev sentences (pipeline with ``batch_size=64``), and how
  often the two agree on the label;
* one ``explain`` (attention + Integrated Gradients): p50 latency.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..device import detect_device
from ..explain import explain
from ..inference import load_for_inference, predict
from ..models import DEFAULT_MODEL, load_classifier, load_tokenizer, resolve_model
from .measure import latencies, percentile
from .texts import sentences


def bench_model_folder(ref: str, labels: list[str], workdir: Path) -> Path:
    """A save_pretrained folder both sides load: the model itself when it is a folder, else a copy with a head."""
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

    texts, gold, where = sentences()
    labels = sorted(set(gold)) if gold else ["negative", "positive"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = bench_model_folder(model, labels, Path(tmp))
        pipe = pipeline("text-classification", model=str(folder), device=-1 if detect_device().kind == "cpu" else 0)
        clf = load_for_inference(str(folder))
        single = texts[: 40 if quick else 120]
        torch.set_grad_enabled(False)
        res: dict[str, Any] = {"texts": where, "model": model, "precision": clf.precision}
        # One prediction at a time: interleave the two sides in blocks so drift hits both alike.
        ours, theirs = [], []
        for i in range(0, len(single), 20):
            block = single[i:i + 20]
            theirs += latencies(lambda t: pipe(t), block, warmup=2)
            ours += latencies(lambda t: predict(clf, [t]), block, warmup=2)
        res["predict_p50_ms"], res["predict_p95_ms"] = percentile(ours, 0.5), percentile(ours, 0.95)
        res["pipeline_p50_ms"], res["pipeline_p95_ms"] = percentile(theirs, 0.5), percentile(theirs, 0.95)
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
        ex = latencies(lambda t: explain(clf, t), ex_texts, warmup=0)
        res["explain_p50_ms"] = percentile(ex, 0.5)
        log(f"one explain      bmcore p50 {res['explain_p50_ms']:.0f} ms (attention + Integrated Gradients, 64 steps)")
    res["predict_p50_vs_pipeline"] = res["pipeline_p50_ms"] / res["predict_p50_ms"]
    res["batch_predict_vs_pipeline"] = res["batch_texts_per_s"] / res["pipeline_texts_per_s"]
    return res
