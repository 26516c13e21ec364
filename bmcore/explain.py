"""Why a text classifier predicts what it does, for one input.

:func:`explain` returns an :class:`Explanation`: the tokens, the attention of every layer
and head, the attention rollout across layers (Abnar & Zuidema, 2020), and token
attributions by Integrated Gradients (captum's ``LayerIntegratedGradients`` over the word
embeddings). :func:`attributions_html` renders attributions as shaded, HTML-escaped text.

Attributions explain the **score** of the target class that the model's task gives (the softmax probability for
single-label models, the label's sigmoid for multi-label ones, the predicted number for regression): they sum (up to
captum's convergence delta) to ``P(target | text) - P(target | baseline)``, where the
baseline keeps [CLS]/[SEP] and replaces every other token by [PAD].

Attention weights need eager attention (SDPA returns none), and Integrated Gradients
needs gradients in fp32. Both run on an eager fp32 twin of the classifier's model that is
made once per model and shares its weights when they are fp32 already; ordinary
:meth:`Classifier.predict_proba` keeps the fast SDPA/bf16 path. Image explanations
(:mod:`bmcore.explain_images`) use the same twin (:func:`eager_model`), lock, rollout and target lookup;
what the Playground shows of an explanation is worked out in :mod:`bmcore.report.playground`.
"""

from __future__ import annotations

import copy
import html
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BmcoreError
from .models import load_classifier
from .tasks import task_of_model

ATTRIBUTION_OUTPUT = "probability"  # what attributions explain by default (the task says: Task.attribution_output)
IG_STEPS = 64  # measured on a BBC News fine-tune: |delta| 17% of the output change at 32 steps, 0.4% at 64, in under 0.5 s
IG_TOKEN_BUDGET = 4096  # tokens per internal IG batch (n_steps x T); bounds memory for long inputs
SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "<cls>", "<sep>"})

_EAGER: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
# captum hooks the embedding layer (or an image model's layers) during attribute(); two threads (two Streamlit
# sessions on one cached model) must not hook the same layer at once. bmcore.explain_images holds it too.
EXPLAIN_LOCK = threading.Lock()


@dataclass
class Explanation:
    """The explanation of one input. Arrays are numpy; :meth:`to_dict` makes it JSON-ready."""

    tokens: list[str]
    token_ids: list[int]
    label: str  # predicted class
    label_id: int
    probs: dict[str, float]  # class -> probability (fp32 forward pass)
    target: str  # class the attributions explain
    target_id: int
    truncated: bool  # the input was longer than max_seq_length and was cut
    n_tokens: int  # tokens before truncation, special tokens included
    max_seq_length: int
    attentions: np.ndarray | None = None  # [layers, heads, T, T], each row sums to 1
    rollout: np.ndarray | None = None  # [T, T], attention rollout through all layers
    attributions: np.ndarray | None = None  # [T], IG summed over the embedding dimension
    delta: float | None = None  # captum's convergence delta: sum(attributions) - output_diff
    output_diff: float | None = None  # P(target | text) - P(target | baseline)
    n_steps: int = 0
    seconds: float = 0.0
    attribution_output: str = ATTRIBUTION_OUTPUT  # what the attributions explain, as the model's task says

    @property
    def cls_rollout(self) -> np.ndarray | None:
        """How much each token flows into [CLS] through all layers (row 0 of the rollout)."""
        return None if self.rollout is None else self.rollout[0]

    @property
    def cls_attention(self) -> np.ndarray | None:
        """[CLS]'s attention over the tokens in the last layer, averaged over heads."""
        return None if self.attentions is None else cls_attention(self.attentions)

    def to_dict(self, decimals: int | None = 6) -> dict[str, Any]:
        """Plain lists, floats and strings; arrays rounded to ``decimals`` (None: full precision)."""

        def arr(a: np.ndarray | None) -> Any:
            if a is None:
                return None
            return (np.round(a.astype(np.float64), decimals) if decimals is not None else a.astype(np.float64)).tolist()

        return {
            "tokens": self.tokens, "token_ids": self.token_ids, "label": self.label, "label_id": self.label_id,
            "probs": self.probs, "target": self.target, "target_id": self.target_id, "truncated": self.truncated,
            "n_tokens": self.n_tokens, "max_seq_length": self.max_seq_length,
            "attentions": arr(self.attentions), "rollout": arr(self.rollout),
            "cls_rollout": arr(self.cls_rollout), "cls_attention": arr(self.cls_attention),
            "attributions": arr(self.attributions), "attribution_output": self.attribution_output,
            "delta": self.delta, "output_diff": self.output_diff, "n_steps": self.n_steps, "seconds": self.seconds,
        }


