"""Fast batched inference with a loaded classifier.

:class:`Classifier` holds a tokenizer and a model on the detected device. ``predict_proba``
sorts inputs by length and pads each batch dynamically, runs under ``torch.inference_mode``
and, where the device has it, bf16/fp16 autocast. Evaluation, the Playground and the CLI
all use it, so there is one inference path to make fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .device import autocast_dtype, detect_device, inference_placement, select_precision
from .errors import BmcoreError
from .modalities import modality_of
from .modalities.image import decode, pixel_values, processor_size
from .model_meta import read_model_meta, saved_temperature
from .models import DEFAULT_MAX_SEQ_LENGTH, ModelRef, load_config, resolve_model
from .tasks import task_of_model

PAD_MULTIPLE = 8  # tokens: with few_shapes, a batch is padded to a multiple of this (at most 7 tokens of padding)


@dataclass
class Prediction:
    """Predictions for a list of inputs: scores [n, labels] from the model's task (class probabilities; a regression
    model's score, [n, 1]), its decisions (``labels``), the label names."""

    label_names: list[str]
    probs: np.ndarray
    logits: np.ndarray
    truncated: np.ndarray  # bool per input: longer than max_seq_length
    seconds: float = 0.0
    calibrated_probs: np.ndarray | None = None
    labels: list[Any] = field(default_factory=list)  # per input: a class name, a list of names (multi-label), a score
    thresholds: list[float] | None = None  # per label, for a task that decides by thresholds


