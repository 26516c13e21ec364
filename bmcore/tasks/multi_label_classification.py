"""Multi-label classification: any number of labels per text (a ticket is both "billing" and "bug").

Each label is its own yes/no question: a sigmoid per label and a binary cross-entropy loss (``BCEWithLogitsLoss``),
with optional positive weights for rare labels. A label is predicted when its score reaches its threshold; after
training, one threshold per label is tuned on the validation split (the one that maximises that label's F1) and
saved with the model in ``bmcore.json``, so evaluation, the Playground, the CLI and exports all decide alike.

In a prepared dataset the ``label`` column holds each row's label set as a JSON list of names (``["anger", "joy"]``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..baseline import multi_label_baseline_metrics
from ..batch_files import gold_label_set
from ..data.columns import Columns
from ..data.label_stats import multi_label_stats
from ..data.label_values import (
    BINARY_VALUES,
    as_binary,
    encode_label_set,
    label_matrix,
    label_sets,
    map_unique,
    order_labels,
    split_cell,
)
from ..display import md, md_code
from ..errors import BmcoreError
from ..metrics import EPS, multi_label_metrics
from ..splits import examples_of
from .base import MISSED_RECALL, PROB_PREFIX, Task, card_number, sigmoid
from .single_label_classification import ABSENT_LOGIT, checked_label_names

DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = np.round(np.arange(0.02, 0.981, 0.01), 2)  # candidate thresholds tuned per label
AUTO_IMBALANCE = 3.0  # class_weights=auto weighs positives when the most frequent label has this many times the rarest
AUTO_WEIGHTS = "sqrt"  # positive weight sqrt(negatives / positives) per label
MAX_POS_WEIGHT = 100.0
SUMMARY_KEYS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss")  # bmcore evaluate prints these
CARD_COLUMNS = (("micro F1", "micro_f1"), ("macro F1", "macro_f1"), ("samples F1", "samples_f1"),
                ("subset accuracy", "subset_accuracy"), ("Hamming loss", "hamming_loss"))  # the card's results table
MIN_TUNE_POSITIVES = 20  # validation positives a label needs for a threshold of its own; rarer labels share one
MISSED_SHOWN = 10  # labels named in the missed-labels warning; the rest are counted


def multi_hot(sets: Sequence[Sequence[str]], label_names: Sequence[str]) -> np.ndarray:
    """A 0/1 matrix [rows, labels]; a name outside ``label_names`` is a one-line error."""
    index = {str(n): i for i, n in enumerate(label_names)}
    out = np.zeros((len(sets), len(label_names)), dtype=np.int64)
    for r, names in enumerate(sets):
        for name in names:
            if name not in index:
                raise BmcoreError(f"gold label {name!r} is not one of the label names {list(label_names)[:10]}")
            out[r, index[name]] = 1
    return out


def positive_weights(mode: str, counts: np.ndarray, n: int) -> tuple[str, np.ndarray | None]:
    """Per-label positive weights of the loss: ``balanced`` negatives/positives, ``sqrt`` its square root,
    ``auto`` :data:`AUTO_WEIGHTS` when label frequencies differ :data:`AUTO_IMBALANCE`-fold, else none."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1)
    if mode == "auto":
        mode = AUTO_WEIGHTS if counts.max() / counts.min() >= AUTO_IMBALANCE else "none"
    if mode == "none":
        return mode, None
    ratio = np.clip((n - counts) / counts, 1.0, MAX_POS_WEIGHT)
    return mode, ratio if mode == "balanced" else np.sqrt(ratio)