# --- attention --------------------------------------------------------------------------


def attention_rollout(attentions: np.ndarray, residual: bool = True) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) of ``attentions`` [layers, heads, T, T] -> [T, T].

    Each layer's heads are averaged; with ``residual`` the identity is added for the skip
    connection and rows are renormalised; the layers are then multiplied from the first
    to the last, so row i says how much each input token flows into position i at the top.
    Rows of the result sum to 1.
    """
    att = np.asarray(attentions, dtype=np.float64)
    if att.ndim != 4 or att.shape[-1] != att.shape[-2]:
        raise ValueError(f"attentions must be [layers, heads, T, T], got shape {att.shape}")
    n = att.shape[-1]
    rollout = np.eye(n)
    for layer in att:
        a = layer.mean(axis=0)
        if residual:
            a = a + np.eye(n)
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a @ rollout
    return rollout


def cls_attention(attentions: np.ndarray, layer: int = -1) -> np.ndarray:
    """The [CLS] row (position 0) of one layer's attention, averaged over heads -> [T]."""
    return np.asarray(attentions, dtype=np.float64)[layer].mean(axis=0)[0]


# --- model helpers ----------------------------------------------------------------------


def eager_model(classifier: Any) -> Any:
    """An fp32 twin of ``classifier.model`` with eager attention, made once per model and cached.

    When the weights are already fp32 (CPU) the twin shares them, so it costs no weight
    memory; half-precision weights (CUDA) are copied to fp32 because Integrated Gradients
    needs fp32 gradients.
    """
    import torch

    model = classifier.model
    with EXPLAIN_LOCK:
        twin = _EAGER.get(model)
        if twin is not None:
            return twin
        fp32 = all(p.dtype == torch.float32 for p in model.parameters())
        # The memo maps each tensor to itself, so deepcopy copies modules and config but shares weights.
        memo = {id(t): t for t in [*model.parameters(), *model.buffers()]} if fp32 else {}
        twin = copy.deepcopy(model, memo)
        if not fp32:
            twin.float()
        twin.eval()
        if hasattr(twin, "set_attn_implementation"):
            twin.set_attn_implementation("eager")
        if getattr(twin.config, "_attn_implementation", "eager") != "eager":
            # A model that cannot switch at runtime: load a separate eager copy.
            twin = load_classifier(classifier.ref, attn_implementation="eager").float().eval().to(model.device)
        _EAGER[model] = twin
        return twin


def embedding_layer(model: Any) -> Any:
    """The word-embedding layer that Integrated Gradients attributes to."""
    layer = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if layer is None and hasattr(model, "bert"):
        layer = model.bert.embeddings.word_embeddings
    if layer is None:
        raise BmcoreError(f"{type(model).__name__} has no input embeddings to attribute to; use a BERT-style classifier")
    return layer


def resolve_target(label_names: Sequence[str], target: str | int | None, default: int) -> int:
    """The class id for ``target`` (a class name or id), or ``default`` when it is None."""
    if target is None:
        return int(default)
    if isinstance(target, str) and target in label_names:
        return list(label_names).index(target)
    try:
        idx = int(target)
    except (TypeError, ValueError):
        idx = -1
    if 0 <= idx < len(label_names) and not isinstance(target, bool):
        return idx
    raise BmcoreError(f"unknown target class {target!r}; choose one of {', '.join(label_names)} or an id below {len(label_names)}")


