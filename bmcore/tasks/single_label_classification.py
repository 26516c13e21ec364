"""Single-label classification: one class per text; softmax over the classes, the top class wins.

Calibration here is temperature scaling (Guo et al., 2017): a classifier is *calibrated* when, of the examples it
predicts with confidence 0.8, about 80% are right. Fine-tuned transformers are usually over-confident; dividing the
logits by one number T > 0, fitted on the validation split, fixes much of it and never changes the predicted class.
A fitted T is kept only when it helps on data it was not fitted on (:func:`decide_temperature`): on a small validation
split one number fitted to a few mistakes can make calibration worse (25 validation images: test ECE 0.138 -> 0.199).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..baseline import baseline_metrics
from ..data.columns import MAX_CLASSES, Columns
from ..data.label_values import normalise_labels, order_labels
from ..display import md, md_code
from ..errors import BmcoreError
from ..metrics import EPS, classification_metrics, compute_metrics
from ..quality.features import ENCODERS
from ..quality.texts import score_texts
from ..splits import examples_of
from .base import MISSED_RECALL, PROB_PREFIX, Task, card_number, softmax

AUTO_IMBALANCE = 3.0  # class_weights=auto weighs the loss from this largest:smallest class ratio on
AUTO_WEIGHTS = "balanced"  # emotion with 1.6% surprise: its recall 0.80 (balanced), 0.50 (sqrt), 0.11 (none)
T_BOUNDS = (0.05, 20.0)  # a fitted T outside this range means the logits are degenerate, not miscalibrated
# Temperature scaling needs this many validation examples at least: below it, the held-out check below rests on folds
# of under 20 examples, and the fit on the few mistakes among them (a model right 90% of the time makes 2 or 3 in 25).
# Measured on emotion (scripts/temperature_experiment.py, README "Calibration on small validation splits"): for a
# nearly calibrated model a temperature fitted on 25 / 50 / 100 validation examples made the test log loss worse in
# 88% / 78% / 72% of draws (+0.019 / +0.008 / +0.004 nats on average; the held-out check alone halves that); for an
# over-confident one it helped at every size (-0.40 nats on 25), a gain this minimum gives up below 100.
MIN_TEMPERATURE_ROWS = 100
TEMPERATURE_FOLDS = 5  # cross-fitting: fit on 4/5 of validation, score the other 1/5, five times


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities from ``logits`` divided by ``temperature``."""
    if not temperature or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, not {temperature!r}")
    return softmax(np.asarray(logits, dtype=np.float64) / float(temperature))


