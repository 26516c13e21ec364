"""What the server scores with: the model behind ``python -m bmcore serve``, loaded once.

:class:`TorchScorer` wraps :mod:`bmcore.inference` (:func:`~bmcore.inference.load_for_inference` and
:meth:`~bmcore.inference.Classifier.predict_proba`: the same fast path as ``bmcore predict``, inputs sorted by length
and padded per batch). :class:`OnnxScorer` runs the ONNX file that ``bmcore export --format onnx`` writes
(:mod:`bmcore.export.onnx`) in ONNX Runtime. Both give the raw logits of a batch; the model's task turns them into
scores (:mod:`bmcore.serve.shapes`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import runs
from ..errors import BmcoreError
from ..export.onnx import ONNX_FILE, export_onnx, onnx_dir, read_onnx_export
from ..inference import PAD_MULTIPLE, load_for_inference
from ..modalities import modality_of
from ..modalities.image import decode, pixel_values, processor_size
from ..model_meta import read_model_meta
from ..models import DEFAULT_MAX_SEQ_LENGTH, ModelRef, load_config
from ..tasks import task_of_model

WARM_UP_TOKENS = 64  # the longest request the warm-up scores: most requests are shorter; longer ones add a few shapes


def cores() -> int:
    """The threads the model gets: ``OMP_NUM_THREADS`` when set (the usual way to give a process fewer threads, e.g.
    several servers or test workers on one machine), else every core this process may use (its affinity, as a
    container's CPU set limits it)."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Scorer:
    """A loaded model: its labels, task, ``bmcore.json`` facts and how one batch of inputs becomes logits."""

    source: str  # the model as given on the command line
    backend: str  # "pytorch" or "onnxruntime"
    config: Any  # the model's transformers config
    meta: dict[str, Any] = field(default_factory=dict)
    max_seq_length: int | None = None
    processor: Any = None  # the tokenizer or image processor saved with the model
    model_dir: Path | None = None  # the PyTorch model folder (a run's model/ holds bmcore.json beside the weights)

    @property
    def label_names(self) -> list[str]:
        id2label = self.config.id2label
        return [str(id2label[i]) for i in range(len(id2label))]

    @property
    def task(self) -> Any:
        """The model's task (:mod:`bmcore.tasks`): it turns logits into scores and decisions."""
        return task_of_model(self.config)

    @property
    def modality(self) -> Any:
        """The model's modality (:mod:`bmcore.modalities`): ``pictures`` says whether inputs are image files."""
        return modality_of(self.config)

    def logits(self, inputs: list[Any]) -> list[np.ndarray | Exception]:
        """Each input's logits [outputs], or the one-line error that refused it (an image that does not decode):
        one bad input fails alone, not its batch. Texts are ``(text, text_pair or None)``, images file bytes."""
        if not self.modality.pictures:
            return self._text_logits(inputs)
        decoded: list[Any] = []
        for data in inputs:  # a batch mixes requests: a refusal is named by the request (bmcore.serve.service)
            try:
                decoded.append(decode(data, "the image", self.load_side))
            except BmcoreError as exc:
                decoded.append(exc)
        good = [i for i, img in enumerate(decoded) if not isinstance(img, Exception)]
        out: list[Any] = list(decoded)
        if good:
            rows = self._image_logits([decoded[i] for i in good])
            for k, i in enumerate(good):
                out[i] = rows[k]
        return out

    def _text_logits(self, inputs: list[tuple[str, str | None]]) -> list[np.ndarray | Exception]:
        # Texts with a pair and texts without are scored apart: an empty pair is not the same as none.
        out: list[Any] = [None] * len(inputs)
        for paired in (False, True):
            idx = [i for i, (_, pair) in enumerate(inputs) if (pair is not None) == paired]
            if idx:
                rows = self._texts([inputs[i][0] for i in idx], [inputs[i][1] for i in idx] if paired else None)
                for k, i in enumerate(idx):
                    out[i] = rows[k]
        return out

    @property
    def load_side(self) -> int | None:
        """The shorter side an image is reduced to on load: twice the model's input side."""
        side = processor_size(self.processor)
        return 2 * side if side else None

    def _texts(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        raise NotImplementedError

    def _image_logits(self, images: list[Any]) -> np.ndarray:
        raise NotImplementedError


@dataclass
class TorchScorer(Scorer):
    """A model on PyTorch through :func:`bmcore.inference.load_for_inference`."""

    classifier: Any = None
    batch_size: int = 64

    def _texts(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        # few_shapes: a long-lived server sees every batch size and length; unbounded shapes grow its memory for ever
        return self.classifier.predict_proba(texts, pairs, batch_size=self.batch_size, few_shapes=True).logits

    def warm_up(self) -> None:
        """Score one batch of every shape a short request can make (a power of two inputs up to the batch size, each
        :data:`WARM_UP_TOKENS` long or less), so the memory the CPU kernels keep per shape is taken before the first
        request, not during the first minutes of traffic."""
        if self.modality.pictures:
            return
        longest = min(WARM_UP_TOKENS, self.max_seq_length or WARM_UP_TOKENS)
        size = 1
        while size <= self.batch_size:
            for tokens in range(PAD_MULTIPLE, longest + 1, PAD_MULTIPLE):
                self._texts([" ".join(["a"] * max(1, tokens - 2))] * size, None)
            size *= 2

    def _image_logits(self, images: list[Any]) -> np.ndarray:
        return self.classifier.predict_proba(images, batch_size=self.batch_size).logits


@dataclass
class OnnxScorer(Scorer):
    """An ONNX export run in ONNX Runtime (fp32, on the CPU), with the tokenizer or image processor saved beside it."""

    session: Any = None

    def _texts(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        names = [i.name for i in self.session.get_inputs()]
        args = (texts, pairs) if pairs is not None else (texts,)
        enc = self.processor(*args, padding=True, max_length=self.max_seq_length, return_tensors="np",
                             truncation="longest_first" if pairs is not None else True)
        return self.session.run(["logits"], {n: enc[n].astype(np.int64) for n in names})[0]

    def _image_logits(self, images: list[Any]) -> np.ndarray:
        feed = {"pixel_values": pixel_values(self.processor, images).float().numpy()}
        return self.session.run(["logits"], feed)[0]


def load_torch_scorer(model: str, *, precision: str = "auto", batch_size: int = 64) -> TorchScorer:
    """The model a reference names (``builtin:minilm``, a run folder or its ``model/``, a model folder, a Hub id),
    loaded for inference, with torch using :func:`cores` threads."""
    import torch

    torch.set_num_threads(cores())
    clf = load_for_inference(model, precision=precision)
    scorer = TorchScorer(model, "pytorch", clf.model.config, clf.meta, clf.max_seq_length, processor=clf.tokenizer,
                         model_dir=clf.ref.path, classifier=clf, batch_size=batch_size)
    scorer.warm_up()
    return scorer


def find_onnx(model: str, *, export: bool = True) -> tuple[Path, Path | None]:
    """The ONNX file to serve for ``model``, and the PyTorch model folder it came from (its ``bmcore.json`` holds
    thresholds and ``max_seq_length``; None when unknown): a folder holding ``model.onnx``, or a run folder (or its
    ``model/``), whose export is made first when it has none, or none as fresh as its model (``export``)."""
    path = Path(model).expanduser()
    if (path / ONNX_FILE).is_file():
        origin = path.parent.parent / runs.MODEL_DIR  # <run>/export/onnx -> <run>/model
        return path / ONNX_FILE, origin if origin.is_dir() else None
    run = path.parent if path.name == runs.MODEL_DIR and runs.is_run_dir(path.parent) else path
    if not runs.is_run_dir(run):
        raise BmcoreError(f"--onnx needs a run folder or a folder holding {ONNX_FILE}; {model!r} is neither")
    if read_onnx_export(run) is None:
        if not export:
            raise BmcoreError(f"run {run.name} has no ONNX export; run python -m bmcore export {run} --format onnx")
        print(f"exporting {run.name} to ONNX (once; it is kept in {onnx_dir(run)})", flush=True)
        done = export_onnx(run)
        print(f"ONNX export written; parity with PyTorch {'passed' if done.passed else 'FAILED'}: "
              f"max |logit difference| {done.parity.get('max_abs_diff')}", flush=True)
    return onnx_dir(run) / ONNX_FILE, run / runs.MODEL_DIR


def load_onnx_scorer(model: str) -> OnnxScorer:
    """An ONNX Runtime session for ``model`` (:func:`find_onnx`), on every core this process has."""
    import onnxruntime as ort

    path, origin = find_onnx(model)
    # The export folder holds config.json and the tokenizer beside model.onnx, and no weights for resolve_model.
    mref = ModelRef(str(path.parent), "local", path=path.parent.resolve())
    config = load_config(mref)
    meta = read_model_meta(origin) if origin is not None else {}
    options = ort.SessionOptions()
    options.intra_op_num_threads = cores()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    modality = modality_of(config)
    msl = None if modality.pictures else int(meta.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
    return OnnxScorer(model, "onnxruntime", config, meta, msl, processor=modality.load_processor(mref), model_dir=origin,
                      session=session)