@dataclass
class Classifier:
    """A tokenizer and a sequence-classification model, ready for inference."""

    ref: ModelRef
    tokenizer: Any
    model: Any
    precision: str
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        """Class names in id order, from the model's ``id2label``."""
        id2label = self.model.config.id2label
        return [str(id2label[i]) for i in range(len(id2label))]

    @property
    def task(self) -> Any:
        """The model's task (:mod:`bmcore.tasks`), from ``config.problem_type``: it turns logits into scores and labels."""
        return task_of_model(self.model)

    @property
    def problem_type(self) -> str:
        return self.task.problem_type

    @property
    def thresholds(self) -> list[float] | None:
        """Each label's decision threshold (multi-label: tuned on validation, saved with the model)."""
        return self.task.thresholds(self.label_names, self.meta)

    @property
    def temperature(self) -> float | None:
        """The temperature fitted on validation data and saved with the model, if any."""
        return saved_temperature(self.meta)

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, padding: bool = True) -> Any:
        """Tokenise with truncation at ``max_seq_length`` (pairs truncate the longer side first)."""
        args = (list(texts), list(pairs)) if pairs is not None else (list(texts),)
        return self.tokenizer(*args, truncation="longest_first" if pairs is not None else True,
                              max_length=self.max_seq_length, padding=padding, return_tensors="pt" if padding else None)

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, batch_size: int = 64,
                      token_budget: int = 8192, progress: Callable[[int, int], None] | None = None,
                      few_shapes: bool = False) -> Prediction:
        """The task's scores for every input (class probabilities; a regression model's score), in input order.

        Inputs are sorted by length and grouped into batches of at most ``batch_size``
        inputs and ``token_budget`` padded tokens, so short texts go fast and long texts
        do not run out of memory.

        ``few_shapes`` (a long-lived server) keeps the set of tensor shapes small: batches of a power of two inputs,
        padded to a multiple of :data:`PAD_MULTIPLE` tokens. Every new shape costs the CPU kernels' caches and the
        allocator memory they keep, so a server fed batches of every size and length grows without end
        (measured: +170% over 600 random batches); with few shapes it levels off after the first hundred.
        """
        import torch

        t0 = time.perf_counter()
        n = len(texts)
        if pairs is not None and len(pairs) != n:
            raise ValueError("texts and pairs must have the same length")
        enc = self.encode(texts, pairs, padding=False)
        ids = enc["input_ids"]
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        full = self._untruncated_lengths(texts, pairs)
        order = np.argsort(-lengths, kind="stable")
        logits = np.zeros((n, len(self.label_names)), dtype=np.float32)
        device = self.model.device
        dtype = autocast_dtype(self.precision)
        weights = next(self.model.parameters()).dtype
        done = 0
        i = 0
        with torch.inference_mode():
            while i < n:
                longest = int(lengths[order[i]])
                size = max(1, min(batch_size, token_budget // max(longest, 1), n - i))
                if few_shapes:
                    size = 1 << (size.bit_length() - 1)  # the largest power of two that fits
                idx = order[i:i + size]
                multiple = PAD_MULTIPLE if few_shapes and -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE <= self.max_seq_length else None
                batch = self.tokenizer.pad({k: [enc[k][j] for j in idx] for k in enc.keys()}, return_tensors="pt",
                                           pad_to_multiple_of=multiple)
                batch = {k: v.to(device) for k, v in batch.items()}
                # Weights already in half precision need no autocast (its casts cost time on a CPU).
                with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None and weights != dtype):
                    out = self.model(**batch).logits
                logits[idx] = out.float().cpu().numpy()
                i += len(idx)
                done += len(idx)
                if progress is not None:
                    progress(done, n)
        return self._prediction(logits, full > self.max_seq_length, time.perf_counter() - t0)

    def predict_frame(self, df: Any, *, batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> Prediction:
        """Predictions for the rows of a prepared split (columns text, and text_pair for pairs)."""
        if "text" not in df or "label" not in df:
            raise BmcoreError("the split needs 'text' and 'label' columns; prepare the dataset first")
        pairs = df["text_pair"].fillna("").astype(str).tolist() if "text_pair" in df else None
        return self.predict_proba(df["text"].fillna("").astype(str).tolist(), pairs, batch_size=batch_size, progress=progress)

    def _prediction(self, logits: np.ndarray, truncated: np.ndarray, seconds: float) -> Prediction:
        """Scores, calibrated scores and decisions from logits, by the model's task."""
        task = self.task
        probs = task.scores(logits, self.meta)
        calibrated = task.scores(logits, self.meta, calibrated=True) if self.temperature else None
        return Prediction(self.label_names, probs, logits, truncated, seconds, calibrated,
                          task.decide(probs, self.label_names, self.meta), self.thresholds)

    def _untruncated_lengths(self, texts: Sequence[str], pairs: Sequence[str] | None) -> np.ndarray:
        # Cheap check first: a text with fewer characters than max_seq_length - 2 cannot exceed it.
        out = np.zeros(len(texts), dtype=np.int64)
        long = [i for i, t in enumerate(texts) if len(t) + (len(pairs[i]) if pairs is not None else 0) > self.max_seq_length - 3]
        if long:
            args = ([texts[i] for i in long],) + (([pairs[i] for i in long],) if pairs is not None else ())
            enc = self.tokenizer(*args, truncation=False, verbose=False)
            out[long] = [len(x) for x in enc["input_ids"]]
        return out


@dataclass
class ImageClassifier(Classifier):
    """An image processor (in ``tokenizer``, set to the training image size) and an image-classification model."""

    max_seq_length: int | None = None  # type: ignore[assignment]  # images have no tokens

    @property
    def processor(self) -> Any:
        return self.tokenizer

    @property
    def load_side(self) -> int | None:
        """The shorter side image bytes are reduced to on load (at least twice the model's input side; None when the
        processor names no size): memory per image stays small whatever the file's size."""
        side = processor_size(self.processor)
        return 2 * side if side else None

    def predict_proba(self, images: Sequence[Any], pairs: Sequence[str] | None = None, *, batch_size: int = 64,  # type: ignore[override]
                      token_budget: int = 0, progress: Callable[[int, int], None] | None = None,
                      names: Sequence[str] | None = None) -> Prediction:
        """Class probabilities for images (PIL images, or image file bytes, named in refusals by ``names``), in input
        order: resized and normalised by the saved image processor, as ``pipeline("image-classification")`` does.
        Bytes are decoded one batch at a time and reduced on load (:attr:`load_side`), so memory stays bounded."""
        import torch

        t0 = time.perf_counter()
        n = len(images)
        logits = np.zeros((n, len(self.label_names)), dtype=np.float32)
        device = self.model.device
        weights = next(self.model.parameters()).dtype
        with torch.inference_mode():
            for i in range(0, n, max(1, batch_size)):
                part = [decode(im, names[i + k] if names is not None else f"image {i + k + 1}", self.load_side)
                        if isinstance(im, (bytes, bytearray, memoryview)) else im.convert("RGB")
                        for k, im in enumerate(images[i:i + batch_size])]
                x = pixel_values(self.processor, part).to(device=device, dtype=weights)
                logits[i:i + len(part)] = self.model(pixel_values=x).logits.float().cpu().numpy()
                if progress is not None:
                    progress(i + len(part), n)
        return self._prediction(logits, np.zeros(n, dtype=bool), time.perf_counter() - t0)

    def predict_frame(self, df: Any, *, batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> Prediction:
        """Predictions for the rows of a prepared image split (an ``image`` column of image bytes)."""
        if "image" not in df or "label" not in df:
            raise BmcoreError("the split needs 'image' and 'label' columns; prepare the image dataset first")
        return self.predict_proba(df["image"].tolist(), batch_size=batch_size, progress=progress)


def _records(pred: Prediction, task: Any, meta: dict[str, Any], calibrated: bool) -> list[dict[str, Any]]:
    """One record per input, as the model's ``task`` writes a prediction (:meth:`bmcore.tasks.base.Task.record`),
    with ``truncated`` (see :func:`predict`)."""
    names = pred.label_names
    records = []
    for i, decision in enumerate(pred.labels):
        rec = task.record(decision, pred.probs[i], names, meta) | {"truncated": bool(pred.truncated[i])}
        if calibrated and pred.calibrated_probs is not None:
            rec["calibrated_scores"] = {n: float(p) for n, p in zip(names, pred.calibrated_probs[i], strict=True)}
        records.append(rec)
    return records


def predict_images(classifier: ImageClassifier, images: Sequence[Any], calibrated: bool = False, *,
                   batch_size: int = 64, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One record per image (PIL images or image file bytes, decoded a batch at a time; ``names`` name them in a
    refusal), as :func:`predict` gives for texts."""
    images = list(images)
    if not images:
        raise BmcoreError("no images to predict; give at least one image")
    if not isinstance(classifier, ImageClassifier):
        raise BmcoreError("this model classifies text, not images; give a text, or an image model")
    return _records(classifier.predict_proba(images, batch_size=batch_size, names=names), classifier.task,
                    classifier.meta, calibrated)


def predict(classifier: Classifier, texts: Sequence[str], pairs: Sequence[str] | None = None,
            calibrated: bool = False, *, batch_size: int = 64) -> list[dict[str, Any]]:
    """One record per input, as the model's task writes a prediction, with ``truncated``: a classifier's hold
    ``label`` and ``scores`` (class -> probability); a regression model's hold ``score``, the predicted number.

    A multi-label model's records hold ``labels`` (the predicted set, each label's score against its threshold)
    and ``thresholds`` (label -> threshold); their ``label`` is the top-scoring label.

    With ``calibrated`` and a temperature saved with the model, records also hold
    ``calibrated_scores`` (temperature-scaled probabilities). Batches internally through
    :meth:`Classifier.predict_proba`.
    """

    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise BmcoreError("no texts to predict; give at least one text")
    if any(not isinstance(t, str) for t in texts):
        raise BmcoreError("every text must be a string")
    blank = [i + 1 for i, t in enumerate(texts) if not t.strip()]
    if blank:
        which = "the text is" if len(texts) == 1 else f"text {blank[0]} of {len(texts)} is"
        raise BmcoreError(f"{which} empty; type a sentence")
    if pairs is not None:
        pairs = [pairs] * len(texts) if isinstance(pairs, str) else list(pairs)
        if len(pairs) != len(texts):
            raise BmcoreError(f"{len(texts)} texts but {len(pairs)} text pairs; give one pair per text")
    if isinstance(classifier, ImageClassifier):
        raise BmcoreError("this model classifies images, not text; give image files")
    return _records(classifier.predict_proba(texts, pairs, batch_size=batch_size), classifier.task, classifier.meta,
                    calibrated)


def load_for_inference(ref: str | ModelRef, *, precision: str = "auto", attn_implementation: str | None = None,
                       max_seq_length: int | None = None) -> Classifier:
    """Load a classifier from any model reference onto the detected device, in eval mode.

    With fp16/bf16 precision (CUDA, or a CPU with bf16) the weights are cast to it; in
    fp32 they stay fp32. ``max_seq_length`` defaults to what training saved,
    else the training default, capped by the model's position embeddings.
    """
    import torch

    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    saved_temperature(read_model_meta(mref.path))  # a damaged temperature is refused before the weights load
    device = detect_device()
    prec, _ = select_precision(precision, device)
    modality = modality_of(load_config(mref))
    tok = modality.load_processor(mref)  # images: saved at the training image size
    model = modality.load_model(mref, **({"attn_implementation": attn_implementation} if attn_implementation else {}))
    model.eval()
    kind, weights = inference_placement(prec, device)
    if weights != "fp32":
        # Inference only: half-precision weights are faster than autocast (measured 1.15x on a 2-core
        # AVX512-BF16 CPU); Integrated Gradients uses its own fp32 copy (bmcore.explain).
        model.to(dtype=autocast_dtype(weights))
    model.to(torch.device(kind))
    meta = read_model_meta(mref.path)
    if modality.pictures:  # an image processor, no tokens and no max_seq_length
        return ImageClassifier(mref, tok, model, prec, None, meta)
    limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    if getattr(model.config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        limit -= 2
    msl = int(max_seq_length or meta.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
    return Classifier(mref, tok, model, prec, min(msl, limit), meta)
