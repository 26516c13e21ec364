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

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .models import DEFAULT_MODEL, DeviceInfo, detect_device

# SST-2 (train.csv, dev.csv): ../shared/data/sst2 beside the checkout, or the folder in BMCORE_SST2_DIR
# (scripts/gpu_check.sh points it at the copy it carries to a machine without ../shared).
SHARED_SST2 = Path(os.environ.get("BMCORE_SST2_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2")


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


# --- training: four recipes, same model, data, batch size and timed steps ------------------------------

RECIPES = ("seed", "trainer", "trainer-best", "bmcore")
BATCH = 32


class _PeakRSS:
    """Samples this process's resident memory in a thread; ``peak_mb`` is the highest seen while active."""

    def __init__(self, every: float = 0.05) -> None:
        import threading

        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


PEAK_BUDGET_S = 1.0  # timed seconds of matmuls per precision: the peak takes seconds on any machine
PEAK_SIZES = (512, 1024, 2048)  # square matmul sizes, tried smallest first (smaller ones measure call overhead)
PEAK_MAX_REPEATS = 20


def peak_precisions(device: DeviceInfo) -> tuple[str, ...]:
    """The precisions whose matmul peak is measured: fp32, and the device's mixed precision where it is fast.

    A CPU without AMX or AVX512-BF16 (or with ``BMCORE_PRECISION=fp32``) runs no recipe in bf16, and
    emulates bf16 matmuls so slowly that timing them took minutes: it is not measured there.
    """
    return ("fp32",) if device.precision == "fp32" else ("fp32", device.precision)


def matmul_peak(precisions: tuple[str, ...] = ("fp32",), budget_s: float = PEAK_BUDGET_S,
                device_kind: str = "cpu") -> dict[str, dict[str, float]]:
    """The matmul peak of each precision (the denominators of MFU): ``{"fp32": {"flops", "n", "repeats"}}``.

    The size grows from 512 while one matmul of the next size (8x the work) would take at most a
    quarter of ``budget_s``, up to 2048; then as many repeats as fit the budget (1 to ``PEAK_MAX_REPEATS``)
    are timed one by one and the fastest counts (a peak; on a shared machine the mean measures the
    neighbours). A slow machine gets a small matmul, and the whole measurement takes about 2 x
    ``budget_s`` per precision.
    """
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

    def timed(a: Any, b: Any) -> float:
        t0 = time.perf_counter()
        a @ b
        if device_kind == "cuda":
            torch.cuda.synchronize()
        return max(time.perf_counter() - t0, 1e-9)

    out = {}
    for name in precisions:
        for n in PEAK_SIZES:
            a, b = (torch.randn(n, n, dtype=dtypes[name], device=device_kind) for _ in range(2))
            timed(a, b)  # warm-up (the first call also initialises the kernels)
            one = min(timed(a, b), timed(a, b))
            if one * 8 > budget_s / 4:
                break
        repeats = max(1, min(PEAK_MAX_REPEATS, int(budget_s / one)))
        best = min(timed(a, b) for _ in range(repeats))
        out[name] = {"flops": 2 * n**3 / best, "n": n, "repeats": repeats}
    return out


def machine_peak(device: DeviceInfo, log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Measure and log the matmul peak of the precisions the recipes use on ``device`` (see :func:`peak_precisions`)."""
    measured = matmul_peak(peak_precisions(device), device_kind="cuda" if device.kind == "cuda" else "cpu")
    log("matmul peak, the denominator of MFU: " + ", ".join(
        f"{p} {m['flops'] / 1e9:.0f} GFLOP/s ({m['n']}x{m['n']}, {m['repeats']} timed)" for p, m in measured.items())
        + ("; bf16 not measured: no recipe uses it here" if device.precision == "fp32" else ""))
    return measured


def train_flops_per_token(config: Any, seq_len: float) -> float:
    """Forward + backward FLOPs per real token: 6 x non-embedding parameters + attention scores (12 x layers x hidden x length)."""
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_layer = 4 * h * h + 2 * h * inter  # Q, K, V, O projections and the two feed-forward matrices
    return 6 * layers * per_layer + 12 * layers * h * seq_len


def bench_texts(kind: str, n: int, seed: int = 0) -> tuple[list[str], list[str], int, str]:
    """The texts of one benchmark: ``short`` (SST-2 train sentences) or ``long`` (BBC News articles at 256 tokens)."""
    import pandas as pd

    from .data import read_bbc_news

    if kind == "short":
        train = SHARED_SST2 / "train.csv"
        if train.is_file():
            df = pd.read_csv(train).sample(n, random_state=seed)
            return df["text"].astype(str).tolist(), df["label"].astype(str).tolist(), 128, "SST-2 train sentences"
        df = read_bbc_news().sample(min(n, 2225), random_state=seed)
        return df["title"].tolist(), df["label"].tolist(), 128, "BBC News titles (../shared/data/sst2 not found)"
    df = read_bbc_news().sample(min(n, 2225), random_state=seed)
    return df["text"].tolist(), df["label"].tolist(), 256, "BBC News articles"


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
    import pandas as pd

    from . import runs
    from .config import TrainConfig
    from .data import Columns, PreparedDataset, save_prepared
    from .train import run_training

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


@contextlib.contextmanager
def _training_log_at(level: int):
    """The training logger at ``level`` while a benchmark runs its jobs in this process, as it was afterwards (a
    caller's own runs keep their train.log lines)."""
    logger = logging.getLogger("bmcore.train")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the training job sets warnings back on; the load reports would flood the table
    hf_logging.disable_progress_bar()


@_training_log_at(logging.WARNING)
def bench_training(kinds: tuple[str, ...] = ("short", "long"), quick: bool = False, model: str = DEFAULT_MODEL,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train with the four recipes on each kind of text; samples/s, real tokens/s, MFU, peak RSS and ratios."""

    from .config import TrainConfig
    from .models import load_config, load_tokenizer, resolve_model

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
                _quiet()
                with _PeakRSS() as rss:
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


# --- time to accuracy: trainer-best and bmcore, each with its defaults, on SST-2 ---------------------------

TARGET_ACCURACY = 0.88
EVAL_EVERY_EXAMPLES = 2000  # both recipes score SST-2 dev about this often; evaluation time is not counted


def _eval_every(train: Any) -> float:
    """Examples between dev scores: EVAL_EVERY_EXAMPLES, or a quarter epoch of a smaller training set."""
    return min(EVAL_EVERY_EXAMPLES, len(train) / 4)


def _sst2() -> tuple[Any, Any]:
    import pandas as pd

    train, dev = SHARED_SST2 / "train.csv", SHARED_SST2 / "dev.csv"
    if not (train.is_file() and dev.is_file()):
        raise FileNotFoundError("time to accuracy needs ../shared/data/sst2 (train.csv and dev.csv)")
    return pd.read_csv(train), pd.read_csv(dev)


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
    import threading

    import pandas as pd

    from . import runs
    from .config import TrainConfig
    from .data import Columns, PreparedDataset, save_prepared
    from .models import load_tokenizer
    from .train import run_training
    from .trainer import mean_examples_per_step

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


TTA_SEEDS = (42, 7, 1)  # one setting's crossing point moves by up to ~28k examples between seeds: the median is reported


@_training_log_at(logging.WARNING)
def bench_time_to_accuracy(model: str = DEFAULT_MODEL, target: float = TARGET_ACCURACY, seeds: tuple[int, ...] = TTA_SEEDS,
                           log: Callable[[str], None] = print, data: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Seconds of training until SST-2 dev accuracy reaches ``target`` (or one epoch): ``trainer-best`` against
    ``bmcore``, side by side for each seed; the speedup reported is the median of the per-seed ratios. ``data``
    (train, dev) replaces SST-2."""
    import statistics

    from .models import resolve_model

    train, dev = data if data is not None else _sst2()
    log(f"\ntime to {target:.2f} SST-2 dev accuracy (or one epoch; training seconds, evaluations not counted), "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
    out: dict[str, Any] = {"target": target, "seeds": list(seeds), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            row: dict[str, Any] = {"seed": seed}
            for recipe in ("trainer-best", "bmcore"):
                _quiet()
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


# --- images: bmcore's job against the plain Trainer recipe, EfficientNet-Lite0 on Fashion-MNIST ---------------

IMAGE_RECIPES = ("trainer", "trainer-best", "bmcore")
IMAGE_SIZE = 64  # both sides train at bmcore's automatic size for Fashion-MNIST's 28 px images


def _fashion_sample(n: int) -> tuple[Any, list[str]]:
    """The first ``n`` Fashion-MNIST training images (PNG bytes and labels) from Debian's package."""
    from .images import read_fashion_mnist

    frames, _ = read_fashion_mnist()
    return frames["train"].head(n).reset_index(drop=True), sorted(set(frames["train"]["label"]))


def _image_recipe_trainer(model_dir: str, df: Any, names: list[str], warmup: int, steps: int, best: bool,
                          workdir: Path) -> float:
    """Hugging Face's image-classification recipe: ``AutoImageProcessor`` in a ``datasets`` transform, the model from
    ``AutoModelForImageClassification`` and ``Trainer`` with its defaults (fp32, ``trainer``), or with the machine's
    fast precision and two DataLoader workers (``trainer-best``)."""
    import io

    import datasets
    import torch
    from PIL import Image
    from transformers import (
        AutoImageProcessor,
        AutoModelForImageClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from .tasks.image_classification import processor_for_size

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
    from . import runs
    from .config import TrainConfig
    from .data import Columns, PreparedDataset, save_prepared
    from .train import run_training

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


@_training_log_at(logging.ERROR)  # its 8 validation images draw a "never predicted" warning
def bench_images(quick: bool = False, model: str = "builtin:efficientnet-lite0",
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Training samples/s on Fashion-MNIST images at 64 px: bmcore's job against the plain ``Trainer`` recipe."""

    from .models import resolve_model

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
            _quiet()
            with _PeakRSS() as rss:
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


def run_bench(quick: bool = False, only: str | None = None, model: str = DEFAULT_MODEL,
              seeds: tuple[int, ...] = TTA_SEEDS) -> dict[str, Any]:
    """Run the benchmark, print its table, and return the summary (also printed as the last line, as JSON)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
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
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}))
    return summary
