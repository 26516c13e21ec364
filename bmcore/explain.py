"""Why a classifier predicts what it does, for one input.

:func:`explain` returns an :class:`Explanation`: the tokens, the attention of every layer
and head, the attention rollout across layers (Abnar & Zuidema, 2020), and token
attributions by Integrated Gradients (captum's ``LayerIntegratedGradients`` over the word
embeddings). :func:`attributions_html` renders attributions as shaded, HTML-escaped text.

Attributions explain the **score** of the target class that the model's task gives (the softmax probability for
single-label models, the label's sigmoid for multi-label ones): they sum (up to
captum's convergence delta) to ``P(target | text) - P(target | baseline)``, where the
baseline keeps [CLS]/[SEP] and replaces every other token by [PAD].

Attention weights need eager attention (SDPA returns none), and Integrated Gradients
needs gradients in fp32. Both run on an eager fp32 twin of the classifier's model that is
made once per model and shares its weights when they are fp32 already; ordinary
:meth:`Classifier.predict_proba` keeps the fast SDPA/bf16 path.
"""

from __future__ import annotations

import html
import json
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .display import md, plot_texts
from .errors import BmcoreError

ATTRIBUTION_OUTPUT = "probability"  # what attributions explain: the target's probability (softmax, or its sigmoid)
IG_STEPS = 64  # measured on a BBC News fine-tune: |delta| 17% of the output change at 32 steps, 0.4% at 64, in under 0.5 s
IG_TOKEN_BUDGET = 4096  # tokens per internal IG batch (n_steps x T); bounds memory for long inputs
SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "<cls>", "<sep>"})

_EAGER: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
# captum hooks the embedding layer during attribute(); two threads (two Streamlit sessions
# on one cached model) must not hook the same layer at once.
_LOCK = threading.Lock()


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
            "attributions": arr(self.attributions), "attribution_output": ATTRIBUTION_OUTPUT,
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
    import copy

    import torch

    model = classifier.model
    with _LOCK:
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
            from .models import load_classifier

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
        from .tasks import task_of_model

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

    with _LOCK, torch.inference_mode(), torch.autocast(device_type=ids.device.type, enabled=False):
        out = model(**enc, output_attentions=attention)
        probs = classifier.task.torch_scores(out.logits)[0].cpu().numpy()
        att = None
        if attention:
            if not out.attentions:
                raise BmcoreError(f"{type(model).__name__} returned no attention weights; it needs eager attention")
            att = torch.stack([a[0] for a in out.attentions]).float().cpu().numpy()
    label_id = int(probs.argmax())
    target_id = resolve_target(names, target, label_id)

    scores = delta = diff = None
    if attributions:
        with _LOCK:
            scores, delta, diff = integrated_gradients(model, tok, enc, target_id, task=classifier.task, n_steps=int(n_steps))

    return Explanation(
        tokens=tok.convert_ids_to_tokens(ids[0].tolist()), token_ids=ids[0].tolist(),
        label=names[label_id], label_id=label_id, probs={n: float(p) for n, p in zip(names, probs, strict=True)},
        target=names[target_id], target_id=target_id, truncated=n_tokens > ids.shape[1], n_tokens=n_tokens,
        max_seq_length=msl, attentions=att, rollout=attention_rollout(att) if att is not None else None,
        attributions=scores, delta=delta, output_diff=diff, n_steps=int(n_steps) if attributions else 0,
        seconds=time.perf_counter() - t0,
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


# --- playground helpers: plain data for the Playground page -----------------------------

TOKEN_LABEL_CHARS = 14  # longer tokens are shortened on chart axes so tick labels stay readable
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "config.json", "bmcore.json")


@dataclass(frozen=True)
class ModelChoice:
    """A model the Playground offers: what to load, how to label it, and what it was trained on."""

    ref: str  # what load_for_inference receives: a model folder or builtin:minilm
    label: str  # shown in the picker
    dataset: str = ""  # the prepared dataset it was trained on ("" when unknown)
    base: bool = False  # an untrained base model: its classification head is random


