"""What the Playground shows, worked out: the models it offers, example inputs, chart frames, tables, commands, notes.

The Playground pages (``pages/playground.py`` and ``pages/_image_playground.py``) only draw what these functions
return. The explanations themselves come from the engine: :mod:`bmcore.explain` (texts) and
:mod:`bmcore.explain_images` (images); batch files are read and scored by :mod:`bmcore.batch_files`.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from .. import runs
from ..data import DATASET_META, dataset_dir, is_prepared, label_sets, load_prepared
from ..display import md, plot_texts
from ..errors import BmcoreError
from ..explain import Explanation, cls_attention
from ..explain_images import GRADCAM, ROLLOUT, ImageExplanation
from ..inference import read_model_meta, saved_temperature
from ..models import DEFAULT_MODEL, is_base_model, resolve_model
from ..tasks import MULTI_LABEL

# --- models and examples ---------------------------------------------------------------------

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
    mref = resolve_model(ref)
    meta = read_model_meta(mref.path)
    return ModelInfo(ref=ref, location=mref.location, mtime=model_mtime(mref.path) if mref.path else 0.0,
                     dataset=str(meta.get("dataset") or ""), base=is_base_model(mref),
                     temperature=saved_temperature(meta))


def playground_models() -> list[ModelChoice]:
    """Completed workspace runs that have a model (newest first), then ``builtin:minilm`` labelled as untrained."""
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
    try:
        meta = json.loads((dataset_dir(dataset) / DATASET_META).read_text(encoding="utf-8")) if dataset else {}
    except (OSError, ValueError, BmcoreError):
        return False
    return bool(meta.get("is_pair") or len(meta.get("text_columns", [])) == 2)


# --- texts: charts, tables and commands ------------------------------------------------------


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
    rows = [{"class": c, "kind": "model", "probability": float(p)} for c, p in probs.items()]
    if calibrated:
        rows += [{"class": c, "kind": "calibrated (temperature)", "probability": float(p)} for c, p in calibrated.items()]
    return pd.DataFrame(rows, columns=["class", "kind", "probability"])


def threshold_frame(scores: dict[str, float], thresholds: Sequence[float], predicted: Sequence[str]) -> Any:
    """Each label's score against its threshold as a ``pandas.DataFrame`` (label, probability, threshold,
    predicted yes/no), highest score first: what a multi-label model decided for one text."""
    chosen = set(predicted)
    frame = pd.DataFrame({"label": list(scores), "probability": [float(p) for p in scores.values()],
                          "threshold": [float(t) for t in thresholds],
                          "predicted": ["yes" if n in chosen else "no" for n in scores]})
    return frame.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def batch_label_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How often each label was predicted in a batch, most frequent first (a multi-label set counts each label)."""
    counts = Counter(n for r in records for n in (r["labels"] if "labels" in r else [r["label"]]))
    return dict(counts.most_common())


def predictions_frame(texts: Sequence[str], records: Sequence[dict[str, Any]], pairs: Sequence[str] | None = None) -> Any:
    """A predictions table from :func:`bmcore.inference.predict` records: text[, text_pair], label, confidence,
    one probability column per class (``p(class)``), and truncated. Multi-label records add ``labels``, the
    predicted set as a JSON list (``label`` is then the top-scoring label)."""
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
    pair = f" --pair {shlex.quote(text_pair)}" if text_pair else ""
    return f"python -m bmcore predict --model {shlex.quote(ref)} --explain{pair} {shlex.quote(text)}"


def find_choice(choices: Sequence[ModelChoice], ref: str) -> ModelChoice | None:
    """The choice that ``ref`` names: the same string, or the same folder (a run folder stands for its model/)."""
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


# --- images (issue 16): commands, examples, the batch table and the note under a heat map ------


def image_predict_command(ref: str, image_name: str = "image.png", explain: bool = True, method: str | None = None) -> str:
    """The CLI equivalent for one image file (shell-quoted): ``--explain`` writes its heat map beside the file, made by
    ``method`` when one is given (``--method``; None: the model's default)."""
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


def image_predictions_frame(paths: Sequence[str], records: Sequence[dict[str, Any]]) -> Any:
    """One row per image of a batch: ``image`` (its path), ``folder`` (its parent folder inside the zip: often its
    class), ``label`` and ``confidence`` (the predicted class's probability)."""
    return pd.DataFrame({"image": list(paths), "folder": [PurePosixPath(p).parent.name for p in paths],
                         "label": [r["label"] for r in records],
                         "confidence": [float(r["scores"][r["label"]]) for r in records]})


def image_explanation_note(ex: ImageExplanation) -> str:
    """One or two sentences on what an image explanation's map means, and its limits."""
    if ex.method == ROLLOUT:
        return ("Attention rollout: how much the [CLS] token, which the classifier reads, draws on each patch through "
                "all layers (red: most). It shows where the model looks, not whether a patch argues for or against the "
                "class, and it is the same map whichever class is picked.")
    if ex.method == GRADCAM:
        cells = f"{ex.grid[0]} x {ex.grid[1]}" if ex.grid else "a few"
        note = (f"Grad-CAM: the regions of the model's last convolutional feature map ({cells} cells, {ex.layer}) "
                "whose activations raise the picked class's score (red: most, blue: none). It is coarse by design: "
                "it says where, not which pixels.")
        return note + (" Here no region raises it: the map is empty." if ex.empty else "")
    return ("Integrated Gradients: how much each pixel changed the picked class's probability, from a black image to "
            "this one (red: most, either way). The map is noisy at pixel level and depends on the black baseline.")
