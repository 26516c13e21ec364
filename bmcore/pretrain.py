"""Domain-adaptive pretraining: continue a checkpoint's masked-language-model training on unlabelled text.

BERT learnt language by filling in hidden words (the masked-language-model objective). Running
more of that on your own domain's text, before fine-tuning, can help when the domain reads unlike
the text the checkpoint saw. ``python -m bmcore pretrain --data SOURCE --model REF`` creates a run
folder with a :class:`~bmcore.config.PretrainConfig` (``task`` mlm), and the same background job
as fine-tuning (``python -m bmcore train RUN_DIR``) runs it: same queue, cancel, resume and
``metrics.jsonl``, with the held-out MLM loss and perplexity (``exp(loss)``) evaluated before the
first step and every ``eval_steps`` steps. ``RUN_DIR/model`` is a ``save_pretrained`` folder that
fine-tuning accepts as its base model.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

from . import files, runs
from .config import FINE_TUNE, PretrainConfig, task_of
from .data.resolve import resolve_dataset
from .data.storage import is_prepared, load_prepared
from .errors import BmcoreError
from .limits import check_jobs
from .models import (
    ModelRef,
    check_max_seq_length,
    dropout_overrides,
    from_pretrained_safely,
    load_tokenizer,
    resolve_model,
)
from .trainer import build_training_args, make_callback, save_model_atomically, start_job
from .workspace import check_name, inside, workspace_dir

log = logging.getLogger("bmcore.pretrain")

HELD_OUT_FRACTION = 0.05  # of a plain text file's documents, kept for the perplexity evaluation
MAX_HELD_OUT_BLOCKS = 128  # blocks scored per evaluation (16k tokens at 128): enough for a stable perplexity, cheap on a CPU
EVAL_MASK_SEED = 1234  # the held-out masks are drawn once with this seed, so every evaluation scores the same task
TEXT_SUFFIXES = (".txt", ".text", ".md")
FRESH_HEAD_NOTICE = "the masked-LM head was initialised fresh: the base checkpoint has none, so its first losses are high"
CURVES = {"loss": "training MLM loss", "eval_loss": "validation MLM loss", "eval_perplexity": "validation perplexity"}


# --- text -----------------------------------------------------------------------------------


def split_documents(text: str) -> list[str]:
    """Documents of a plain text: blank-line-separated blocks when the text has blank lines, else one per line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parts = re.split(r"\n\s*\n", text) if re.search(r"\n\s*\n", text.strip()) else text.split("\n")
    return [" ".join(p.split()) for p in parts if p.strip()]


def _held_out(docs: list[str], seed: int) -> tuple[list[str], list[str]]:
    import numpy as np

    if len(docs) < 2:
        raise BmcoreError(f"the text has {len(docs)} document(s); pretraining needs at least 2 (one is held out "
                          "to measure perplexity): put one document per line or per blank-line block")
    order = np.random.default_rng(seed).permutation(len(docs))
    n = max(1, round(len(docs) * HELD_OUT_FRACTION))
    return [docs[i] for i in order[n:]], [docs[i] for i in order[:n]]


def _split_texts(df: Any) -> list[str]:
    texts = df["text"].astype(str)
    if "text_pair" in df:  # a pair is one document for MLM: both sides are text of the domain
        texts = texts + " " + df["text_pair"].astype(str)
    return [t for t in texts.tolist() if t.strip()]


def load_texts(source: str, seed: int = 42) -> tuple[list[str], list[str], str]:
    """Unlabelled text for pretraining: ``(train texts, held-out texts, how they were found)``.

    A prepared dataset gives its train texts and holds out its validation texts (labels ignored;
    the locked test split is never read). A plain text file gives one document per line, or per
    blank-line block, with 5% held out. Any other source the data layer reads is prepared on the
    fly (its splits when it has them) and used the same way.
    """
    source = (source or "").strip()
    if not source:
        raise BmcoreError("no text given; give a prepared dataset's name or a text file (--data)")
    path = Path(source).expanduser()
    if not is_prepared(source) and path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise BmcoreError(f"cannot read {source}: {exc.strerror}") from exc
        docs = split_documents(text)
        if not docs:
            raise BmcoreError(f"{source} has no text; put one document per line or per blank-line block")
        train, held = _held_out(docs, seed)
        return train, held, f"{path.name}: {len(docs):,} documents, {len(held):,} held out"
    ds = load_prepared(source) if is_prepared(source) else resolve_dataset(source, seed=seed)
    train = _split_texts(ds.splits["train"])
    held = _split_texts(ds.splits["validation"]) if "validation" in ds.splits else []
    if not train:
        raise BmcoreError(f"dataset {ds.name} has no texts in its train split")
    if not held:  # no validation split: hold out part of train instead
        train, held = _held_out(train, seed)
        return train, held, f"{ds.name}: {len(train):,} train texts, {len(held):,} of them held out (labels ignored)"
    return train, held, f"{ds.name}: {len(train):,} train texts, {len(held):,} validation texts held out (labels ignored)"