@dataclass(frozen=True)
class ModelInfo:
    """A resolved model reference with what the Playground needs to cache and describe it."""

    ref: str
    location: str  # the resolved model folder (or a Hub id)
    mtime: float  # newest modification time of the weights, config and bmcore.json; 0.0 for Hub ids
    dataset: str  # from bmcore.json, saved by training; "" when unknown
    base: bool  # no trained classification head
    temperature: float | None  # fitted on validation data, from bmcore.json

    @property
    def cache_key(self) -> tuple[str, float]:
        """(folder, mtime): a retrained model in the same folder gets a new key, so it is never served stale."""
        return self.location, self.mtime


def model_mtime(folder: str | Path) -> float:
    """The newest modification time (s since the epoch) of a model folder's weights, config and ``bmcore.json``."""
    folder = Path(folder)
    times = [p.stat().st_mtime for p in (folder / n for n in WEIGHT_FILES) if p.is_file()]
    return max(times, default=folder.stat().st_mtime if folder.exists() else 0.0)


def model_info(ref: str) -> ModelInfo:
    """Resolve ``ref`` (builtin:minilm, a run folder or a model folder) into a :class:`ModelInfo`."""
    from .inference import read_model_meta, saved_temperature
    from .models import is_base_model, resolve_model

    mref = resolve_model(ref)
    meta = read_model_meta(mref.path)
    return ModelInfo(ref=ref, location=mref.location, mtime=model_mtime(mref.path) if mref.path else 0.0,
                     dataset=str(meta.get("dataset") or ""), base=is_base_model(mref),
                     temperature=saved_temperature(meta))


def playground_models() -> list[ModelChoice]:
    """Completed workspace runs that have a model (newest first), then ``builtin:minilm`` labelled as untrained."""
    from . import runs
    from .inference import read_model_meta
    from .models import DEFAULT_MODEL
    from .tasks import MULTI_LABEL

    out = []
    for r in runs.list_runs():
        folder = Path(r.path) / runs.MODEL_DIR
        if r.state != runs.COMPLETED or r.task == "mlm" or not (folder / "config.json").is_file():  # mlm: no head yet
            continue
        # A multi-label run's accuracy is its subset accuracy (the whole label set right): say so.
        multi = read_model_meta(folder).get("problem_type") == MULTI_LABEL
        acc = (f"test {'subset accuracy' if multi else 'accuracy'} {r.test_accuracy:.3f}"
               if isinstance(r.test_accuracy, (int, float)) else "no test score")
        out.append(ModelChoice(str(folder.resolve()), f"{r.name} · {r.dataset or '?'} · {acc}", r.dataset))
    out.append(ModelChoice(DEFAULT_MODEL, f"{DEFAULT_MODEL} · untrained base model (random head: predictions are "
                                          "meaningless until fine-tuned)", base=True))
    return out


def playground_examples(dataset: str, per_class: int | None = None, max_chars: int = 600,
                        seed: int = 0) -> list[dict[str, str]]:
    """A few test-split examples per class of a prepared dataset: ``label``, ``text`` (and ``text_pair``).

    ``per_class`` defaults to 2, and to 1 for a multi-label dataset (whose examples carry their whole label set,
    as a JSON list, and are not repeated under each of their labels).

    Returns [] when the dataset is not in the workspace. Short texts are preferred, so that
    examples are quick to read and explain.
    """
    import pandas as pd

    from .data import is_prepared, label_sets, load_prepared
    from .problem_types import MULTI_LABEL

    if not dataset or not is_prepared(dataset):
        return []
    ds = load_prepared(dataset)
    test = ds.splits["test"]
    sets = label_sets(test["label"]) if getattr(ds, "problem_type", None) == MULTI_LABEL else None
    out = []
    seen: set[str] = set()
    for label in ds.label_names:
        # A multi-label row is an example of each label in its set (its label is the set, as a JSON list).
        has = pd.Series([label in s for s in sets], index=test.index) if sets is not None else test["label"] == label
        rows = test[has & (test["text"].str.len() <= max_chars)]
        rows = rows if len(rows) else test[has]
        if sets is not None:
            rows = rows[~rows["text"].isin(seen)]
        for _, row in rows.sample(min(per_class or (2 if sets is None else 1), len(rows)), random_state=seed).iterrows():
            seen.add(str(row["text"]))
            ex = {"label": str(label) if sets is None else str(row["label"]), "text": str(row["text"])}
            if sets is not None:  # the set's names, for the button: a single label may start with "[" too
                ex["label_names"] = ", ".join(sets[test.index.get_loc(row.name)]) or "no label"
            if "text_pair" in row and isinstance(row["text_pair"], str):
                ex["text_pair"] = row["text_pair"]
            out.append(ex)
    return out


