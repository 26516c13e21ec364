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

from .. import run_list, runs
from ..data import DATASET_META, dataset_dir, is_prepared, load_prepared
from ..display import md, plot_texts
from ..errors import BmcoreError
from ..explain import Explanation, cls_attention
from ..explain_images import GRADCAM, ROLLOUT, ImageExplanation
from ..files import read_json
from ..modalities import get_modality
from ..model_meta import read_model_meta, saved_temperature
from ..models import DEFAULT_MODEL, is_base_model, resolve_model
from ..tasks import get_task

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


def headline_text(summary: run_list.RunSummary, meta: dict[str, Any]) -> str:
    """A run's test figure as the model picker says it, in its task's words: ``test accuracy 0.912``, ``test subset
    accuracy 0.430`` (multi-label: the whole label set right), ``test Pearson correlation 0.871``."""
    if not isinstance(summary.test_score, (int, float)):
        return "no test score"
    try:
        names = get_task(meta.get("problem_type"), meta.get("modality")).metric_names
    except BmcoreError:  # a problem type this version does not know: the metric's own key
        names = {}
    metric = summary.test_metric or "accuracy"
    return f"test {names.get(metric, metric)} {summary.test_score:.3f}"


def playground_models() -> list[ModelChoice]:
    """Completed workspace runs that have a model (newest first), then ``builtin:minilm`` labelled as untrained."""
    out = []
    for r in run_list.list_runs():
        folder = Path(r.path) / runs.MODEL_DIR
        if r.state != runs.COMPLETED or r.pretraining or not (folder / "config.json").is_file():  # pretraining: no head yet
            continue
        out.append(ModelChoice(str(folder.resolve()), f"{r.name} · {r.dataset or '?'} · "
                                                      f"{headline_text(r, read_model_meta(folder))}", r.dataset))
    out.append(ModelChoice(DEFAULT_MODEL, f"{DEFAULT_MODEL} · untrained base model (random head: predictions are "
                                          "meaningless until fine-tuned)", base=True))
    return out


def playground_examples(dataset: str, per_class: int | None = None, max_chars: int = 600,
                        seed: int = 0) -> list[dict[str, str]]:
    """A few test-split examples of a prepared dataset from each group its task makes of the rows (a class, a label,
    a range of scores: :meth:`bmcore.tasks.base.Task.example_groups`): ``label`` (the gold value as the split holds
    it), ``label_names`` (the same as text, for the button), ``text`` (and ``text_pair``).

    ``per_class`` defaults to the task's (2 per class; 1 per label of a multi-label dataset, whose examples carry
    their whole label set and are not repeated under each of their labels). Returns [] when the dataset is not in
    the workspace. Short texts are preferred, so that examples are quick to read and explain.
    """
    if not dataset or not is_prepared(dataset):
        return []
    ds = load_prepared(dataset)
    try:
        task = get_task(getattr(ds, "problem_type", None))
    except BmcoreError:
        return []
    test = ds.splits["test"]
    short = (test["text"].astype(str).str.len() <= max_chars).to_numpy()
    out = []
    seen: set[str] = set()
    for _, has in task.example_groups(test["label"], ds.label_names):
        rows = test[has & short]
        rows = rows if len(rows) else test[has]
        rows = rows[~rows["text"].isin(seen)]  # a text in two groups (a multi-label set) is shown once
        for _, row in rows.sample(min(per_class or task.examples_per_group, len(rows)), random_state=seed).iterrows():
            seen.add(str(row["text"]))
            ex = {"label": str(row["label"]), "label_names": task.gold_text(row["label"]), "text": str(row["text"])}
            if "text_pair" in row and isinstance(row["text_pair"], str):
                ex["text_pair"] = row["text_pair"]
            out.append(ex)
    return out


def score_range(dataset: str) -> tuple[float, float] | None:
    """The lowest and highest score in a prepared dataset's train split (a regression model's training range), or
    None when the dataset is not in the workspace or its labels are not numbers."""
    if not dataset or not is_prepared(dataset):
        return None
    try:
        y = pd.to_numeric(load_prepared(dataset).splits["train"]["label"], errors="coerce").dropna()
    except (BmcoreError, KeyError, OSError, ValueError):
        return None
    return (float(y.min()), float(y.max())) if len(y) else None