def _baseline_ids(tokenizer: Any, input_ids: Any) -> Any:
    """``input_ids`` with every token but the special ones ([CLS], [SEP]) replaced by [PAD]."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    special = tokenizer.get_special_tokens_mask(input_ids[0].tolist(), already_has_special_tokens=True)
    keep = torch.tensor(special, dtype=torch.bool, device=input_ids.device).unsqueeze(0)
    return torch.where(keep, input_ids, torch.full_like(input_ids, pad))


def integrated_gradients(model: Any, tokenizer: Any, encoding: dict[str, Any], target_id: int, *, task: Any = None,
                         n_steps: int = IG_STEPS, internal_batch_size: int | None = None) -> tuple[np.ndarray, float, float]:
    """Integrated Gradients of P(target) w.r.t. the word embeddings of one encoded input.

    Returns (attributions [T] summed over the embedding dimension, captum's convergence
    delta, P(target | input) - P(target | baseline)). Runs in fp32 with autocast off;
    ``internal_batch_size`` (default: from a token budget) bounds memory for long inputs.
    Completeness: ``attributions.sum() - delta == output_diff``, and ``delta`` is small.
    """
    import torch
    from captum.attr import LayerIntegratedGradients

    input_ids = encoding["input_ids"]
    keys = [k for k in encoding if k != "input_ids"]
    extra = tuple(encoding[k] for k in keys)

    if task is None:
        task = task_of_model(model)

    def forward(ids: Any, *rest: Any) -> Any:
        return task.torch_scores(model(input_ids=ids, **dict(zip(keys, rest, strict=True))).logits)

    baseline = _baseline_ids(tokenizer, input_ids)
    n_tok = int(input_ids.shape[1])
    ibs = internal_batch_size or max(1, min(n_steps, IG_TOKEN_BUDGET // max(n_tok, 1)))
    lig = LayerIntegratedGradients(forward, embedding_layer(model))
    with torch.autocast(device_type=input_ids.device.type, enabled=False):
        attr, delta = lig.attribute(input_ids, baselines=baseline, target=target_id, additional_forward_args=extra,
                                    n_steps=n_steps, internal_batch_size=ibs, return_convergence_delta=True)
        with torch.no_grad():
            diff = forward(input_ids, *extra)[0, target_id] - forward(baseline, *extra)[0, target_id]
    scores = attr.detach().float().sum(dim=-1)[0].cpu().numpy()
    return scores, float(delta.reshape(-1)[0]), float(diff)


# --- explain ----------------------------------------------------------------------------


def explain(classifier: Any, text: str, text_pair: str | None = None, target: str | int | None = None, *,
            n_steps: int = IG_STEPS, attention: bool = True, attributions: bool = True) -> Explanation:
    """Explain one prediction of ``classifier`` (from :func:`bmcore.inference.load_for_inference`).

    Returns the tokens, the predicted label and probabilities, and, as asked, the attention
    maps [layers, heads, T, T] with their rollout, and Integrated Gradients attributions
    for ``target`` (a class name or id; default the predicted class) with ``n_steps``
    interpolation steps. Inputs longer than ``max_seq_length`` are truncated and the
    result says so.
    """
    import torch

    t0 = time.perf_counter()
    if not isinstance(text, str) or not text.strip():
        raise BmcoreError("the text to explain is empty; enter a sentence")
    if text_pair is not None and not str(text_pair).strip():
        text_pair = None
    if not 1 <= int(n_steps) <= 1000:
        raise BmcoreError(f"n_steps must be between 1 and 1000, not {n_steps}")
    tok = classifier.tokenizer
    msl = int(classifier.max_seq_length)
    pairs = [text_pair] if text_pair is not None else None
    enc = classifier.encode([text], pairs)
    model = eager_model(classifier)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    ids = enc["input_ids"]
    n_tokens = int(ids.shape[1])
    if len(text) + len(text_pair or "") > msl - 3:  # fewer characters than tokens cannot overflow
        full = tok(text, text_pair, truncation=False, verbose=False)["input_ids"]
        n_tokens = max(n_tokens, len(full))
    names = classifier.label_names

    with EXPLAIN_LOCK, torch.inference_mode(), torch.autocast(device_type=ids.device.type, enabled=False):
        out = model(**enc, output_attentions=attention)
        probs = classifier.task.torch_scores(out.logits)[0].cpu().numpy()
        att = None
        if attention:
            if not out.attentions:
                raise BmcoreError(f"{type(model).__name__} returned no attention weights; it needs eager attention")
            att = torch.stack([a[0] for a in out.attentions]).float().cpu().numpy()
    label_id = classifier.task.top_class(probs)
    target_id = resolve_target(names, target, label_id)

    scores = delta = diff = None
    if attributions:
        with EXPLAIN_LOCK:
            scores, delta, diff = integrated_gradients(model, tok, enc, target_id, task=classifier.task, n_steps=int(n_steps))

    return Explanation(
        tokens=tok.convert_ids_to_tokens(ids[0].tolist()), token_ids=ids[0].tolist(),
        label=names[label_id], label_id=label_id, probs={n: float(p) for n, p in zip(names, probs, strict=True)},
        target=names[target_id], target_id=target_id, truncated=n_tokens > ids.shape[1], n_tokens=n_tokens,
        max_seq_length=msl, attentions=att, rollout=attention_rollout(att) if att is not None else None,
        attributions=scores, delta=delta, output_diff=diff, n_steps=int(n_steps) if attributions else 0,
        seconds=time.perf_counter() - t0, attribution_output=classifier.task.attribution_output,
    )


# --- HTML -------------------------------------------------------------------------------

_POSITIVE = (22, 163, 74)  # green: pushes towards the target class
_NEGATIVE = (220, 38, 38)  # red: pushes away from it


def attributions_html(tokens: Sequence[str], scores: Sequence[float] | np.ndarray, *, target: str | None = None,
                      hide_special: bool = True) -> str:
    """Render tokens shaded by attribution as one HTML ``<div>``, with a legend.

    Positive scores are green, negative red, and the opacity is ``|score|`` over the
    largest ``|score|`` shown. WordPiece ``##`` pieces are joined to their word (each
    piece keeps its own shade). Every token is ``html.escape``-d, so ``<script>`` shows
    as text. ``hide_special`` drops [CLS], [SEP] and [PAD].
    """
    if len(tokens) != len(scores):
        raise ValueError(f"{len(tokens)} tokens but {len(scores)} scores")
    shown = [(str(t), float(s)) for t, s in zip(tokens, scores, strict=True)
             if not (hide_special and str(t) in SPECIAL_TOKENS)]
    top = max((abs(s) for _, s in shown), default=0.0)
    spans = []
    for i, (token, score) in enumerate(shown):
        glue = token.startswith("##") and i > 0
        word = token[2:] if glue else token
        if word[:1] in ("Ġ", "▁"):  # byte-level BPE / SentencePiece word start
            word = word[1:]
        alpha = 0.85 * abs(score) / top if top > 0 else 0.0
        rgb = _POSITIVE if score >= 0 else _NEGATIVE
        spans.append(("" if glue or i == 0 else " ")
                     + f'<span title="{score:+.4f}" style="background:rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.3f});'
                     f'border-radius:3px;padding:1px 1px">{html.escape(word)}</span>')
    what = html.escape(f"“{target}”") if target is not None else "the target class"
    legend = (
        '<div style="font-size:0.8em;margin-top:0.6em;opacity:0.8">'
        f'<span style="background:rgba({_POSITIVE[0]},{_POSITIVE[1]},{_POSITIVE[2]},0.7);padding:0 0.6em">&nbsp;</span> '
        f'supports {what} &nbsp; '
        f'<span style="background:rgba({_NEGATIVE[0]},{_NEGATIVE[1]},{_NEGATIVE[2]},0.7);padding:0 0.6em">&nbsp;</span> '
        f'opposes {what} &nbsp; (shade ∝ |attribution|, max {top:.3g})</div>'
    )
    return f'<div class="bmcore-attributions" style="line-height:1.9">{"".join(spans)}{legend}</div>'