def dataset_is_pair(dataset: str) -> bool:
    """True when ``dataset`` is a prepared text-pair dataset in the workspace."""
    from .data import DATASET_META, dataset_dir

    try:
        meta = json.loads((dataset_dir(dataset) / DATASET_META).read_text(encoding="utf-8")) if dataset else {}
    except (OSError, ValueError, BmcoreError):
        return False
    return bool(meta.get("is_pair") or len(meta.get("text_columns", [])) == 2)


def token_labels(tokens: Sequence[str], max_chars: int = TOKEN_LABEL_CHARS) -> list[str]:
    """Tokens as chart tick labels: shortened to ``max_chars`` and escaped for plotly (it renders some tags)."""
    return plot_texts(t if len(t) <= max_chars else t[: max_chars - 1] + "…" for t in map(str, tokens))


def token_window(n_tokens: int, start: int = 0, size: int = 40) -> tuple[int, int]:
    """A [start, stop) window of at most ``size`` tokens inside ``n_tokens``, so long inputs stay legible."""
    size = max(1, min(int(size), n_tokens))
    start = min(max(0, int(start)), n_tokens - size)
    return start, start + size


def cls_bars(ex: Explanation, layer: int = -1) -> Any:
    """[CLS]'s attention over the tokens as a long ``pandas.DataFrame`` (position, token, kind, weight).

    Two kinds: one layer's [CLS] row averaged over heads, and the rollout's [CLS] row (all layers).
    """
    import pandas as pd

    if ex.attentions is None or ex.rollout is None:
        raise BmcoreError("this explanation has no attention; explain with attention=True")
    layer = int(layer) % ex.attentions.shape[0]
    rows = []
    for kind, weights in ((f"layer {layer + 1}, mean of heads", cls_attention(ex.attentions, layer)),
                          ("rollout, all layers", ex.rollout[0])):
        rows += [{"position": i, "token": t, "kind": kind, "weight": float(w)}
                 for i, (t, w) in enumerate(zip(ex.tokens, weights, strict=True))]
    return pd.DataFrame(rows)


def probability_frame(probs: dict[str, float], calibrated: dict[str, float] | None = None) -> Any:
    """Class probabilities as a long ``pandas.DataFrame`` (class, kind, probability) for a bar chart."""
    import pandas as pd

    rows = [{"class": c, "kind": "model", "probability": float(p)} for c, p in probs.items()]
    if calibrated:
        rows += [{"class": c, "kind": "calibrated (temperature)", "probability": float(p)} for c, p in calibrated.items()]
    return pd.DataFrame(rows, columns=["class", "kind", "probability"])


def top_predicted(labels: str | Sequence[str], scores: dict[str, float]) -> str:
    """The label to explain by default: a single-label prediction itself; for a multi-label set, its highest-scoring
    label (an empty set: the highest-scoring label of all)."""
    if isinstance(labels, str):
        return labels
    return max(list(labels) or list(scores), key=lambda n: scores[n])