def group_texts(texts: list[str], tokenizer: Any, block_size: int) -> list[list[int]]:
    """Tokenise each text with its special tokens, concatenate, and cut into blocks of ``block_size`` tokens.

    Short texts share a block instead of being padded, so no compute goes to padding. The last
    partial block is dropped, unless it is the only one.
    """
    ids: list[int] = []
    for start in range(0, len(texts), 1000):
        for row in tokenizer(texts[start:start + 1000], truncation=False, verbose=False)["input_ids"]:
            ids.extend(row)
    blocks = [ids[i:i + block_size] for i in range(0, len(ids), block_size)]
    if len(blocks) > 1 and len(blocks[-1]) < block_size:
        blocks.pop()
    return [b for b in blocks if len(b) > 1]


def _to_dataset(blocks: list[list[int]]) -> Any:
    import datasets

    return datasets.Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks]})


def masked_eval_set(blocks: list[list[int]], tokenizer: Any, mlm_probability: float, seed: int = EVAL_MASK_SEED) -> Any:
    """The held-out blocks with their masks drawn once, under a fixed seed: every evaluation scores the same positions."""
    import datasets
    import torch
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batch = collator([{"input_ids": b} for b in blocks])
    # A short block can draw no mask at all, and a block with nothing to predict has no loss: mask its middle token.
    for row in (batch["labels"] != -100).sum(dim=1).eq(0).nonzero().flatten().tolist():
        n = int(batch["attention_mask"][row].sum())
        if n >= 3:
            batch["labels"][row, n // 2] = batch["input_ids"][row, n // 2]
            batch["input_ids"][row, n // 2] = tokenizer.mask_token_id
    return datasets.Dataset.from_dict({k: v.tolist() for k, v in batch.items()})


class MLMCollator:
    """Masks training batches afresh each time; passes pre-masked evaluation batches (they carry ``labels``) through."""

    def __init__(self, tokenizer: Any, mlm_probability: float) -> None:
        from transformers import DataCollatorForLanguageModeling, default_data_collator

        self.mlm = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        self.stack = default_data_collator

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if "labels" in features[0]:
            return self.stack(features)
        return self.mlm(features)


# --- model ----------------------------------------------------------------------------------


def load_mlm_model(ref: str | ModelRef, **kwargs: Any) -> tuple[Any, list[str]]:
    """``AutoModelForMaskedLM`` from safetensors, and the names of the weights it had to initialise fresh.

    The encoder keeps the checkpoint's weights. A checkpoint without a masked-LM head (the bundled
    MiniLM is a plain ``BertModel``) gets a fresh one; its decoder is tied to the word embeddings.
    """
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # we report the fresh head ourselves, in one line
    try:
        model, info = from_pretrained_safely(AutoModelForMaskedLM, mref, use_safetensors=True, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, sorted(info.get("missing_keys") or [])


def _keep_base_weights(base: ModelRef, model: Any) -> Any:
    """A hook for the model save: add the base checkpoint's weights that ``*ForMaskedLM`` has no place for.

    BERT's masked-LM model has no pooler, so a plain save would drop the checkpoint's pooler and
    a later fine-tune would start it from random; carrying it over keeps what the base had.
    """
    def finish(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        weights = folder / "model.safetensors"
        base_file = Path(base.location) / "model.safetensors"
        if base.path is None or not weights.is_file() or not base_file.is_file():
            return
        prefix = getattr(model, "base_model_prefix", "") or ""
        saved = load_file(str(weights))
        extra = {}
        for key, tensor in load_file(str(base_file)).items():
            full = key if not prefix or key.startswith(prefix + ".") else f"{prefix}.{key}"
            if "pooler" in full and full not in saved:
                extra[full] = tensor
        if extra:
            save_file({**saved, **extra}, str(weights), metadata={"format": "pt"})
            log.info("kept %d weight(s) of the base checkpoint the masked-LM model does not use: %s",
                     len(extra), ", ".join(sorted(extra)))

    return finish


# --- the job --------------------------------------------------------------------------------


def _mlm_trainer_class() -> Any:
    from transformers import Trainer

    class MLMTrainer(Trainer):
        """Scores the vocabulary only at the masked positions, and logs held-out perplexity beside the loss.

        ``BertForMaskedLM`` projects every position onto the 30k-word vocabulary although only
        the ~15% masked ones count; on a CPU that projection is about half of a step's work at
        128 tokens. Same loss (mean cross-entropy over masked tokens), computed on those alone.
        Models without a BERT-style ``cls`` head, and wrapped (DDP) models, take the usual path.
        """

        def log(self, logs, *args, **kwargs):  # noqa: ANN001, ANN201
            """Adds ``eval_perplexity = exp(eval_loss)`` to evaluation logs before any callback sees them: bmcore's
            (``metrics.jsonl``) and a tracker's (TensorBoard's ``eval/perplexity``, MLflow's ``eval_perplexity``)."""
            if isinstance(logs.get("eval_loss"), (int, float)):
                logs["eval_perplexity"] = perplexity(logs["eval_loss"])
            super().log(logs, *args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
            import torch

            head = getattr(model, "cls", None)
            encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
            if head is None or encoder is None or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            hidden = encoder(**inputs)[0]
            picked = labels != -100
            logits = head(hidden[picked]).float()
            loss = torch.nn.functional.cross_entropy(logits, labels[picked], reduction="sum")
            # Like transformers' own loss: divide by the masked tokens of the whole (accumulated) batch.
            count = num_items_in_batch if num_items_in_batch is not None else picked.sum()
            loss = loss / torch.as_tensor(count, device=loss.device).clamp(min=1)
            return (loss, {"loss": loss}) if return_outputs else loss  # evaluation needs the loss only

    return MLMTrainer


def perplexity(loss: float) -> float:
    """``exp(loss)``, capped so a diverged loss reads as a huge number instead of an overflow."""
    return float(math.exp(min(loss, 50.0)))


def train_mlm(run_dir: Path, config: PretrainConfig, resume: bool, main: bool) -> dict[str, Any]:
    """The MLM job of a run folder (called by :func:`bmcore.train.run_training`, which handles queue and status)."""
    from transformers import PrinterCallback

    device, plan, mref = start_job(config, run_dir, main)
    precision = plan["precision"]
    tokenizer = load_tokenizer(mref)
    if tokenizer.mask_token is None:
        raise BmcoreError(f"the tokenizer of {config.model_name_or_path} has no mask token; it cannot be trained as a masked LM")
    train_texts, held_texts, described = load_texts(config.dataset, config.seed)
    train_ds = _to_dataset(group_texts(train_texts, tokenizer, config.max_seq_length))
    held_blocks = group_texts(held_texts, tokenizer, config.max_seq_length)[:MAX_HELD_OUT_BLOCKS]
    eval_ds = masked_eval_set(held_blocks, tokenizer, config.mlm_probability)
    log.info("device %s, precision %s; %s; %d training blocks and %d held-out blocks of up to %d tokens",
             device.label, precision, described, len(train_ds), len(eval_ds), config.max_seq_length)

    attn = plan["attn_implementation"]
    from transformers import set_seed

    set_seed(config.seed)  # the fresh head's initialisation, before Trainer seeds the rest: reruns start alike
    model, fresh = load_mlm_model(mref, attn_implementation=attn,
                                  **dropout_overrides(mref, config.attention_dropout, config.hidden_dropout))
    head = "fresh" if fresh else "checkpoint"
    if fresh:
        log.warning("%s (%d weights: %s)", FRESH_HEAD_NOTICE, len(fresh), ", ".join(fresh[:6]) + (", ..." if len(fresh) > 6 else ""))
    if main:
        runs.write_status(run_dir, mlm_head=head, fresh_weights=fresh,
                          **({"head_notice": FRESH_HEAD_NOTICE} if fresh else {}))
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)

    args = build_training_args(config, run_dir, precision, len(train_ds))
    args.load_best_model_at_end = False  # domain adaptation keeps the last model; perplexity is tracked, not selected on
    args.prediction_loss_only = True  # never gather vocabulary-sized logits during evaluation
    args.train_sampling_strategy = "random"  # every block has the same length: nothing to group
    callback = make_callback(run_dir, config, precision)
    trainer = _mlm_trainer_class()(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                      data_collator=MLMCollator(tokenizer, config.mlm_probability),
                      callbacks=[callback])
    trainer.remove_callback(PrinterCallback)
    checkpoint = runs.last_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        log.warning("no checkpoint to resume from; starting from the beginning")
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint.name)
        callback.resumed_from = int(checkpoint.name.split("-")[1])
    else:
        before = trainer.evaluate()  # step 0: the base checkpoint's perplexity on the held-out text
        log.info("held-out perplexity before training %.2f (MLM loss %.4f)", before["eval_perplexity"], before["eval_loss"])
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    cancelled = callback.cancelled
    if not cancelled and not any(m.get("kind") == "eval" and m.get("step") == trainer.state.global_step
                                 for m in runs.read_metrics(run_dir)):
        trainer.evaluate()  # the final model's perplexity, when the last step was not an evaluation step
    if not main:
        return {}
    evals = [m for m in runs.read_metrics(run_dir) if m.get("kind") == "eval"]
    first, last = (evals[0], evals[-1]) if evals else ({}, {})
    meta = {"task": config.task, "max_seq_length": config.max_seq_length, "dataset": config.dataset,
            "base_model": config.model_name_or_path, "run": run_dir.name, "precision": precision, "mlm_head": head,
            "perplexity_before": first.get("eval_perplexity"), "perplexity_after": last.get("eval_perplexity")}
    save_model_atomically(trainer, tokenizer, run_dir, meta, finish=_keep_base_weights(mref, model))
    log.info("saved the masked-LM model to %s", run_dir / runs.MODEL_DIR)
    result = {"task": config.task, "dataset": config.dataset, "data": described, "mlm_head": head,
              "train_blocks": len(train_ds), "held_out_blocks": len(eval_ds),
              "validation": {"loss": last.get("eval_loss"), "perplexity": last.get("eval_perplexity")},
              "before": {"loss": first.get("eval_loss"), "perplexity": first.get("eval_perplexity"), "step": first.get("step")},
              "after": {"loss": last.get("eval_loss"), "perplexity": last.get("eval_perplexity"), "step": last.get("step")}}
    files.write_json_atomic(run_dir / runs.EVAL_FILE, result)
    state = runs.CANCELLED if cancelled else runs.COMPLETED
    if not cancelled:
        log.info("held-out perplexity %.2f -> %.2f", first.get("eval_perplexity") or math.nan,
                 last.get("eval_perplexity") or math.nan)
    return {"state": state, "best_metric": last.get("eval_loss"), "best_metric_name": "loss",
            "perplexity_before": first.get("eval_perplexity"), "perplexity_after": last.get("eval_perplexity")}


# --- readers and starters -------------------------------------------------------------------


def is_pretrain_run(run_dir: str | Path) -> bool:
    """True for a run folder whose config is a masked-LM pretraining run."""
    try:
        return task_of(files.read_json(Path(run_dir) / runs.CONFIG_FILE)) != FINE_TUNE
    except BmcoreError:
        return False


def curves_frame(run_dir: str | Path) -> Any:
    """A pretraining run's curves as a long ``pandas.DataFrame`` (step, metric, value) with names from :data:`CURVES`."""
    import pandas as pd

    rows = [{"step": m.get("step"), "metric": name, "value": m[key]}
            for m in runs.read_metrics(Path(run_dir)) for key, name in CURVES.items()
            if isinstance(m.get(key), (int, float)) and math.isfinite(m[key])]
    return pd.DataFrame(rows, columns=["step", "metric", "value"])


def check_config(config: PretrainConfig) -> None:
    """Check what can be checked before a run folder is written: the model resolves and the text is there."""
    check_max_seq_length(config.max_seq_length, resolve_model(config.model_name_or_path))
    load_texts(config.dataset, config.seed)


def pretrain_run_name(config: PretrainConfig) -> str:
    """``pretrain-<data>-<model>-<time>``: pretraining runs stand out in the runs table."""
    return "pretrain-" + runs.new_run_name(config)


def start_pretraining(config: PretrainConfig, name: str | None = None) -> Path:
    """Check the config, create a pretraining run in the workspace and launch it in the background."""
    check_config(config)
    check_jobs(runs.active_runs())  # every job slot taken: refused before a run folder exists
    run_dir = runs.create_run(config, name or pretrain_run_name(config))
    runs.launch_new(run_dir)
    return run_dir


UPLOADS_DIR = "texts"  # workspace folder for uploaded text files


def upload_path(file_name: str) -> Path:
    """Where an uploaded text file named ``file_name`` is kept in the workspace (see :func:`save_upload`)."""
    return workspace_dir() / UPLOADS_DIR / file_name


def save_upload(file_name: str, data: bytes) -> Path:
    """Keep an uploaded text file in the workspace's texts/ folder, once it is known to hold some text; its path."""
    if not split_documents(data.decode("utf-8", errors="replace")):
        raise BmcoreError(f"{file_name} has no text; put one document per line or per blank-line block")
    folder = workspace_dir() / UPLOADS_DIR
    folder.mkdir(exist_ok=True)
    path = inside(folder, check_name(Path(file_name).name, "file name"))
    path.write_bytes(data)
    return path
