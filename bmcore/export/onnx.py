"""The ONNX export: ``export/onnx/model.onnx`` (fp32, opset 17) with the tokenizer or image processor and config
beside it, and ``parity.json``: ONNX Runtime's logits against PyTorch's on the test split.

This module is ``bmcore.export.onnx``; ``import onnx`` below is absolute and loads the real onnx package.
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import runs
from ..data import load_prepared
from ..errors import BmcoreError
from ..evaluation_files import PREDICTIONS_FILE, read_predictions
from ..files import atomic_path, write_json_atomic
from ..modalities.image import decode, pixel_values
from ..model_meta import read_model_meta
from ..models import DEFAULT_MAX_SEQ_LENGTH, load_classifier, load_tokenizer
from ..tasks import task_of_model
from ..vision import load_image_classifier, load_image_processor
from .run import export_dir, export_is_fresh, finished_run, is_image_model_folder, read_or_empty

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
PARITY_FILE = "parity.json"
ONNX_OPSET = 17
PARITY_ATOL = 1e-3  # max |logit difference| accepted between ONNX Runtime and PyTorch, both fp32
PARITY_MAX_EXAMPLES = 500  # test examples compared by default (the first ones, in split order)


@dataclass
class OnnxExport:
    """An ONNX export and its parity check against PyTorch."""

    path: Path
    parity: dict[str, Any]

    @property
    def passed(self) -> bool:
        """True when ONNX Runtime matched PyTorch within tolerance on every compared example."""
        return bool(self.parity.get("passed"))


def onnx_dir(run_dir: str | Path) -> Path:
    """Where a run's ONNX export goes: ``<run>/export/onnx``."""
    return export_dir(run_dir) / ONNX_DIR


def _load_fp32(model_dir: Path) -> tuple[Any, Any]:
    """(tokenizer or image processor, model) in fp32 with eager attention, which traces to plain ONNX ops."""
    import torch

    if is_image_model_folder(model_dir):
        model = load_image_classifier(str(model_dir), attn_implementation="eager", dtype=torch.float32).float().eval()
        return load_image_processor(str(model_dir)), model
    model = load_classifier(str(model_dir), attn_implementation="eager", dtype=torch.float32).float().eval()
    return load_tokenizer(str(model_dir)), model


def _input_names(tokenizer: Any, model: Any) -> list[str]:
    params = inspect.signature(model.forward).parameters
    if "pixel_values" in params:
        return ["pixel_values"]
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names and n in params]


def _feeds(tokenizer: Any, names: list[str], texts: list[Any], pairs: list[str] | None, max_seq_length: int) -> dict[str, Any]:
    """ONNX inputs (numpy) for a batch: image bytes through the image processor, or texts through the tokenizer."""
    if names == ["pixel_values"]:
        images = [decode(t, f"test image {i + 1}") if isinstance(t, (bytes, bytearray, memoryview)) else t
                  for i, t in enumerate(texts)]
        return {"pixel_values": pixel_values(tokenizer, images).float().numpy()}
    enc = tokenizer(*((texts,) + ((pairs,) if pairs is not None else ())), padding=True, max_length=max_seq_length,
                    truncation="longest_first" if pairs is not None else True, return_tensors="np")
    return {n: enc[n].astype(np.int64) for n in names}


def _test_texts(run_dir: Path, limit: int) -> tuple[list[str], list[str] | None, int]:
    """The first ``limit`` test texts (and pairs) of the run's dataset, and the split's full size."""
    config = read_or_empty(run_dir / runs.CONFIG_FILE)
    try:
        df = load_prepared(str(config.get("dataset", ""))).splits["test"]
    except (BmcoreError, KeyError, OSError):
        # The prepared dataset is gone; the saved test predictions hold the same texts.
        path = run_dir / runs.EVALUATION_DIR / "test" / PREDICTIONS_FILE
        if not path.is_file():
            raise BmcoreError(f"no test split to check ONNX parity on: dataset {config.get('dataset')!r} is not prepared "
                              "in this workspace and the run has no saved test predictions") from None
        df = read_predictions(path.parent)
    if len(df) == 0:
        raise BmcoreError("the test split is empty; nothing to check ONNX parity on")
    head = df.head(limit)
    if "image" in head:  # an image dataset: the images' bytes (saved test predictions hold no images)
        return head["image"].tolist(), None, len(df)
    pairs = head["text_pair"].fillna("").astype(str).tolist() if "text_pair" in head else None
    return head["text"].fillna("").astype(str).tolist(), pairs, len(df)