def threshold_frame(scores: dict[str, float], thresholds: Sequence[float], predicted: Sequence[str]) -> Any:
    """Each label's score against its threshold as a ``pandas.DataFrame`` (label, probability, threshold,
    predicted yes/no), highest score first: what a multi-label model decided for one text."""
    import pandas as pd

    chosen = set(predicted)
    frame = pd.DataFrame({"label": list(scores), "probability": [float(p) for p in scores.values()],
                          "threshold": [float(t) for t in thresholds],
                          "predicted": ["yes" if n in chosen else "no" for n in scores]})
    return frame.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def batch_label_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How often each label was predicted in a batch, most frequent first (a multi-label set counts each label)."""
    from collections import Counter

    counts = Counter(n for r in records for n in (r["labels"] if "labels" in r else [r["label"]]))
    return dict(counts.most_common())


def read_batch(name: str, data: bytes) -> tuple[list[str], list[str] | None]:
    """Texts (and text pairs) from an uploaded file: ``.txt`` is one text per line; a table needs a text column.

    Columns are found as the ``predict`` CLI finds them (``text``/``sentence``..., a pair
    such as ``premise``/``hypothesis``, or a single column).
    """
    from . import data as bdata

    if Path(name).suffix.lower() in ("", ".txt"):
        lines = data.decode("utf-8", errors="replace").splitlines()
        return [line for line in lines if line.strip()], None
    df, _ = bdata.read_table(name, data=data)
    lower = {str(c).lower(): c for c in df.columns}
    for a, b in bdata.PAIR_NAMES:
        if a in lower and b in lower:
            return df[lower[a]].fillna("").astype(str).tolist(), df[lower[b]].fillna("").astype(str).tolist()
    column = next((lower[n] for n in bdata.TEXT_NAMES if n in lower), None)
    if column is None and len(df.columns) == 1:
        column = df.columns[0]
    if column is None:
        raise BmcoreError(f"{name} has no text column among {', '.join(map(str, df.columns))}; name it 'text'")
    return df[column].fillna("").astype(str).tolist(), None


def read_batch_labels(name: str, data: bytes) -> list[str | None] | None:
    """The gold labels of an uploaded batch table, one per text of :func:`read_batch` (None where a row has none),
    or None when the file has no label column (``label``, ``class``, ``category``... as the Data page finds it)."""
    from . import data as bdata

    if Path(name).suffix.lower() in ("", ".txt"):
        return None
    df, _ = bdata.read_table(name, data=data)
    lower = {str(c).lower(): c for c in df.columns}
    column = next((lower[n] for n in bdata.LABEL_NAMES if n in lower), None)
    if column is None:
        return None
    labels = bdata.normalise_labels(df[column], str(column))
    return [v if isinstance(v, str) else None for v in labels]


def gold_label_set(value: str) -> list[str]:
    """The label names of one gold cell of a multi-label batch file: a JSON list (``["anger", "joy"]``), or names
    separated by ``,``, ``;`` or ``|`` (the first of these the cell holds)."""
    from .data import decode_label_set
    from .labels import LABEL_DELIMITERS

    value = str(value).strip()
    if value.startswith("["):
        return decode_label_set(value)
    sep = next((d for d in LABEL_DELIMITERS if d != "json" and d in value), None)
    parts = value.split(sep) if sep else [value]
    return [p.strip() for p in parts if p.strip()]


def _multi_label_batch_scores(gold: Sequence[str | None], records: Sequence[dict[str, Any]],
                              label_names: Sequence[str]) -> dict[str, Any]:
    from .metrics import multi_label_metrics

    rows = [(gold_label_set(g), r["labels"]) for g, r in zip(gold, records, strict=True) if g is not None]
    unknown = sorted({n for g, _ in rows for n in g} - set(label_names))
    if unknown or not rows:
        return {"n": 0, "unknown": unknown}
    index = {n: j for j, n in enumerate(label_names)}
    y, p = np.zeros((len(rows), len(index)), dtype=np.int64), np.zeros((len(rows), len(index)), dtype=np.int64)
    for i, (g, pred) in enumerate(rows):
        y[i, [index[n] for n in g]] = 1
        p[i, [index[n] for n in pred]] = 1
    m = multi_label_metrics(y, p, None, list(label_names))
    return {"n": m["n"], "accuracy": m["subset_accuracy"], "macro_f1": m["f1_macro"], "micro_f1": m["f1_micro"],
            "unknown": []}


def batch_scores(gold: Sequence[str | None], records: Sequence[dict[str, Any]], label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro F1 of batch predictions against gold labels; rows without a gold label are left out.

    Returns ``n``, ``accuracy`` and ``macro_f1``, or ``unknown`` (the gold labels that are not classes of the
    model, then no scores: the file's labels do not match the model's) with ``n`` 0 when nothing can be scored.
    For a multi-label model (records with ``labels``) each gold cell is a set (:func:`gold_label_set`),
    ``accuracy`` is the subset accuracy (the whole set right) and ``micro_f1`` is added.
    """
    from .evaluate import compute_metrics

    if records and "labels" in records[0]:
        return _multi_label_batch_scores(gold, records, label_names)
    pairs = [(g, r["label"]) for g, r in zip(gold, records, strict=True) if g is not None]
    unknown = sorted({g for g, _ in pairs} - set(label_names))
    if unknown or not pairs:
        return {"n": 0, "unknown": unknown}
    m = compute_metrics([g for g, _ in pairs], [p for _, p in pairs], None, list(label_names))
    return {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["f1_macro"], "unknown": []}


