"""Text: rows of one text (or a pair of texts) per example, read by a tokenizer and a sequence classifier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.columns import choose_columns
from ..data.dataset import SPLITS
from ..models import (
    BUILTIN_MODELS,
    BUILTIN_PREFIX,
    DEFAULT_MAX_SEQ_LENGTH,
    DEFAULT_MODEL,
    load_classifier,
    load_counting_tokenizer,
    load_tokenizer,
)
from ..search_space import SearchParam
from .base import Modality

LARGE_FOR_SEARCH = 10_000  # training rows from which a search also varies batch_growth


class Text(Modality):
    name = "text"
    few_shot = True
    example_noun = "rows"
    pipeline_task = "text-classification"
    pipeline_example = '"The match went to extra time."'

    def builtin_models(self) -> tuple[str, ...]:
        return tuple(BUILTIN_PREFIX + name for name in BUILTIN_MODELS)

    def reads(self, model_or_config: Any) -> bool:
        return True  # the last modality asked: every model no other modality reads

    def load_processor(self, ref: Any) -> Any:
        return load_tokenizer(ref)

    def load_model(self, ref: Any, label_names: list[str] | None = None, **kwargs: Any) -> Any:
        return load_classifier(ref, label_names, **kwargs)

    input_noun = "texts"
    data_views = ("columns", "tokens")
    default_model = DEFAULT_MODEL
    train_settings = ("max_seq_length", "freeze_embeddings", "batch_growth")

    def search_space(self, settings: dict[str, Any], dataset: Any, models: list[str]) -> list[Any]:
        """The learning rate (a quarter to four times the default, log scale), epochs, batch size, warm-up, and the
        head's learning rate (up to 30 times the default: a new head learns from nothing). Batch growth only on large
        sets: on a small one it only takes optimiser steps away (the small-data rule turns it off too)."""
        lr = float(settings.get("learning_rate") or 1e-4)
        large = len(dataset.splits["train"]) >= LARGE_FOR_SEARCH
        return [SearchParam.log("learning_rate", lr / 4, lr * 4), SearchParam.ints("num_train_epochs", 3 - large, 10),
                SearchParam.choice("per_device_train_batch_size", (16, 32) if large else (8, 16, 32)),
                *([SearchParam.choice("batch_growth", (1, 2, 4))] if large else [SearchParam.choice("batch_growth", (1,))]),
                SearchParam.floats("warmup_steps", 0.0, 0.2), SearchParam.log("head_learning_rate", lr, lr * 30)]
    builtin_title = "MiniLM"
    builtin_caption = "MiniLM-L6 (22.7M parameters, 6 layers), bundled: works offline."
    hub_example = "distilbert-base-uncased"

    def detect_problem_type(self, raw: Any, *, text_columns: list[str] | None = None, label_column: str | None = None,
                            label_columns: list[str] | None = None, label_delimiter: str | None = None) -> str:
        cols, _ = choose_columns(raw.combined(), text_columns, label_column, label_columns=label_columns,
                                 label_delimiter=label_delimiter)
        return cols.problem_type

    def counting_tokenizer(self, ref: str) -> Any:
        return load_counting_tokenizer(ref)

    def input_stats(self, ds: Any, task: Any, tokenizer: Any = None, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                    tokenizer_name: str = "", progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Token lengths (:func:`token_stats`) counted with ``tokenizer``, and its name; nothing without one."""
        if tokenizer is None:
            return {}
        return {**token_stats(ds, task, tokenizer, max_seq_length, progress),
                "tokenizer": tokenizer_name or getattr(tokenizer, "name_or_path", "")}


MODALITY = Text()


def token_lengths(texts: list[str], tokenizer: Any, pairs: list[str] | None = None, batch: int = 1000,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Token counts (with special tokens, untruncated) for each text, or each pair.

    ``progress`` is called with the number of texts counted after each batch.
    """
    out: list[int] = []
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        args = (chunk, pairs[i:i + batch]) if pairs is not None else (chunk,)
        enc = tokenizer(*args, add_special_tokens=True, truncation=False, verbose=False)
        out.extend(len(ids) for ids in enc["input_ids"])
        if progress is not None:
            progress(len(chunk))
    return np.asarray(out, dtype=np.int64)


def token_stats(ds: Any, task: Any, tokenizer: Any, max_seq_length: int,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Token lengths per split and per label over train (``task`` says which rows have each label, so a multi-label
    row counts for each of its labels), and the share truncated at ``max_seq_length``. Counting is the slow part (80 s
    for 500,000 short rows on two busy CPU cores): ``progress(done, total)`` is called as rows are counted. Adds an
    ``n_tokens`` column to every split of ``ds`` (a prepared dataset)."""
    lengths: dict[str, dict[str, Any]] = {}
    trunc_total = n_total = 0
    done, rows_total = [0], sum(len(ds.splits[s]) for s in SPLITS)

    def counted(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], rows_total)

    for s in SPLITS:
        df = ds.splits[s]
        ln = token_lengths(df["text"].tolist(), tokenizer, df["text_pair"].tolist() if "text_pair" in df else None,
                           progress=counted)
        trunc_total += int((ln > max_seq_length).sum())
        n_total += len(ln)
        ds.splits[s] = df.assign(n_tokens=ln)
        lengths[s] = length_summary(ln, max_seq_length)
    train = ds.splits["train"]
    n_tokens = train["n_tokens"].to_numpy()
    return {"token_lengths": lengths,
            "token_lengths_per_class": {n: length_summary(n_tokens[has], max_seq_length)
                                        for n, has in zip(ds.label_names, task.label_masks(train, ds.label_names),
                                                          strict=True)},
            "truncated_share": round(trunc_total / max(n_total, 1), 4)}


def length_summary(ln: np.ndarray, max_len: int) -> dict[str, Any]:
    """Count, mean, median, 95th percentile, max, and how many (and what share) exceed ``max_len``."""
    if len(ln) == 0:
        return {"count": 0}
    return {"count": int(len(ln)), "mean": round(float(ln.mean()), 1), "p50": int(np.percentile(ln, 50)),
            "p95": int(np.percentile(ln, 95)), "max": int(ln.max()),
            "truncated": int((ln > max_len).sum()), "truncated_share": round(float((ln > max_len).mean()), 4)}

