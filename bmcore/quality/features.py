"""Label quality, step one and two: a feature vector per row, and out-of-fold class probabilities from it.

Features come from a frozen encoder (:func:`embed_texts`: the mean-pooled last hidden states of
``builtin:minilm``, the default) or TF-IDF word uni- and bigrams (:func:`tfidf_features`, no model needed). k-fold
cross-validation of logistic regression on them (:func:`out_of_fold_probs`) scores each row by a model that never
saw it, so a wrong label cannot vouch for itself. The text check (:mod:`bmcore.quality.texts`) and the image check
(:mod:`bmcore.quality.images`) both use these; nothing here knows a task.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..device import autocast_dtype, detect_device, inference_placement, select_precision
from ..models import from_pretrained_safely, load_tokenizer, resolve_model

ENCODERS = ("builtin:minilm", "tfidf")
DEFAULT_ENCODER = "builtin:minilm"
DEFAULT_FOLDS = 5
EMBED_MAX_SEQ_LENGTH = 128  # tokens: enough for a sentence's gist; the mean of the first 128 tokens for long texts
EMBED_BATCH = 64  # texts embedded at a time (images: bmcore.modalities.image.IMAGE_EMBED_BATCH)
LOGREG_C = 1.0  # on L2-normalised embeddings; fixed, not tuned

Progress = Callable[[int, int, str], None]


def embed_texts(ref: str, texts: list[str], pairs: list[str] | None = None, *,
                max_seq_length: int = EMBED_MAX_SEQ_LENGTH, batch_size: int = EMBED_BATCH, precision: str = "auto",
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """L2-normalised mean-pooled last hidden states of a frozen encoder, [n, hidden], in input order.

    Texts are sorted by length and padded per batch, so short texts cost little; weights are cast to bf16 where the
    device has it (:func:`bmcore.device.select_precision`), and pooling is done in fp32.
    """
    import torch
    from transformers import AutoModel

    mref = resolve_model(ref)
    tok = load_tokenizer(mref)
    model = from_pretrained_safely(AutoModel, mref, use_safetensors=True)
    model.eval()
    device = detect_device()
    kind, weights = inference_placement(select_precision(precision, device)[0], device)
    if weights != "fp32":
        model.to(dtype=autocast_dtype(weights))
    model.to(torch.device(kind))
    args = (texts, pairs) if pairs is not None else (texts,)
    enc = tok(*args, truncation="longest_first" if pairs is not None else True, max_length=max_seq_length)
    ids = enc["input_ids"]
    order = np.argsort([-len(x) for x in ids], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tok.pad({k: [enc[k][j] for j in idx] for k in keys}, return_tensors="pt")
            batch = {k: v.to(kind) for k, v in batch.items()}
            hidden = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
    return out


def tfidf_features(texts: list[str]) -> Any:
    """TF-IDF word uni- and bigram rows, L2-normalised (sparse), for the classifier and for neighbours alike."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode").fit_transform(texts).tocsr()


def out_of_fold_probs(features: Any, labels: np.ndarray, n_classes: int, *, folds: int = DEFAULT_FOLDS, seed: int = 0,
                      c: float = LOGREG_C, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Class probabilities [n, n_classes] for each row from a logistic regression fitted on the other folds.

    Stratified folds; a class with fewer rows than ``folds`` is spread as far as it goes (a fold that never saw a
    class gives it probability 0, which the row's own label then exposes as doubtful, as it should be).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels, minlength=n_classes)
    k = int(max(2, min(folds, counts[counts > 0].max())))
    probs = np.zeros((len(labels), n_classes), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has only 1 member": handled above
        splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    for i, (train, held) in enumerate(splits):
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features[train], labels[train])
        probs[np.ix_(held, clf.classes_)] = clf.predict_proba(features[held])
        if progress is not None:
            progress(i + 1, k)
    return probs