def predictions_frame(texts: Sequence[str], records: Sequence[dict[str, Any]], pairs: Sequence[str] | None = None) -> Any:
    """A predictions table from :func:`bmcore.inference.predict` records: text[, text_pair], label, confidence,
    one probability column per class (``p(class)``), and truncated. Multi-label records add ``labels``, the
    predicted set as a JSON list (``label`` is then the top-scoring label)."""
    import pandas as pd

    rows = []
    for i, (text, rec) in enumerate(zip(texts, records, strict=True)):
        row: dict[str, Any] = {"text": text}
        if pairs is not None:
            row["text_pair"] = pairs[i]
        if "labels" in rec:
            row["labels"] = json.dumps(rec["labels"], ensure_ascii=False)
        row |= {"label": rec["label"], "confidence": rec["scores"][rec["label"]]}
        row |= {f"p({c})": p for c, p in rec["scores"].items()}
        row["truncated"] = rec["truncated"]
        rows.append(row)
    return pd.DataFrame(rows)


def predict_command(ref: str, text: str, text_pair: str | None = None) -> str:
    """The CLI equivalent: ``python -m bmcore predict --model REF --explain "TEXT"`` (shell-quoted)."""
    import shlex

    pair = f" --pair {shlex.quote(text_pair)}" if text_pair else ""
    return f"python -m bmcore predict --model {shlex.quote(ref)} --explain{pair} {shlex.quote(text)}"


def find_choice(choices: Sequence[ModelChoice], ref: str) -> ModelChoice | None:
    """The choice that ``ref`` names: the same string, or the same folder (a run folder stands for its model/)."""
    from .models import resolve_model

    for c in choices:
        if c.ref == ref:
            return c
    try:
        mref = resolve_model(ref)
    except BmcoreError:
        return None
    return next((c for c in choices if mref.path is not None and not c.base and Path(c.ref) == mref.path), None)


def example_label(example: dict[str, str], max_chars: int = 70) -> str:
    """A button label for an example: ``label: start of the text…``, shown as text (:func:`bmcore.display.md`)."""
    text = " ".join(str(example["text"]).split())
    label = str(example.get("label_names") or example["label"])  # a multi-label example shows its set's names
    text = f"{label}: " + (text if len(text) <= max_chars else text[: max_chars - 1] + "…")
    return md(text)