def _f1_by_threshold(probs: np.ndarray, pos: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of one label at each threshold of ``grid``."""
    pred = probs[None, :] >= grid[:, None]  # [thresholds, rows]
    tp = (pred & pos).sum(axis=1)
    return 2 * tp / np.maximum(pred.sum(axis=1) + pos.sum(), 1)


def tune_thresholds(probs: np.ndarray, gold: np.ndarray, grid: np.ndarray = THRESHOLD_GRID,
                    min_positives: int = MIN_TUNE_POSITIVES) -> np.ndarray:
    """For each label, the threshold in ``grid`` with the best F1 on (``probs``, ``gold``); ties go to the value
    nearest 0.5. A label with fewer than ``min_positives`` positives would fit its few rows rather than the label, so
    such labels share one threshold (the best mean F1 over them); a label without positives keeps
    :data:`DEFAULT_THRESHOLD`."""
    probs, gold = np.asarray(probs, dtype=np.float64), np.asarray(gold, dtype=np.int64)
    out = np.full(probs.shape[1], DEFAULT_THRESHOLD)
    grid = grid[np.argsort(np.abs(grid - DEFAULT_THRESHOLD), kind="stable")]  # candidates nearest 0.5 first
    positives = gold.sum(axis=0)
    rare = [j for j in range(probs.shape[1]) if 0 < positives[j] < min_positives]
    for j in range(probs.shape[1]):
        if positives[j] >= min_positives:
            out[j] = grid[int(np.argmax(_f1_by_threshold(probs[:, j], gold[:, j] == 1, grid)))]
    if rare:
        mean_f1 = np.mean([_f1_by_threshold(probs[:, j], gold[:, j] == 1, grid) for j in rare], axis=0)
        out[rare] = grid[int(np.argmax(mean_f1))]
    return out


def missed_labels(per_class: dict[str, Any]) -> list[dict[str, Any]]:
    """Labels with gold examples that the model (almost) never finds: recall at most :data:`MISSED_RECALL` (F1 0
    when it finds none). ``per_class`` is :func:`bmcore.metrics.multi_label_metrics`' ``per_class``."""
    out = []
    for name, r in (per_class if isinstance(per_class, dict) else {}).items():
        values = [r.get(k) for k in ("support", "recall", "f1")] if isinstance(r, dict) else []
        if len(values) < 3 or not all(isinstance(v, (int, float)) for v in values):
            continue  # a damaged metrics file: skip the row rather than fail
        support, recall, f1 = values
        if support > 0 and recall <= MISSED_RECALL:
            out.append({"label": str(name), "recall": float(recall), "f1": float(f1), "hits": round(recall * support),
                        "support": int(support)})
    return out


def missed_labels_note(missed: Sequence[dict[str, Any]], n_labels: int, split: str = "test") -> str:
    """One plain-text warning for :func:`missed_labels`, with what to try; empty when no label is missed."""
    if not missed:
        return ""
    parts = [f"{m['label']} (F1 {m['f1']:.2f}, {m['hits']} of {m['support']} {examples_of(split)} found)"
             for m in missed[:MISSED_SHOWN]]
    more = f" and {len(missed) - MISSED_SHOWN} more" if len(missed) > MISSED_SHOWN else ""
    one = len(missed) == 1
    return (f"{len(missed)} of {n_labels} labels {'is' if one else 'are'} never or almost never predicted right: "
            + ", ".join(parts) + more + ". The model has not learned " + ("it" if one else "them") + ": train with "
            "class weights (balanced: each label's positives weigh its negatives-to-positives ratio), more epochs or a higher learning rate, or add "
            "examples with " + ("this label." if one else "these labels."))


class MultiLabelClassification(Task):
    problem_type = "multi_label_classification"
    title = "Multi-label classification"
    # GoEmotions, 1 epoch: test macro F1 0.434 (1e-4, growth 4) -> 0.477 (3e-4, growth 2) -> 0.50 (head at 3e-3); README
    defaults = {"learning_rate": 3e-4, "batch_growth": 2, "head_learning_rate": 3e-3}
    min_train_steps = 150  # as single-label text (bmcore.schedule)
    metric_names = {"accuracy": "subset accuracy", "macro_f1": "macro F1"}
    pipeline_kwargs = ", top_k=None"  # a score for every label: the pipeline's default is the top one alone
    label_unit = "labels"
    # No gold check, curves or calibration: the per-label table has each label's ROC/PR-AUC, and the thresholds, not a
    # temperature, are what is tuned.
    evaluate_sections = ("label_summary", "thresholds", "per_label", "label_confusion", "label_errors", "label_compare")

    def gold(self, df: pd.DataFrame, label_names: Sequence[str]) -> np.ndarray:
        return multi_hot(label_sets(df["label"].tolist()), label_names)

    few_shot = True

    def few_shot_head(self) -> tuple[str | None, Any]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        return "one-vs-rest", OneVsRestClassifier(LogisticRegression(max_iter=1000))

    def few_shot_weights(self, head: Any, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
        # One logistic regression per label; a label that is always (or never) on in training is a constant.
        hidden = next((np.asarray(e.coef_).shape[1] for e in head.estimators_ if hasattr(e, "coef_")), head.n_features_in_)
        weight = np.zeros((n_labels, hidden), dtype=np.float64)
        bias = np.full(n_labels, ABSENT_LOGIT, dtype=np.float64)
        for i, est in enumerate(head.estimators_[:n_labels]):
            if hasattr(est, "coef_"):
                weight[i], bias[i] = np.asarray(est.coef_)[0], np.asarray(est.intercept_)[0]
            elif np.ravel(est.predict_proba(np.zeros((1, hidden))))[-1] > 0.5:
                bias[i] = -ABSENT_LOGIT
        return weight.astype(np.float32), bias.astype(np.float32)

    def targets(self, df: pd.DataFrame, label_names: Sequence[str]) -> list[list[float]]:
        return self.gold(df, label_names).astype(np.float32).tolist()

    def loss(self, config: Any, targets: list[Any], label_names: Sequence[str]) -> tuple[str, Callable[..., Any] | None, Any]:
        import torch

        y = np.asarray(targets, dtype=np.float64)
        mode, vector = positive_weights(config.class_weights, y.sum(axis=0), len(y))
        weights = torch.tensor(vector, dtype=torch.float32) if vector is not None else None

        def compute_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
            logits = outputs["logits"].float()
            pos_weight = weights.to(logits.device) if weights is not None else None
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=pos_weight)

        shown = {n: round(float(w), 2) for n, w in zip(label_names, vector, strict=True)} if vector is not None else None
        return mode, compute_loss, shown

    def init_model(self, model: Any, targets: list[Any], config: Any, *, resume: bool = False) -> str | None:
        """Start each label's output at its base rate instead of 0.5 (the bias of the head's last layer set to the
        log-odds of the label's frequency in train, weighted as the loss weighs positives).

        A fresh head says 0.5 for every label, and most labels are rare (GoEmotions: 28 labels, 4% each on average):
        with Adam at 1e-4 a bias moves about 1e-4 a step, so learning "rare" alone would take most of a run. From the
        prior, the steps go to telling the labels apart (He et al. 2017, "Focal loss", section 4.1)."""
        import torch

        y = np.asarray(targets, dtype=np.float64)
        if resume or not y.size:  # on resume the checkpoint holds the trained bias
            return None
        n = len(y)
        pos = np.clip(y.sum(axis=0), 0.5, n - 0.5)
        _, weights = positive_weights(config.class_weights, y.sum(axis=0), n)
        odds = (pos / (n - pos)) * (weights if weights is not None else 1.0)
        head = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == y.shape[1]]
        if not head or head[-1].bias is None:
            return None
        with torch.no_grad():
            head[-1].bias.copy_(torch.tensor(np.log(odds), dtype=head[-1].bias.dtype))
        return f"head bias set to each label's prior (log-odds {np.log(odds).min():.2f} to {np.log(odds).max():.2f})"

    def missed_note(self, metrics: dict[str, Any], split: str = "test") -> str:
        per_class = metrics.get("per_class") or {}
        return missed_labels_note(missed_labels(per_class), len(per_class) if isinstance(per_class, dict) else 0, split)

    def validation_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        gold = np.asarray(targets).round().astype(np.int64)
        m = multi_label_metrics(gold, (sigmoid(logits) >= DEFAULT_THRESHOLD).astype(np.int64), None, label_names)
        return {"accuracy": m["subset_accuracy"], "macro_f1": m["macro_f1"], "micro_f1": m["micro_f1"]}

    def scores(self, logits: np.ndarray, meta: dict[str, Any] | None = None, *, calibrated: bool = False) -> np.ndarray:
        return sigmoid(logits)

    def torch_scores(self, logits: Any) -> Any:
        return logits.float().sigmoid()

    def thresholds(self, label_names: Sequence[str], meta: dict[str, Any] | None = None) -> list[float]:
        saved = (meta or {}).get("thresholds") or {}
        return [float(saved.get(str(n), DEFAULT_THRESHOLD)) for n in label_names]

    def predict_matrix(self, scores: np.ndarray, label_names: Sequence[str], meta: dict[str, Any] | None = None) -> np.ndarray:
        return (np.asarray(scores) >= np.asarray(self.thresholds(label_names, meta))[None, :]).astype(np.int64)

    def decide(self, scores: np.ndarray, label_names: Sequence[str], meta: dict[str, Any] | None = None) -> list[list[str]]:
        hits = self.predict_matrix(scores, label_names, meta)
        return [[str(label_names[j]) for j in np.flatnonzero(row)] for row in hits]

    def tune(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        t = tune_thresholds(sigmoid(logits), np.asarray(targets).round().astype(np.int64))
        return {"thresholds": {str(n): float(v) for n, v in zip(label_names, t, strict=True)},
                "thresholds_fitted_on": "validation"}

    def split_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str],
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
        gold, probs = np.asarray(targets).round().astype(np.int64), sigmoid(logits)
        m = multi_label_metrics(gold, self.predict_matrix(probs, label_names, meta), probs, label_names,
                                self.thresholds(label_names, meta))
        flat = multi_label_metrics(gold, (probs >= DEFAULT_THRESHOLD).astype(np.int64), None, label_names)
        m["flat_threshold"] = {"threshold": DEFAULT_THRESHOLD, "macro_f1": flat["macro_f1"], "micro_f1": flat["micro_f1"],
                               "subset_accuracy": flat["subset_accuracy"]}
        return m

    def prediction_table(self, df: pd.DataFrame, probs: np.ndarray, label_names: Sequence[str], meta: dict[str, Any],
                         truncated: np.ndarray | None = None) -> pd.DataFrame:
        """Columns: text, (text_pair), gold and pred (JSON lists), ``prob_<label>`` per label, confidence (how sure
        the decisions are: the mean over labels of max(p, 1 - p)), loss (mean binary cross-entropy over labels),
        errors (labels decided wrong), correct (the whole set right), truncated."""
        names = [str(n) for n in label_names]
        gold = self.gold(df, names)
        pred = self.predict_matrix(probs, names, meta)
        out = pd.DataFrame({"text": df["text"].astype(str).to_numpy()})
        if "text_pair" in df:
            out["text_pair"] = df["text_pair"].astype(str).to_numpy()
        as_json = lambda m: [json.dumps([names[j] for j in np.flatnonzero(r)], ensure_ascii=False) for r in m]  # noqa: E731
        out["gold"], out["pred"] = as_json(gold), as_json(pred)
        for i, n in enumerate(names):
            out[f"{PROB_PREFIX}{n}"] = probs[:, i]
        p = np.clip(probs, EPS, 1 - EPS)
        out["confidence"] = np.maximum(probs, 1 - probs).mean(axis=1) if len(probs) else np.zeros(0)
        out["loss"] = -(gold * np.log(p) + (1 - gold) * np.log(1 - p)).mean(axis=1) if len(probs) else np.zeros(0)
        out["errors"] = (gold != pred).sum(axis=1)
        out["correct"] = out["errors"].to_numpy() == 0
        out["truncated"] = np.asarray(truncated, dtype=bool) if truncated is not None else False
        return out

    def evaluate(self, df: pd.DataFrame, logits: np.ndarray, label_names: Sequence[str], meta: dict[str, Any], *,
                 truncated: np.ndarray | None, validation: Callable[[], tuple[pd.DataFrame, np.ndarray]] | None,
                 fit: bool, n_bins: int) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any], list[str]]:
        """The table and metrics of a split with per-label thresholds: those saved with the model, else tuned on
        ``validation()`` when ``fit``, else a flat 0.5 (with a note)."""
        notes: list[str] = []
        save: dict[str, Any] = {}
        if meta.get("thresholds"):
            source = meta.get("thresholds_fitted_on") or "saved with the model"
        elif fit and validation is not None:
            val, val_logits = validation()
            save = self.tune(val_logits, self.gold(val, label_names), label_names)
            meta = {**meta, **save}
            source = "validation"
        else:
            source = None
            notes.append("no tuned thresholds: every label uses 0.5 (train with a validation split to tune them)")
        probs = sigmoid(logits)
        table = self.prediction_table(df, probs, label_names, meta, truncated)
        metrics = self.split_metrics(logits, self.gold(df, label_names), label_names, meta)
        metrics["thresholds"] = {"values": dict(zip(map(str, label_names), self.thresholds(label_names, meta), strict=True)),
                                 "fitted_on": source}
        return table, metrics, save, notes

    # --- a prediction, the evaluate CLI and the model card -------------------------------------

    def record(self, decision: Any, scores: Sequence[float], label_names: Sequence[str],
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """``labels`` (the predicted set: each label whose score reaches its threshold), ``thresholds`` (label ->
        threshold), ``scores``, and ``label``: the top-scoring label."""
        names = [str(n) for n in label_names]
        return {"label": names[int(np.argmax(scores))], "scores": {n: float(p) for n, p in zip(names, scores, strict=True)},
                "labels": decision, "thresholds": dict(zip(names, self.thresholds(names, meta), strict=True))}

    def explain_target(self, record: dict[str, Any]) -> str:
        """The top-scoring predicted label (an empty set: the top-scoring label of all)."""
        scores = record["scores"]
        return max(list(record["labels"]) or list(scores), key=lambda n: scores[n])

    playground_view = "thresholds"
    examples_per_group = 1  # an example carries its whole label set: it is not repeated under each of its labels

    def prediction_tiles(self, record: dict[str, Any], gold: str | None = None
                         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """How many labels are predicted and the top-scoring one; the example's gold set against the predicted set."""
        labels, scores, top = record["labels"], record["scores"], record["label"]
        tiles = [{"label": "Labels predicted", "value": f"{len(labels)} of {len(scores)}",
                  "help": "Labels whose probability reaches their threshold."},
                 {"label": "Top label", "value": md(top), "delta": f"{scores[top]:.1%}", "delta_color": "off",
                  "delta_arrow": "off",
                  "help": "The label with the highest probability (predicted only when it reaches its threshold)."}]
        if gold is None:
            return tiles, None
        true_set = gold_label_set(gold)
        right = set(true_set) == set(labels)
        return tiles, {"label": "True labels", "value": md(", ".join(true_set)) if true_set else "none",
                       "delta": "right" if right else "wrong", "delta_color": "normal" if right else "inverse",
                       "delta_arrow": "off", "help": "The example's labels in its dataset."}

    def example_groups(self, labels: pd.Series, label_names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        """One group per label: the rows whose set holds it."""
        sets = label_sets(labels.tolist())
        return [(str(n), np.array([str(n) in s for s in sets], dtype=bool)) for n in label_names]

    def gold_text(self, value: Any) -> str:
        """The set's names (not a JSON list: a single label may start with "[" too), or "no label"."""
        return ", ".join(label_sets([value])[0]) or "no label"

    def summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Micro, macro and samples F1, subset accuracy, Hamming loss, the thresholds' source, and one row per label
        (precision, recall, F1, support, predicted, threshold); the baseline's same figures."""
        m, base = metrics, metrics.get("baseline")
        per_label = {n: {k: v.get(k) for k in ("precision", "recall", "f1", "support", "predicted", "threshold")}
                     for n, v in m["per_class"].items()}
        return {"problem_type": self.problem_type, **{k: m[k] for k in SUMMARY_KEYS},
                "thresholds_fitted_on": (m.get("thresholds") or {}).get("fitted_on"), "per_label": per_label,
                "baseline": {k: base.get(k) for k in SUMMARY_KEYS} if base else None}

    card_metrics = (("f1", "micro_f1", "Test micro F1", {"average": "micro"}),
                    ("f1", "macro_f1", "Test macro F1", {"average": "macro"}),
                    ("accuracy", "subset_accuracy", "Test subset accuracy (whole label set right)", None))

    def card_test_metrics(self, test: dict[str, Any], baseline: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return test, {}  # eval.json keeps the multi-label baseline's accuracy and macro F1 only: not comparable here

    def card_what(self, labels: Sequence[str], modality: str) -> str:
        names = ", ".join(md_code(n) for n in labels)
        return f"A multi-label {modality} classifier with {len(labels)} labels ({names})"

    def card_labels(self, labels: Sequence[str]) -> str:
        return "- Labels: " + ", ".join(md_code(n) for n in labels)

    def card_results(self, model: dict[str, Any], baseline: dict[str, Any], meta: dict[str, Any],
                     labels: Sequence[str]) -> list[str]:
        """The headline metrics against the baseline, and per label its threshold (tuned on validation, saved in
        ``bmcore.json``) with precision, recall and F1."""
        if model.get("micro_f1") is None:
            return ["No test metrics were saved for this run.", ""]
        n = model.get("n")
        lines = [f"Scored on {n:,} held-out test examples, never seen in training or model selection." if n else "", "",
                 "| model | " + " | ".join(c for c, _ in CARD_COLUMNS) + " |", "| --- |" + " ---: |" * len(CARD_COLUMNS),
                 "| this model | " + " | ".join(card_number(model.get(k)) for _, k in CARD_COLUMNS) + " |"]
        if baseline.get("micro_f1") is not None:
            lines += ["| baseline: TF-IDF + one-vs-rest logistic regression (threshold 0.5) | "
                      + " | ".join(card_number(baseline.get(k)) for _, k in CARD_COLUMNS) + " |", "",
                      "The baseline is trained on the same train split and scored on the same test examples."]
        lines += ["", "Subset accuracy counts a text as right only when its whole label set is; the Hamming loss is the "
                  "share of wrong yes/no label decisions (lower is better).", ""]
        fitted = meta.get("thresholds_fitted_on")
        lines += ["### Thresholds", "",
                  (f"Each label has its own decision threshold, tuned on the {md(fitted)} split (the one that gives the "
                   "label its best F1) and saved in `bmcore.json` under `thresholds`." if meta.get("thresholds") else
                   "No thresholds were tuned (there was no validation split): every label uses 0.5."), ""]
        flat = model.get("flat_threshold") or {}
        if flat.get("micro_f1") is not None:
            lines += [f"With one flat threshold of {flat.get('threshold')} instead: micro F1 "
                      f"{card_number(flat.get('micro_f1'))}, macro F1 {card_number(flat.get('macro_f1'))}.", ""]
        per_class = model.get("per_class") or {}
        lines += ["| label | threshold | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, t in zip(labels, self.thresholds(labels, meta), strict=True):
            v = per_class.get(name) or {}
            lines.append(f"| {md(name)} | {t:.2f} | {card_number(v.get('precision'))} | {card_number(v.get('recall'))} | "
                         f"{card_number(v.get('f1'))} | {v.get('support', '-')} |")
        return lines + [""]

    def card_usage(self, dataset: str, meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """transformers' pipeline with ``top_k=None`` and the thresholds from ``bmcore.json``, the CLI, the limits."""
        msl = meta.get("max_seq_length") or config.get("max_seq_length")
        limit = f"truncation=True{f', max_length={msl}' if msl else ''}"
        return ["## Use it", "", "Every label gets its own sigmoid score; a label applies when its score reaches that "
                "label's threshold, saved in `bmcore.json`.", "", "```python", "import json", "",
                "from transformers import pipeline", "",
                'classifier = pipeline("text-classification", model="path/to/this/folder", top_k=None)  # every label',
                'thresholds = json.load(open("path/to/this/folder/bmcore.json"))["thresholds"]',
                f'scores = classifier(["your text here"], {limit})[0]  # a list in: one list of scores per text',
                'labels = [s["label"] for s in scores if s["score"] >= thresholds[s["label"]]]', "```", "",
                "Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder \"your text here\"` "
                "(it applies the thresholds).", "", "## Limitations", "",
                f"It only knows the labels above and the kind of text in {md_code(dataset)}; texts longer than "
                f"{msl or 'max_seq_length'} tokens are cut. Check each label's F1 and the misclassified examples before "
                "relying on it.", ""]

    def baseline(self, train: pd.DataFrame, df: pd.DataFrame, label_names: Sequence[str], *, seed: int,
                 n_bins: int) -> dict[str, Any]:
        return multi_label_baseline_metrics(train, df, list(label_names), self.gold(train, label_names),
                                            self.gold(df, label_names), seed=seed)

    label_nouns = ("label", "labels")
    weighs_classes = False  # inverse class frequency is a single-label idea: rare labels get positive weights instead
    data_note = "multi-label"
    rows_by_label = False  # a row has any number of labels

    def read_labels(self, df: pd.DataFrame, cols: Columns, where: str) -> pd.Series:
        """Each row's label names as a list; ``None`` where a 0/1 cell is missing (the row is dropped)."""
        if cols.label_columns:
            flags = {}
            for c in cols.label_columns:
                b = as_binary(df[c])
                if b is None:
                    bad = next(v for v in df[c] if BINARY_VALUES.get(str(v).strip().lower()) is None and not pd.isna(v))
                    raise BmcoreError(f"label column {c!r} of {where} holds {str(bad)[:40]!r}; each label column must hold only 0 or 1")
                flags[c] = b
            mat = pd.DataFrame(flags).to_numpy(dtype=float)
            names = np.array(cols.label_columns, dtype=object)
            return pd.Series([None if np.isnan(r).any() else names[r == 1].tolist() for r in mat], index=df.index, dtype=object)
        d = str(cols.label_delimiter)

        def parse(v: Any) -> list[str]:
            try:
                return split_cell(v, d)
            except BmcoreError as exc:
                row = int(np.flatnonzero((df[cols.label] == v).to_numpy())[0])
                raise BmcoreError(f"label column {cols.label!r} of {where}, row {row + 1}: {exc}") from None

        return pd.Series(map_unique(df[cols.label], parse), index=df.index, dtype=object)

    def found_labels(self, labels: pd.Series, cols: Columns) -> list[str]:
        return order_labels({n for names in labels for n in names} | set(cols.label_columns or []))

    def encode_found(self, labels: pd.Series) -> list[str]:
        return [encode_label_set(names) for names in labels]

    def prepared_labels(self, std: dict[str, pd.DataFrame], cols: Columns) -> tuple[list[str], list[str] | None, str]:
        """Each row's names as a JSON list in label order (:func:`~bmcore.data.label_values.encode_label_set`); the
        splits are made by iterative stratification (Sechidis et al. 2011), which keeps each label's share close."""
        label_names = checked_label_names(std, cols, self.found_labels)
        rank = {n: i for i, n in enumerate(label_names)}
        for df in std.values():
            df["label"] = [encode_label_set(sorted(names, key=rank.__getitem__)) for names in df["label"]]
        return label_names, label_names, "label"

    def label_counts(self, df: pd.DataFrame, label_names: Sequence[str]) -> dict[str, int]:
        return dict(zip(label_names, map(int, label_matrix(df["label"], list(label_names)).sum(axis=0)), strict=True))

    def label_masks(self, df: pd.DataFrame, label_names: Sequence[str]) -> Iterator[np.ndarray]:
        matrix = label_matrix(df["label"], list(label_names))
        for j in range(len(label_names)):
            yield matrix[:, j] == 1

    def label_stats(self, splits: dict[str, pd.DataFrame], label_names: Sequence[str]) -> dict[str, Any]:
        """Labels per row, rows with none, rare labels and co-occurrence (:func:`~bmcore.data.label_stats.multi_label_stats`)."""
        matrices = {s: label_matrix(df["label"], list(label_names)) for s, df in splits.items()}
        return {**multi_label_stats(matrices, list(label_names)), "class_weights": {}}
    result_tiles = "thresholds"  # macro F1 and subset accuracy, and what the tuned per-label thresholds gained
    training_text = ("Multi-label: a text can carry any number of labels at once. The model gives every label its own "
                     "yes/no score (a sigmoid per label), learns with binary cross-entropy, and after training tunes one "
                     "threshold per label on the validation split.")


TASK = MultiLabelClassification()