def score_range_note(dataset: str, span: tuple[float, float] | None) -> str:
    """The sentence under a predicted score: the range of the scores the model was trained on (Markdown-escaped)."""
    if span is None:
        return "The model predicts one number, in the units of the scores it was trained on."
    return md(f"The model predicts one number: the training scores of {dataset} run from {span[0]:g} to {span[1]:g}.")


def dataset_is_pair(dataset: str) -> bool:
    """True when ``dataset`` is a prepared text-pair dataset in the workspace."""
    try:
        meta = read_json(dataset_dir(dataset) / DATASET_META) if dataset else {}
    except BmcoreError:
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
    predicted set as a JSON list (``label`` is then the top-scoring label); a regression model's records give
    ``score`` instead of the label and probabilities."""
    rows = []
    for i, (text, rec) in enumerate(zip(texts, records, strict=True)):
        row: dict[str, Any] = {"text": text}
        if pairs is not None:
            row["text_pair"] = pairs[i]
        if "labels" in rec:
            row["labels"] = json.dumps(rec["labels"], ensure_ascii=False)
        if "label" in rec:
            row |= {"label": rec["label"], "confidence": rec["scores"][rec["label"]]}
            row |= {f"p({c})": p for c, p in rec["scores"].items()}
        if "score" in rec:
            row["score"] = rec["score"]
        row["truncated"] = rec["truncated"]
        rows.append(row)
    return pd.DataFrame(rows)


def gold_column_at(table: pd.DataFrame) -> int:
    """Where a batch table's ``gold`` column goes: just before what the model predicted (its label set, label or
    score)."""
    return next((int(table.columns.get_loc(c)) for c in ("labels", "label", "score") if c in table), len(table.columns))


BATCH_TILES = (  # (key of bmcore.batch_files.batch_scores, tile label, help), in the order shown
    ("accuracy", "Accuracy", "Share of the labelled rows predicted right."),
    ("subset_accuracy", "Subset accuracy", "Share of the labelled rows whose whole label set was predicted exactly."),
    ("micro_f1", "Micro F1", "F1 over every (row, label) decision."),
    ("macro_f1", "Macro F1", "F1 of each class or label, averaged: rare ones count as much as common ones."),
    ("pearson", "Pearson correlation", "How closely the predicted scores follow the gold scores (1: a straight line)."),
    ("rmse", "RMSE", "Root mean squared error, in the scores' units: large errors weigh more."),
    ("mae", "MAE", "Mean absolute error, in the scores' units."),
)


def batch_tiles(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """The tiles of a labelled batch's scores (:func:`bmcore.batch_files.batch_scores`): what the model's kind of
    prediction was scored with, then the number of labelled rows; [] when nothing was scored."""
    if not scores.get("n"):
        return []
    tiles = [{"label": label, "value": "-" if scores[key] is None else f"{scores[key]:.3f}", "help": help}
             for key, label, help in BATCH_TILES if key in scores]
    return tiles + [{"label": "Labelled rows", "value": f"{scores['n']:,}",
                     "help": "Rows of the file's label column with a label."}]


def batch_caption(table: pd.DataFrame, records: Sequence[dict[str, Any]]) -> str:
    """The line under a batch's table: how many texts, and what was predicted how often (scores: their range)."""
    head = f"{len(table):,} texts · "
    if "score" in table:
        return md(head + f"predicted scores from {table['score'].min():.3f} to {table['score'].max():.3f}, "
                         f"mean {table['score'].mean():.3f}")
    multi = "labels" in table
    counts = batch_label_counts(records).items() if multi else table["label"].value_counts().items()
    return md(head + ("predicted labels: " if multi else "") + ", ".join(f"{k} {v:,}" for k, v in counts))


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
    if not get_modality(getattr(ds, "modality", None)).pictures or test is None or not len(test):
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