def check_onnx_parity(onnx_path: str | Path, model_dir: str | Path, texts: list[Any], pairs: list[str] | None = None, *,
                      max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH, batch_size: int = 32, atol: float = PARITY_ATOL) -> dict[str, Any]:
    """Compare ONNX Runtime's logits with PyTorch's (fp32) on ``texts`` (image bytes, for an image model); return
    JSON-ready results.

    ``max_abs_diff`` is the largest |logit difference| over every example and class (a regression model's logit is
    its score), and the task's agreement (:attr:`bmcore.tasks.base.Task.agreement_key`) the share of examples whose
    prediction is the same, as the model's task makes it from the logits: ``label_agreement`` for a classifier (the
    argmax class, or the whole label set at the thresholds saved in ``bmcore.json``), ``score_agreement`` for a
    regression model (the score within ``atol``); ``output`` names what was compared (``logit`` or ``score``).
    ``passed`` when the difference is within ``atol`` and every prediction agrees.
    """
    import onnxruntime as ort
    import torch

    tokenizer, model = _load_fp32(Path(model_dir))
    names = _input_names(tokenizer, model)
    task, meta = task_of_model(model), read_model_meta(model_dir)
    label_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    t_torch = t_ort = 0.0
    diffs, agree = [], 0
    for i in range(0, len(texts), batch_size):
        feed = _feeds(tokenizer, names, texts[i:i + batch_size], pairs[i:i + batch_size] if pairs is not None else None,
                      max_seq_length)
        t0 = time.perf_counter()
        with torch.inference_mode():
            ref = model(**{n: torch.from_numpy(v) for n, v in feed.items()}).logits.numpy()
        t1 = time.perf_counter()
        got = session.run(["logits"], feed)[0]
        t_ort += time.perf_counter() - t1
        t_torch += t1 - t0
        diffs.append(float(np.abs(got - ref).max()))
        agree += task.agreeing(got, ref, label_names, meta, atol)
    n = len(texts)
    max_diff = max(diffs, default=0.0)
    return {"n": n, "max_abs_diff": max_diff, task.agreement_key: agree / n if n else None, "atol": atol,
            "problem_type": task.problem_type, "output": task.output_name,
            "passed": bool(n and max_diff <= atol and agree == n), "max_seq_length": max_seq_length,
            "torch_seconds": round(t_torch, 3), "onnxruntime_seconds": round(t_ort, 3),
            "onnxruntime": ort.__version__, "torch": torch.__version__}


def export_onnx(run: str | Path, out: str | Path | None = None, *, max_examples: int | None = PARITY_MAX_EXAMPLES,
                atol: float = PARITY_ATOL) -> OnnxExport:
    """Export a finished run's model to ONNX (fp32, opset 17) and check it against PyTorch on the test split.

    Writes ``model.onnx`` with the tokenizer and config beside it (so the folder is
    self-contained) and ``parity.json`` into ``out`` (default ``<run>/export/onnx``).
    ``max_examples`` caps the test examples compared (the first ones; None for all).
    Uses the TorchScript exporter (``dynamo=False``): it needs no extra package and traces
    BERT-family encoders exactly, with dynamic batch and sequence axes.
    """
    import torch

    if max_examples is not None and max_examples < 1:
        raise BmcoreError("max_examples must be a positive number of test examples")
    run_dir = finished_run(run)
    model_dir = run_dir / runs.MODEL_DIR
    target = Path(out) if out is not None else onnx_dir(run_dir)
    target.mkdir(parents=True, exist_ok=True)
    tokenizer, model = _load_fp32(model_dir)
    names = _input_names(tokenizer, model)

    class Logits(torch.nn.Module):  # named inputs in a fixed order, and the logits alone as output
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True))).logits

    image = names == ["pixel_values"]
    texts, pairs, total = _test_texts(run_dir, max_examples or 10**9)
    if image:  # two test images at the processor's size; only the batch axis varies (the size is fixed by the processor)
        sample = {n: torch.from_numpy(v) for n, v in _feeds(tokenizer, names, texts[:2], None, 0).items()}
        axes = {"pixel_values": {0: "batch"}, "logits": {0: "batch"}}
    else:
        sample = tokenizer(["an example to trace", "a second, longer example to trace the padding"], padding=True,
                           return_tensors="pt")
        axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    import onnx

    with atomic_path(target / ONNX_FILE) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's warnings concern shapes that the dynamic axes cover
            # The wrapper must be in eval mode: the exporter restores the module's mode afterwards, and a wrapper in
            # training mode would switch dropout back on in the PyTorch reference.
            try:
                torch.onnx.export(Logits(model).eval(), tuple(sample[n] for n in names), str(tmp), input_names=names,
                                  output_names=["logits"], dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
            except Exception as exc:  # an operator the exporter cannot write: say which architecture, in one line
                reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
                raise BmcoreError(f"{model.config.model_type} models cannot be exported to ONNX here: {reason}") from None
        onnx.checker.check_model(str(tmp))  # a malformed graph fails here, with onnx's reason, not in a user's runtime
    tokenizer.save_pretrained(str(target))
    model.config.save_pretrained(str(target))

    meta = read_model_meta(model_dir)
    msl = int(meta.get("max_seq_length") or read_or_empty(run_dir / runs.CONFIG_FILE).get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
    parity = check_onnx_parity(target / ONNX_FILE, model_dir, texts, pairs, max_seq_length=msl, atol=atol)
    parity.update(split="test", split_size=total, sample="all" if len(texts) == total else f"first {len(texts)}",
                  opset=ONNX_OPSET, file=ONNX_FILE, created=runs.now())
    write_json_atomic(target / PARITY_FILE, parity)
    return OnnxExport(target / ONNX_FILE, parity)


def read_onnx_export(run_dir: str | Path) -> OnnxExport | None:
    """The run's ONNX export and its parity result, or None when there is none or the model is newer."""
    run_dir = Path(run_dir)
    path = onnx_dir(run_dir) / ONNX_FILE
    parity = read_or_empty(onnx_dir(run_dir) / PARITY_FILE)
    if not parity or not export_is_fresh(path, run_dir / runs.MODEL_DIR):
        return None
    return OnnxExport(path, parity)
