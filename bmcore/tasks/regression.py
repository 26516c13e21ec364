"""Regression: one number per example (a similarity score, a star rating, a priority), mean squared error.

Hugging Face's ``problem_type="regression"``: the model has one output, the predicted score. Training standardises the
targets (the loss is the mean squared error of ``(prediction - gold) / std``, with the mean and standard deviation of
the training scores), so a score in thousands trains as well as one from 0 to 5; the head's output is shifted and
scaled by the same two numbers, so every prediction, curve and metric is in the user's units. Before the model is
saved the two numbers are folded into the head's last layer: the saved folder is a standard one whose raw output is
the score (``transformers.pipeline("text-classification", model=DIR, function_to_apply="none")``).

The best checkpoint is chosen by validation Pearson correlation; the Evaluate page shows Pearson and Spearman
correlation, RMSE, MAE and R², the error in ranges of the gold score, and a baseline: ridge regression on TF-IDF
features (:func:`bmcore.baseline.regression_baseline_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..baseline import regression_baseline_metrics
from ..data.columns import Columns
from ..data.label_stats import score_stats
from ..data.label_values import order_labels, score_values
from ..display import md_code
from ..errors import BmcoreError
from ..metrics import regression_metrics
from .base import Task, card_number

SCORE_LABEL = "score"  # the one output's name in id2label: pipeline() answers {"label": "score", "score": ...}
SUMMARY_KEYS = ("pearson", "spearman", "rmse", "mae", "r2")  # what bmcore evaluate and the model card give
BASELINE_CARD_NAME = "TF-IDF + ridge regression (for pairs: both texts and their overlap)"
EXAMPLE_RANGES = 3  # the Playground's examples come from the low, middle and high scores
MIN_STD = 1e-8  # a training split whose scores are all equal still trains (on the raw error)
SCORE_BIN = "_score_bin"  # a temporary column: the splits of scores are stratified on their quantile range
SCORE_BINS = 5


def standardisation(targets: Sequence[float]) -> tuple[float, float]:
    """The mean and standard deviation of the training scores (std 1 when they do not vary)."""
    y = np.asarray(targets, dtype=np.float64)
    if not y.size:
        return 0.0, 1.0
    std = float(y.std())
    return float(y.mean()), std if std > MIN_STD else 1.0


def output_layer(model: Any) -> Any:
    """The head's last linear layer: the one with a single output, outside the base model."""
    import torch

    prefix = getattr(model, "base_model_prefix", "")
    found = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1
             and not (prefix and name.startswith(prefix + "."))]
    if not found:
        raise BmcoreError(f"{type(model).__name__} has no one-output head to predict a score with")
    return found[-1]