# --- images (issue 16; their explanations and heat maps: bmcore.explain_images) ---------------


def image_predict_command(ref: str, image_name: str = "image.png", explain: bool = True, method: str | None = None) -> str:
    """The CLI equivalent for one image file (shell-quoted): ``--explain`` writes its heat map beside the file, made by
    ``method`` when one is given (``--method``; None: the model's default)."""
    import shlex

    flags = (" --explain" if explain else "") + (f" --method {shlex.quote(method)}" if explain and method else "")
    return f"python -m bmcore predict --model {shlex.quote(ref)}{flags} {shlex.quote(image_name)}"


def image_pipeline_snippet(folder: str) -> str:
    """The transformers code that loads the same model folder and classifies an image."""
    return ("from transformers import pipeline\n\n"
            f"classifier = pipeline(\"image-classification\", model={json.dumps(folder)})\n"
            "classifier(\"image.png\", top_k=None)  # every class with its probability")


def playground_image_examples(dataset: str, per_class: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """A few test-split images per class of a prepared image dataset: ``label``, ``image`` (PNG bytes) and ``path``;
    [] when the dataset is not in the workspace or is not an image dataset."""
    from .data import is_prepared, load_prepared

    if not dataset or not is_prepared(dataset):
        return []
    ds = load_prepared(dataset)
    test = ds.splits.get("test")
    if getattr(ds, "modality", "text") != "image" or test is None or not len(test):
        return []
    out = []
    for label in ds.label_names:
        rows = test[test["label"] == label]
        for _, row in rows.sample(min(per_class, len(rows)), random_state=seed).iterrows():
            out.append({"label": str(label), "image": bytes(row["image"]), "path": str(row.get("path") or "")})
    return out


BATCH_IMAGES_MAX = 1000  # images in one Playground batch zip: predictions for more belong to `bmcore evaluate`


def read_image_batch(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """The image files of an uploaded zip as (path inside the zip, bytes), in path order; read in memory (nothing is
    extracted) after the dataset reader's checks: no unsafe paths or links, a cap on the unpacked size, and on the
    pixels of all the images together (``BMCORE_MAX_TOTAL_PIXELS``, from their headers). The bytes stay encoded:
    :func:`bmcore.inference.predict_images` decodes them a batch at a time."""
    import io
    import zipfile
    import zlib

    from .images import _zip_members, total_pixels

    if not data:
        raise BmcoreError(f"{name} is empty (0 bytes)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BmcoreError(f"{name} is not a readable zip file; give a .zip of images") from None
    with zf:
        members = sorted(_zip_members(zf, name), key=lambda i: i.filename)
        if not members:
            raise BmcoreError(f"{name} holds no image files (.png, .jpg, ...)")
        if len(members) > BATCH_IMAGES_MAX:
            raise BmcoreError(f"{name} holds {len(members):,} images; the Playground takes at most {BATCH_IMAGES_MAX:,} "
                              "at once (evaluate a prepared dataset for more)")
        try:
            total_pixels(name, ((i.filename, lambda i=i: zf.open(i)) for i in members))  # headers: nothing decoded
            return [(i.filename, zf.read(i)) for i in members]
        except BmcoreError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
            raise BmcoreError(f"{name} cannot be unpacked ({exc.__class__.__name__}); the zip is damaged") from None


def image_predictions_frame(paths: Sequence[str], records: Sequence[dict[str, Any]]) -> Any:
    """One row per image of a batch: ``image`` (its path), ``folder`` (its parent folder inside the zip: often its
    class), ``label`` and ``confidence`` (the predicted class's probability)."""
    from pathlib import PurePosixPath

    import pandas as pd

    return pd.DataFrame({"image": list(paths), "folder": [PurePosixPath(p).parent.name for p in paths],
                         "label": [r["label"] for r in records],
                         "confidence": [float(r["scores"][r["label"]]) for r in records]})