def nll(logits: np.ndarray, gold_ids: Sequence[int] | np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (cross-entropy, in nats) of ``gold_ids`` at ``temperature``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    y = np.asarray(gold_ids, dtype=np.int64)
    m = z.max(axis=1, keepdims=True)
    logsumexp = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(logsumexp - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, gold_ids: Sequence[int] | np.ndarray) -> float:
    """The temperature that minimises the NLL of ``gold_ids`` (fit it on the validation split).

    The NLL is convex in 1/T, hence unimodal in log T, so a bounded scalar search on
    log T finds the optimum; it is deterministic and needs no torch. Returns 1.0 when
    there is nothing to fit (no rows).
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(gold_ids, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y):
        raise ValueError("logits must be [n, classes] with one gold id per row")
    if len(y) == 0:
        return 1.0
    lo, hi = np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])
    res = minimize_scalar(lambda log_t: nll(z, y, float(np.exp(log_t))), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-5})
    t = float(np.exp(res.x))
    # Never return a temperature that is worse than doing nothing.
    return t if nll(z, y, t) <= nll(z, y, 1.0) else 1.0


def cross_fitted_nll(logits: np.ndarray, gold_ids: Sequence[int] | np.ndarray, folds: int = TEMPERATURE_FOLDS,
                     seed: int = 0) -> tuple[float, float]:
    """The NLL of ``gold_ids`` on data the temperature was not fitted on: the rows split into ``folds`` parts, each
    scored at T = 1 and at the T fitted on the other parts. Returns (NLL at T = 1, NLL at the fitted T), over all rows."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(gold_ids, dtype=np.int64)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), folds)
    before = after = 0.0
    for k, held in enumerate(parts):
        if not len(held):
            continue
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        t = fit_temperature(z[rest], y[rest])
        before += nll(z[held], y[held], 1.0) * len(held)
        after += nll(z[held], y[held], t) * len(held)
    return before / max(len(y), 1), after / max(len(y), 1)


def decide_temperature(logits: np.ndarray, gold_ids: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """Fit a temperature on the validation split's ``logits`` and keep it only where it can be trusted.

    Kept when validation has :data:`MIN_TEMPERATURE_ROWS` examples or more and the cross-fitted NLL
    (:func:`cross_fitted_nll`) is lower with it than without. Returns ``temperature`` (the T fitted on the whole
    split, or None), ``fitted`` (that T, when one was fitted), ``reason`` (why none was kept, plain text, or None),
    ``validation_rows`` and, when checked, ``nll_heldout_before`` / ``nll_heldout_after`` and ``folds``."""
    y = np.asarray(gold_ids, dtype=np.int64)
    n = len(y)
    out: dict[str, Any] = {"temperature": None, "fitted": None, "reason": None, "validation_rows": n}
    if n < MIN_TEMPERATURE_ROWS:
        out["reason"] = (f"the validation split has {n:,} example{'s' if n != 1 else ''}; at least "
                         f"{MIN_TEMPERATURE_ROWS} are needed to trust a fitted temperature")
        return out
    t = fit_temperature(logits, y)
    before, after = cross_fitted_nll(logits, y)
    out.update(fitted=t, nll_heldout_before=before, nll_heldout_after=after, folds=TEMPERATURE_FOLDS)
    if t == 1.0:
        out["reason"] = "the model's confidences already fit the validation split (the fitted temperature is 1)"
    elif after >= before:
        out["reason"] = (f"a fitted temperature (T = {t:.2f}) made the log loss worse on validation examples it was not "
                         f"fitted on ({after:.4f} against {before:.4f} without it)")
    else:
        out["temperature"] = t
    return out


def loss_class_weights(mode: str, counts: Any) -> tuple[str, np.ndarray | None]:
    """The loss weight of each class for ``class_weights`` ``mode`` and the train split's class ``counts``.

    ``balanced`` is inverse frequency (n / (k x count)); ``sqrt`` its square root, a milder push towards
    rare classes; ``auto`` picks :data:`AUTO_WEIGHTS` when the largest class has at least :data:`AUTO_IMBALANCE`
    times the examples of the smallest, else none. Returns the mode used and the weights (None for none).
    """
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1)
    if mode == "auto":
        mode = AUTO_WEIGHTS if counts.max() / counts.min() >= AUTO_IMBALANCE else "none"
    if mode == "none":
        return mode, None
    balanced = counts.sum() / (len(counts) * counts)
    return mode, balanced if mode == "balanced" else np.sqrt(balanced)


def gold_ids(values: Sequence[Any], label_names: Sequence[str]) -> np.ndarray:
    """Class ids of gold class names; a name outside ``label_names`` is a one-line error."""
    index = {str(n): i for i, n in enumerate(label_names)}
    out = np.empty(len(values), dtype=np.int64)
    for k, v in enumerate(values):
        if str(v) not in index:
            raise BmcoreError(f"gold label {str(v)!r} is not one of the label names {list(label_names)[:10]}")
        out[k] = index[str(v)]
    return out


def text_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The input columns of a text prediction table: text, and text_pair for pairs."""
    out = pd.DataFrame({"text": df["text"].astype(str).to_numpy()})
    if "text_pair" in df:
        out["text_pair"] = df["text_pair"].astype(str).to_numpy()
    return out


def single_label_prediction_table(df: pd.DataFrame, probs: np.ndarray, label_names: Sequence[str], *,
                     truncated: np.ndarray | None = None, inputs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The single-label task's prediction table of a split from the model's probabilities [n, classes]: what
    :meth:`SingleLabelClassification.prediction_frame` returns, and so what :func:`bmcore.evaluate.prediction_table`
    (from logits or probabilities, through the task) gives.

    Columns: the inputs (``inputs``, by default text and text_pair), gold, pred, ``prob_<label>`` per class,
    confidence, loss (per-example cross-entropy in nats), correct, truncated.
    """
    label_names = list(label_names)
    probs = np.asarray(probs, dtype=np.float64)
    gold = df["label"].astype(str).tolist()
    ids = gold_ids(gold, label_names)
    pred_ids = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    out = (inputs if inputs is not None else text_columns(df)).reset_index(drop=True).copy()
    out["gold"] = gold
    out["pred"] = [label_names[i] for i in pred_ids]
    for i, n in enumerate(label_names):
        out[f"{PROB_PREFIX}{n}"] = probs[:, i]
    out["confidence"] = probs.max(axis=1) if len(probs) else np.zeros(0)
    out["loss"] = -np.log(np.clip(probs[np.arange(len(ids)), ids], EPS, 1.0))
    out["correct"] = pred_ids == ids
    out["truncated"] = np.asarray(truncated, dtype=bool) if truncated is not None else False
    return out


def missed_classes(matrix: Sequence[Sequence[int]], label_names: Sequence[str]) -> list[dict[str, Any]]:
    """Classes with examples that the model (almost) never predicts right: recall at most :data:`MISSED_RECALL`.

    ``matrix`` is the confusion matrix, rows gold and columns predicted, in ``label_names`` order.
    """
    try:
        cm = np.asarray(matrix, dtype=np.int64)
    except (TypeError, ValueError):  # a damaged eval.json: nothing to say rather than a traceback
        return []
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        return []
    out = []
    for i, name in enumerate(label_names):
        support = int(cm[i].sum()) if i < len(cm) else 0
        if support and cm[i, i] / support <= MISSED_RECALL:
            out.append({"label": str(name), "recall": float(cm[i, i] / support), "hits": int(cm[i, i]),
                        "support": support, "predicted": int(cm[:, i].sum())})
    return out


def missed_classes_note(missed: Sequence[dict[str, Any]], split: str = "test") -> str:
    """One plain-text warning for :func:`missed_classes`, with what to try; empty when no class is missed."""
    if not missed:
        return ""
    parts = [f"{m['label']} ({m['hits']} of {m['support']} {examples_of(split)})" for m in missed]
    return (("Class " if len(missed) == 1 else "Classes ") + ", ".join(parts)
            + (" is" if len(missed) == 1 else " are") + " never or almost never predicted right. The model has not "
            "learned " + ("it" if len(missed) == 1 else "them") + ": train with class weights (balanced), more epochs "
            "or a higher learning rate, or add examples.")



ABSENT_LOGIT = -30.0  # a few-shot head's logit for a class no training example has: probability about 1e-13


class SingleLabelClassification(Task):
    problem_type = "single_label_classification"
    title = "Single-label classification"
    label_quality = True
    # 480 rows of 6 question classes: 12 steps on the old defaults scored macro F1 0.29, about 150 steps 0.91 (issue 27;
    # README, "Small data, text"). 150 also leaves BBC News' 1,780 long texts (168 steps in 3 epochs) as they were.
    min_train_steps = 150

    @property
    def quality_encoders(self) -> tuple[str, ...]:  # type: ignore[override]

        return ENCODERS

    few_shot = True

    def few_shot_head(self) -> tuple[str | None, Any]:
        from sklearn.linear_model import LogisticRegression

        return None, LogisticRegression(max_iter=1000)

    def few_shot_weights(self, head: Any, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
        # Classes absent from training get a logit far below the rest; two classes: sklearn keeps one row, the logit
        # of classes_[1] against classes_[0].
        coef, intercept, classes = np.asarray(head.coef_), np.asarray(head.intercept_), list(head.classes_)
        if len(classes) == 2:
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
        weight = np.zeros((n_labels, coef.shape[1]), dtype=np.float64)
        bias = np.full(n_labels, ABSENT_LOGIT, dtype=np.float64)
        weight[classes], bias[classes] = coef, intercept
        return weight.astype(np.float32), bias.astype(np.float32)

    def targets(self, df: pd.DataFrame, label_names: Sequence[str]) -> list[int]:
        return gold_ids(df["label"].astype(str).tolist(), label_names).tolist()

    def input_columns(self, df: pd.DataFrame) -> pd.DataFrame:
        """The columns that show each example in a prediction table."""
        return text_columns(df)

    def gold(self, df: pd.DataFrame, label_names: Sequence[str]) -> list[str]:
        gold = df["label"].astype(str).tolist()
        gold_ids(gold, label_names)
        return gold

    def loss(self, config: Any, targets: list[Any], label_names: Sequence[str]) -> tuple[str, Callable[..., Any] | None, Any]:
        import torch

        counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=len(label_names))
        mode, vector = loss_class_weights(config.class_weights, counts)
        if vector is None:
            return mode, None, None
        weights = torch.tensor(vector, dtype=torch.float32)

        def compute_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
            logits = outputs["logits"].float()
            return torch.nn.functional.cross_entropy(logits, labels, weight=weights.to(logits.device))

        return mode, compute_loss, {n: round(float(w), 3) for n, w in zip(label_names, vector, strict=True)}

    def missed_note(self, metrics: dict[str, Any], split: str = "test") -> str:
        cm = metrics.get("confusion_matrix") or []  # an evaluation's {"matrix", "labels"}; eval.json's matrix and "labels"
        matrix, labels = (cm.get("matrix"), cm.get("labels")) if isinstance(cm, dict) else (cm, metrics.get("labels"))
        return missed_classes_note(missed_classes(matrix or [], labels or []), split)

    def validation_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        m = classification_metrics(np.asarray(logits).argmax(axis=-1), np.asarray(targets), list(label_names))
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    def scores(self, logits: np.ndarray, meta: dict[str, Any] | None = None, *, calibrated: bool = False) -> np.ndarray:
        t = (meta or {}).get("temperature") if calibrated else None
        return apply_temperature(logits, float(t)) if t else softmax(logits)

    def torch_scores(self, logits: Any) -> Any:
        return logits.float().softmax(dim=-1)

    def decide(self, scores: np.ndarray, label_names: Sequence[str], meta: dict[str, Any] | None = None) -> list[str]:
        return [str(label_names[i]) for i in np.asarray(scores).argmax(axis=1)] if len(scores) else []

    def split_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str],
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
        return classification_metrics(np.asarray(logits).argmax(axis=-1), np.asarray(targets), list(label_names))

    def evaluate(self, df: pd.DataFrame, logits: np.ndarray, label_names: Sequence[str], meta: dict[str, Any], *,
                 truncated: np.ndarray | None, validation: Callable[[], tuple[pd.DataFrame, np.ndarray]] | None,
                 fit: bool, n_bins: int) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any], list[str]]:
        """The table and metrics of a split, with temperature scaling fitted on ``validation()`` when ``fit``."""
        table = single_label_prediction_table(df, softmax(logits), label_names, truncated=truncated, inputs=self.input_columns(df))
        probs = table[[f"{PROB_PREFIX}{n}" for n in label_names]].to_numpy(dtype=np.float64)
        metrics = compute_metrics(table["gold"].tolist(), table["pred"].tolist(), probs, label_names, n_bins)
        notes: list[str] = []
        save: dict[str, Any] = {}
        calib: dict[str, Any] = {"temperature": None, "fitted_on": None, "saved": False, "reason": None}
        temperature = None
        if fit and validation is not None:
            val, val_logits = validation()
            val_ids = gold_ids(val["label"].astype(str).tolist(), label_names)
            decision = decide_temperature(val_logits, val_ids)
            temperature = decision.pop("temperature")
            calib.update(decision, temperature=temperature, fitted_on="validation" if temperature else None)
            if temperature:
                calib.update(nll_validation_before=nll(val_logits, val_ids, 1.0),
                             nll_validation_after=nll(val_logits, val_ids, temperature))
            save.update(temperature=temperature, temperature_reason=calib["reason"])
        elif meta.get("temperature"):
            temperature = float(meta["temperature"])
            calib.update(temperature=temperature, fitted_on="saved with the model")
        elif fit:
            calib["reason"] = "the dataset has no validation split to fit a temperature on"
            notes.append("no validation split: temperature scaling was not fitted")
        elif isinstance(meta.get("temperature_reason"), str):
            calib["reason"] = meta["temperature_reason"]
        else:
            calib["reason"] = "temperature scaling was not asked for, and none is saved with the model"
        if temperature:
            cal = compute_metrics(table["gold"].tolist(), table["pred"].tolist(), apply_temperature(logits, temperature),
                                  label_names, n_bins)
            calib.update(ece_before=metrics["ece"], ece_after=cal["ece"], log_loss_before=metrics["log_loss"],
                         log_loss_after=cal["log_loss"], reliability_after=cal["reliability"])
            metrics["ece_calibrated"], metrics["log_loss_calibrated"] = cal["ece"], cal["log_loss"]
        else:
            metrics["ece_calibrated"] = metrics["log_loss_calibrated"] = None
        metrics["temperature"] = temperature
        metrics["calibration"] = calib
        return table, metrics, save, notes

    def baseline(self, train: pd.DataFrame, df: pd.DataFrame, label_names: Sequence[str], *, seed: int,
                 n_bins: int) -> dict[str, Any]:
        return baseline_metrics(train, df, list(label_names), seed=seed, n_bins=n_bins, decide=self.decide)

    # --- the evaluate CLI and the model card ---------------------------------------------------

    baseline_name = "TF-IDF + logistic regression"  # the card's name of the baseline (bmcore.baseline)
    baseline_features = "TF-IDF"  # what the baseline reads, for the card's "No ... baseline was trained"
    card_metrics = (("accuracy", "accuracy", "Test accuracy", None), ("f1", "macro_f1", "Test macro F1", {"average": "macro"}))

    def summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Accuracy and macro F1 with the calibration error before and after temperature scaling, and the
        baseline's accuracy and macro F1."""
        m, base = metrics, metrics.get("baseline")
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"], "temperature": m["temperature"],
                "temperature_reason": (m.get("calibration") or {}).get("reason"), "ece_calibrated": m["ece_calibrated"],
                "baseline": {"accuracy": base["accuracy"], "macro_f1": base["macro_f1"]} if base else None}

    def card_what(self, labels: Sequence[str], modality: str) -> str:
        names = ", ".join(md_code(n) for n in labels)
        return f"A{'n' if modality[:1] in 'aeiou' else ''} {modality} classifier with {len(labels)} classes ({names})"

    def card_results(self, model: dict[str, Any], baseline: dict[str, Any], meta: dict[str, Any],
                     labels: Sequence[str]) -> list[str]:
        """Accuracy and macro F1 against the baseline, each class's precision, recall and F1, and the calibration
        error before and after temperature scaling."""
        if model.get("accuracy") is None:
            return ["No test metrics were saved for this run.", ""]
        n = model.get("n")
        lines = [f"Scored on {n:,} held-out test examples, never seen in training or model selection." if n else "", "",
                 "| model | accuracy | macro F1 |", "| --- | ---: | ---: |",
                 f"| this model | {card_number(model.get('accuracy'))} | {card_number(model.get('macro_f1'))} |"]
        if baseline.get("accuracy") is not None:
            lines += [f"| baseline: {self.baseline_name} | {card_number(baseline.get('accuracy'))} | "
                      f"{card_number(baseline.get('macro_f1'))} |", "",
                      "The baseline is trained on the same train split and scored on the same test examples.", ""]
        else:
            lines += ["", f"No {self.baseline_features} baseline was trained (the dataset had no train split).", ""]
        per_class = model.get("per_class") or {}
        if per_class:
            lines += ["| class | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
            lines += [f"| {md(name)} | {card_number(v.get('precision'))} | {card_number(v.get('recall'))} | "
                      f"{card_number(v.get('f1'))} | {v.get('support', '-')} |" for name, v in per_class.items()]
            lines.append("")
        if model.get("ece") is not None:
            t = model.get("temperature")
            why = (model.get("calibration") or {}).get("reason") or meta.get("temperature_reason")
            lines += [f"Expected calibration error {card_number(model.get('ece'))}"
                      + (f", {card_number(model.get('ece_calibrated'))} after temperature scaling (T = {t:.3f}, fitted "
                         "on the validation split and saved in `bmcore.json`)" if t else "") + "."
                      + (f" No temperature was saved: {md(why)}." if not t and isinstance(why, str) and why else ""), ""]
        return lines

    def card_usage(self, dataset: str, meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """transformers' text-classification pipeline, the CLI, and the limitations."""
        msl = meta.get("max_seq_length") or config.get("max_seq_length")
        limit = f"truncation=True{f', max_length={msl}' if msl else ''}"
        return ["## Use it", "", "```python", "from transformers import pipeline", "",
                'classifier = pipeline("text-classification", model="path/to/this/folder")',
                f'classifier("your text here", {limit})', "```", "",
                "Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder \"your text here\"`.",
                "", "## Limitations", "",
                f"It only knows the classes above and the kind of text in {md_code(dataset)}; texts longer than "
                f"{msl or 'max_seq_length'} tokens are cut. Check the confusion matrix and the misclassified examples "
                "before relying on it.", ""]

    def score_label_quality(self, ds: Any, rows: pd.DataFrame, labels: np.ndarray, **kwargs: Any
                            ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        return score_texts(ds, rows, labels, top_class=self.top_class, **kwargs)

    def read_labels(self, df: pd.DataFrame, cols: Columns, where: str) -> pd.Series:
        return normalise_labels(df[cols.label], cols.label)

    def found_labels(self, labels: pd.Series, cols: Columns) -> list[str]:
        return order_labels(labels)

    def prepared_labels(self, std: dict[str, pd.DataFrame], cols: Columns) -> tuple[list[str], list[str] | None, str]:
        return checked_label_names(std, cols, self.found_labels), None, "label"

    def label_counts(self, df: pd.DataFrame, label_names: Sequence[str]) -> dict[str, int]:
        return {n: int(c) for n, c in df["label"].value_counts().reindex(label_names, fill_value=0).items()}

    def label_masks(self, df: pd.DataFrame, label_names: Sequence[str]) -> Iterator[np.ndarray]:
        for n in label_names:
            yield (df["label"] == n).to_numpy()

    def prediction_frame(self, df: pd.DataFrame, probs: np.ndarray, label_names: Sequence[str], *,
                         truncated: np.ndarray | None = None) -> pd.DataFrame:
        return single_label_prediction_table(df, probs, label_names, truncated=truncated, inputs=self.input_columns(df))


def checked_label_names(std: dict[str, pd.DataFrame], cols: Columns,
                        found: Callable[[pd.Series, Columns], list[str]]) -> list[str]:
    """The label names of the standardised splits ``std`` (``found`` reads them from their label column), in order;
    refused when there are fewer than two or more than :data:`~bmcore.data.columns.MAX_CLASSES`."""
    labels_all = pd.concat([d["label"] for d in std.values()])
    what = "label columns " + ", ".join(map(repr, cols.label_columns)) if cols.label_columns else f"column {cols.label!r}"
    if labels_all.empty:
        raise BmcoreError(f"{what if cols.label_columns else 'label ' + what} is empty or every text is empty")
    label_names = found(labels_all, cols)
    if len(label_names) < 2:
        raise BmcoreError(f"only one class ({label_names[0]!r}) in {what}; classification needs at least two"
                          if label_names else f"{what} holds no label at all")
    if len(label_names) > MAX_CLASSES:
        raise BmcoreError(f"{what} has {len(label_names)} classes (more than {MAX_CLASSES}); is it really the label column?")
    return label_names


TASK = SingleLabelClassification()