class Regression(Task):
    problem_type = "regression"
    title = "Regression"
    label_quality = False
    defaults = {"metric_for_best_model": "pearson"}
    min_train_steps = 150  # as the text classifiers (bmcore.schedule)
    pipeline_kwargs = ', function_to_apply="none"'  # the raw output is the score: no softmax or sigmoid
    headline = ("pearson", "spearman", "rmse", "mae")
    metric_names = {"pearson": "Pearson correlation", "spearman": "Spearman correlation", "rmse": "RMSE", "mae": "MAE",
                    "r2": "R²"}
    more_data = "add training examples across the whole range of scores"
    label_unit = "score"  # "1 score": the one output
    # No confusion matrix, calibration or per-class view: a score is right by a distance, not a class.
    evaluate_sections = ("score_summary", "score_scatter", "error_by_range", "score_errors", "score_compare")

    # --- data -> targets ---------------------------------------------------------------------

    def label_names(self, dataset: Any) -> list[str]:
        return [SCORE_LABEL]

    def targets(self, df: pd.DataFrame, label_names: Sequence[str]) -> list[float]:
        try:
            y = df["label"].astype(float)
        except (TypeError, ValueError) as exc:
            raise BmcoreError(f"regression needs a number in every row's label ({exc})") from None
        if not np.isfinite(y.to_numpy()).all():
            raise BmcoreError("regression needs a finite number in every row's label (found an empty cell, inf or NaN)")
        return y.tolist()

    def gold(self, df: pd.DataFrame, label_names: Sequence[str]) -> np.ndarray:
        return np.asarray(self.targets(df, label_names), dtype=np.float64)

    # --- the model ---------------------------------------------------------------------------

    def init_model(self, model: Any, targets: list[Any], config: Any, *, resume: bool = False) -> str | None:
        """Shift and scale the head's output by the training scores' mean and standard deviation, so the head learns
        standardised scores and the model answers in the user's units (also on resume: the hook is not saved)."""
        mean, std = standardisation(targets)
        layer = output_layer(model)
        handle = layer.register_forward_hook(lambda module, args, out: out * std + mean)
        model.bmcore_standardisation = (handle, layer, mean, std)
        return f"scores standardised for training: mean {mean:.4g}, standard deviation {std:.4g}"

    def before_save(self, model: Any) -> str | None:
        """Fold the mean and standard deviation into the head's last layer, so the saved model answers in the user's
        units without bmcore: ``w * std`` and ``b * std + mean``."""
        import torch

        handle, layer, mean, std = getattr(model, "bmcore_standardisation", (None, None, 0.0, 1.0))
        if handle is None:
            return None
        with torch.no_grad():
            layer.weight.mul_(std)
            if layer.bias is not None:
                layer.bias.mul_(std).add_(mean)
        handle.remove()
        del model.bmcore_standardisation
        return "the standardisation is folded into the head: the saved model predicts scores in the data's units"

    def loss(self, config: Any, targets: list[Any], label_names: Sequence[str]) -> tuple[str, Callable[..., Any] | None, Any]:
        import torch

        _, std = standardisation(targets)

        def compute_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
            pred = outputs["logits"].float().view(-1)
            return torch.nn.functional.mse_loss(pred / std, labels.float().view(-1) / std)

        return "none", compute_loss, None

    def validation_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        m = regression_metrics(np.asarray(targets), np.asarray(logits)[:, 0])
        # Trainer compares the best checkpoint's figure with numbers: a constant prediction correlates 0, not None.
        return {k: m[k] if m[k] is not None else 0.0 for k in ("pearson", "spearman", "rmse", "mae")}

    # --- logits -> scores -> predictions ------------------------------------------------------

    def scores(self, logits: np.ndarray, meta: dict[str, Any] | None = None, *, calibrated: bool = False) -> np.ndarray:
        """The predicted score itself, [n, 1] (no softmax: the output is the number)."""
        return np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)[:, :1]

    def torch_scores(self, logits: Any) -> Any:
        return logits.float()[:, :1]

    def decide(self, scores: np.ndarray, label_names: Sequence[str], meta: dict[str, Any] | None = None) -> list[float]:
        return [float(s) for s in np.asarray(scores, dtype=np.float64).reshape(-1)]

    # --- scoring a split ----------------------------------------------------------------------

    def split_metrics(self, logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str],
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
        return regression_metrics(np.asarray(targets), np.asarray(logits)[:, 0])

    def prediction_table(self, df: pd.DataFrame, pred: np.ndarray, truncated: np.ndarray | None) -> pd.DataFrame:
        """Inputs, gold, pred, error (pred - gold), abs_error and truncated, one row per example."""
        out = self.input_columns(df).reset_index(drop=True).copy()
        out["gold"] = self.gold(df, [SCORE_LABEL])
        out["pred"] = np.asarray(pred, dtype=np.float64)
        out["error"] = out["pred"] - out["gold"]
        out["abs_error"] = out["error"].abs()
        out["truncated"] = np.asarray(truncated, dtype=bool) if truncated is not None else False
        return out

    def input_columns(self, df: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({"text": df["text"].astype(str).to_numpy()})
        if "text_pair" in df:
            out["text_pair"] = df["text_pair"].astype(str).to_numpy()
        return out

    def evaluate(self, df: pd.DataFrame, logits: np.ndarray, label_names: Sequence[str], meta: dict[str, Any], *,
                 truncated: np.ndarray | None, validation: Callable[[], tuple[pd.DataFrame, np.ndarray]] | None,
                 fit: bool, n_bins: int) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any], list[str]]:
        """The table (sorted as the split is; the error browser sorts by ``abs_error``) and the metrics. Nothing is
        fitted after training: a score has no temperature or thresholds."""
        pred = self.scores(logits)[:, 0]
        table = self.prediction_table(df, pred, truncated)
        metrics = {"problem_type": self.problem_type, "label_names": [SCORE_LABEL],
                   **regression_metrics(table["gold"].to_numpy(), pred)}
        return table, metrics, {}, []

    def baseline(self, train: pd.DataFrame, df: pd.DataFrame, label_names: Sequence[str], *, seed: int,
                 n_bins: int) -> dict[str, Any]:
        return regression_baseline_metrics(train, df)


    # --- a prediction, the evaluate CLI, the model card and ONNX ---------------------------------

    def record(self, decision: Any, scores: Sequence[float], label_names: Sequence[str],
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """``score``: the predicted number, in the training data's units."""
        return {"score": float(decision)}

    def explain_target(self, record: dict[str, Any]) -> str:
        return SCORE_LABEL  # the one output: attributions explain the score itself

    playground_view = "score"
    attribution_output = "score"

    def explained_output(self, target: str) -> str:
        return "the score"

    def prediction_tiles(self, record: dict[str, Any], gold: str | None = None
                         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The predicted score; the example's gold score, with the error (predicted - gold)."""
        tiles = [{"label": "Predicted score", "value": f"{record['score']:.3f}",
                  "help": "The model's one output: a number in the units of the scores it was trained on."}]
        try:
            true = float(gold) if gold is not None else None
        except ValueError:
            true = None
        if true is None or not np.isfinite(true):
            return tiles, None
        return tiles, {"label": "True score", "value": f"{true:.3f}", "delta": f"{record['score'] - true:+.3f} error",
                       "delta_color": "off", "delta_arrow": "off",
                       "help": "The example's score in its dataset; the error is the predicted score minus it."}

    def example_groups(self, labels: pd.Series, label_names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        """Low, middle and high scores: the split's scores cut at their thirds."""
        y = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64)
        known = np.isfinite(y)
        if not known.any():
            return []
        edges = np.quantile(y[known], np.linspace(0, 1, EXAMPLE_RANGES + 1))
        which = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, EXAMPLE_RANGES - 1)
        return [(f"{edges[k]:.2f} to {edges[k + 1]:.2f}", known & (which == k)) for k in range(EXAMPLE_RANGES)]

    def gold_text(self, value: Any) -> str:
        try:
            return f"{float(value):.2f}"
        except (TypeError, ValueError):
            return str(value)

    def summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Pearson and Spearman correlation, RMSE, MAE and R², and the baseline's same figures."""
        base = metrics.get("baseline")
        return {"problem_type": self.problem_type, **{k: metrics.get(k) for k in SUMMARY_KEYS},
                "baseline": {k: base.get(k) for k in SUMMARY_KEYS} if base else None}

    card_metrics = (("pearsonr", "pearson", "Test Pearson correlation", None),
                    ("spearmanr", "spearman", "Test Spearman correlation", None),
                    ("mse", "rmse", "Test RMSE", {"squared": False}), ("mae", "mae", "Test MAE", None))

    def card_what(self, labels: Sequence[str], modality: str) -> str:
        return f"A {modality} regression model that predicts a score (one number per input)"

    def card_labels(self, labels: Sequence[str]) -> str:
        return "- Target: a score, one number per example (the label column), learned with mean squared error"

    def card_results(self, model: dict[str, Any], baseline: dict[str, Any], meta: dict[str, Any],
                     labels: Sequence[str]) -> list[str]:
        """Pearson and Spearman correlation, RMSE, MAE and R² against the baseline, and the error by gold range."""
        if model.get("pearson") is None and model.get("rmse") is None:
            return ["No test metrics were saved for this run.", ""]
        n = model.get("n")
        head = " | ".join(self.metric_names[k] for k in SUMMARY_KEYS)
        lines = [f"Scored on {n:,} held-out test examples, never seen in training or model selection." if n else "", "",
                 f"| model | {head} |", "| --- |" + " ---: |" * len(SUMMARY_KEYS),
                 "| this model | " + " | ".join(card_number(model.get(k)) for k in SUMMARY_KEYS) + " |"]
        if baseline.get("rmse") is not None:
            lines += [f"| baseline: {BASELINE_CARD_NAME} | " + " | ".join(card_number(baseline.get(k)) for k in SUMMARY_KEYS)
                      + " |", "", "The baseline is trained on the same train split and scored on the same test examples."]
        else:
            lines += ["", "No TF-IDF baseline was trained (the dataset had no train split)."]
        lines += ["", "RMSE and MAE are in the data's own units (lower is better).", ""]
        ranges = [r for r in model.get("error_by_range") or [] if isinstance(r, dict) and r.get("n")]
        if ranges:
            lines += ["| gold score | examples | MAE | mean error (predicted - gold) |", "| --- | ---: | ---: | ---: |"]
            lines += [f"| {card_number(r.get('low'), '.2f')} to {card_number(r.get('high'), '.2f')} | {r['n']} | "
                      f"{card_number(r.get('mae'))} | {card_number(r.get('bias'), '+.4f')} |" for r in ranges]
            lines.append("")
        return lines

    def card_usage(self, dataset: str, meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """transformers' pipeline with ``function_to_apply="none"`` (the raw output is the score), the CLI, limits."""
        msl = meta.get("max_seq_length") or config.get("max_seq_length")
        limit = f"truncation=True{f', max_length={msl}' if msl else ''}"
        return ["## Use it", "", "The model's one output is the score itself: ask the pipeline for the raw output, "
                "not a softmax.", "", "```python", "from transformers import pipeline", "",
                f'scorer = pipeline("text-classification", model="path/to/this/folder"{self.pipeline_kwargs})',
                f'print(scorer("your text here", {limit}))  # [{{"label": "{SCORE_LABEL}", "score": ...}}]',
                f'print(scorer({{"text": "a first text", "text_pair": "a second text"}}, {limit}))  # a text pair',
                "```", "",
                "Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder \"your text here\"` "
                "(`--pair \"second text\"` for text pairs).", "", "## Limitations", "",
                f"It knows the range of scores and the kind of text in {md_code(dataset)}; a score outside the training "
                f"range is rarely predicted, and texts longer than {msl or 'max_seq_length'} tokens are cut. Check the "
                "error by gold range and the examples with the largest errors before relying on it.", ""]

    output_name = "score"
    agreement_key = "score_agreement"

    def agreeing(self, got: np.ndarray, ref: np.ndarray, label_names: Sequence[str], meta: dict[str, Any],
                 atol: float) -> int:
        """How many examples get the same score from both, within ``atol``."""
        return int((np.abs(self.scores(got)[:, 0] - self.scores(ref)[:, 0]) <= atol).sum())

    weighs_classes = False  # one output: no classes to weigh
    takes_class_weights = False
    rows_by_label = False  # a row has a score, not a class

    def read_labels(self, df: pd.DataFrame, cols: Columns, where: str) -> np.ndarray:
        return score_values(df[cols.label], cols.label).to_numpy()

    def found_labels(self, labels: pd.Series, cols: Columns) -> list[str]:
        return order_labels(labels)

    def prepared_labels(self, std: dict[str, pd.DataFrame], cols: Columns) -> tuple[list[str], list[str] | None, str]:
        """Refuse, in one line, scores a model cannot learn (none, or one value only); the splits are stratified on
        each score's quantile range, so every split holds low, middle and high scores alike."""
        scores = pd.concat([d["label"] for d in std.values()])
        if scores.empty:
            raise BmcoreError(f"score column {cols.label!r} is empty or every text is empty")
        if scores.nunique() < 2:
            raise BmcoreError(f"every score in column {cols.label!r} is {scores.iloc[0]:g}; regression needs scores that vary")
        bins = score_bins(scores)
        for df in std.values():
            df[SCORE_BIN] = bins(df["label"])
        return [SCORE_LABEL], None, SCORE_BIN

    def label_counts(self, df: pd.DataFrame, label_names: Sequence[str]) -> dict[str, int]:
        return {n: int(len(df)) for n in label_names}  # every row has its score

    def label_masks(self, df: pd.DataFrame, label_names: Sequence[str]) -> Iterator[np.ndarray]:
        for _ in label_names:
            yield np.ones(len(df), dtype=bool)

    def label_stats(self, splits: dict[str, pd.DataFrame], label_names: Sequence[str]) -> dict[str, Any]:
        """The scores' distribution per split (:func:`~bmcore.data.label_stats.score_stats`)."""
        return {**score_stats({s: df["label"].to_numpy(dtype=float) for s, df in splits.items()}), "class_weights": {}}


def score_bins(scores: pd.Series) -> Callable[[pd.Series], np.ndarray]:
    """A function giving each score its quantile range (of :data:`SCORE_BINS`) among ``scores``, so every split holds
    low, middle and high scores alike."""
    edges = np.unique(np.quantile(scores.to_numpy(dtype=float), np.linspace(0, 1, SCORE_BINS + 1)[1:-1]))
    return lambda s: np.searchsorted(edges, s.to_numpy(dtype=float), side="right").astype(str)


TASK = Regression()
