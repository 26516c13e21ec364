"""What the Evaluate page shows around its charts, worked out: the splits to offer, the command that writes the same
evaluation, captions, metric tiles against the baseline or another run, calibration and threshold sentences, and the
curve and F1-difference frames. (The Playground's note on a model without a temperature is here too.)

``pages/evaluate.py`` and its section modules only draw what these functions return.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..baseline import PIXEL_BASELINE_NAME
from ..data import SPLITS
from ..display import md, plot_text
from ..evaluation_files import find_evaluation
from ..run_list import RunSummary
from ..splits import examples_of
from . import SUBSET_HELP, Tile, delta, fmt, shown_path, tile


def split_choices(sizes: dict[str, int]) -> list[str]:
    """The splits a dataset can be scored on: those not known to be empty (all of them when none is left)."""
    return [s for s in SPLITS if sizes.get(s, 1)] or list(SPLITS)


def default_split(options: Sequence[str]) -> str:
    """The test split when there is one: the honest score."""
    return "test" if "test" in options else options[0]


def evaluate_command(model_dir: str, dataset: str, split: str, out_dir: str | Path, baseline_train: str | None = None) -> str:
    """The terminal command that writes the same evaluation, on two lines (``baseline_train``: the prepared dataset
    whose train split trains the baseline, for a source without one)."""
    return (shlex.join(["python", "-m", "bmcore", "evaluate", "--model", model_dir]) + " \\\n    "
            + shlex.join(["--data", dataset, "--split", split, "--out", str(shown_path(out_dir)),
                          *(["--baseline-train", baseline_train] if baseline_train else [])]))


def scoring_note(dataset: str, split: str, sizes: dict[str, int]) -> str:
    """What scoring ``dataset``/``split`` involves, for a model not scored on it yet."""
    n = sizes.get(split, 0)
    extra = sizes.get("validation", 0) if split != "validation" else 0
    return (f"This model has not been scored on {md(dataset)} / {split} yet: {n:,} examples"
            + (f", plus {extra:,} validation examples to fit the temperature" if extra else "")
            + ". The result is saved, so next time it opens at once.")


def evaluation_caption(metrics: dict[str, Any], n: int, n_classes: int, dataset: str, split: str,
                       unit: str = "classes") -> str:
    """One line on what was scored: how many examples of which split, when, in which precision, what was cut."""
    m = metrics
    return (f"{m.get('n', n):,} {examples_of(split)} of {md(dataset)} · {n_classes} {unit} · "
            f"scored {m.get('created', '')} in {m.get('precision') or '-'}"
            + (f" · {m['image_size']} px images" if m.get("image_size") else
               f" · max_seq_length {m.get('max_seq_length') or '-'}")
            + (f" · {m['truncated']:,} texts truncated" if m.get("truncated") else ""))


def headline_tiles(metrics: dict[str, Any]) -> list[list[Tile]]:
    """The Evaluate page's two rows of tiles: accuracy and macro F1 against the baseline, then calibration and AUC."""
    m, base = metrics, metrics.get("baseline") or {}
    calibrated = m.get("ece_calibrated")
    return [
        [tile("Accuracy", fmt(m["accuracy"]), delta(m["accuracy"], base.get("accuracy")),
              "Share of examples predicted right."),
         tile("Baseline accuracy", fmt(base.get("accuracy")), help=("Logistic regression on the pixels (16x16 grayscale)"
              if base.get("model") == PIXEL_BASELINE_NAME else "TF-IDF + logistic regression") + ", trained on the same "
              "train split and scored on the same examples."),
         tile("Macro F1", fmt(m["macro_f1"]), delta(m["macro_f1"], base.get("macro_f1")),
              "The mean of the per-class F1 scores: every class counts the same, however rare."),
         tile("Baseline macro F1", fmt(base.get("macro_f1")))],
        [tile("ECE", fmt(m.get("ece")), help="Expected calibration error: the average gap between confidence and "
              "accuracy over confidence bins (0 is perfect)."),
         tile("ECE, calibrated", fmt(calibrated), delta(calibrated, m.get("ece"), "") if calibrated is not None else None,
              "After temperature scaling, fitted on the validation split. Lower is better.", "inverse"),
         tile("ROC-AUC (macro)", fmt(m.get("macro_roc_auc")), help="One class against the rest, averaged over classes."),
         tile("Log loss", fmt(m.get("log_loss")), help="Mean cross-entropy of the gold class (lower is better).")],
    ]


MULTI_LABEL_TILES = (  # key, tile label, help; lower is better for hamming_loss
    ("micro_f1", "Micro F1", "F1 over every (example, label) decision pooled: frequent labels weigh most."),
    ("macro_f1", "Macro F1", "The mean of the per-label F1 scores: every label counts the same, however rare."),
    ("weighted_f1", "Weighted F1", "The per-label F1 scores averaged by each label's number of gold examples."),
    ("samples_f1", "Samples F1", "F1 of each example's predicted set against its gold set, averaged over examples."),
    ("subset_accuracy", "Subset accuracy", SUBSET_HELP),
    ("hamming_loss", "Hamming loss", "Share of (example, label) decisions that are wrong (lower is better)."),
)


def multi_label_tiles(metrics: dict[str, Any]) -> list[list[Tile]]:
    """A multi-label evaluation's headline tiles, three rows of two metrics each beside the TF-IDF one-vs-rest baseline."""
    base = metrics.get("baseline") or {}
    tiles = []
    for key, label, help in MULTI_LABEL_TILES:
        value, other = metrics.get(key), base.get(key)
        color = "inverse" if key == "hamming_loss" else "normal"
        tiles += [tile(label, fmt(value), delta(value, other), help, color),
                  tile(f"Baseline {label if key == 'hamming_loss' else label[0].lower() + label[1:]}", fmt(other),
                       help="TF-IDF + one logistic regression per label, trained on the same train split.")]
    return [tiles[i:i + 4] for i in range(0, len(tiles), 4)]


THRESHOLD_TEXT = ("A **per-label threshold** is the score a label needs before the model says yes to it: instead of "
                  "one 0.5 for every label, each label gets the cut-off that gave it the best F1 on the validation "
                  "split, so a rare label the model is shy about can still be predicted.")


def threshold_tiles(metrics: dict[str, Any]) -> list[Tile]:
    """Macro and micro F1 with the tuned per-label thresholds against a flat 0.5, the gain as the delta."""
    flat = metrics.get("flat_threshold") or {}
    out = []
    for key, label in (("macro_f1", "Macro F1"), ("micro_f1", "Micro F1")):
        out += [tile(f"{label}, tuned thresholds", fmt(metrics.get(key)), delta(metrics.get(key), flat.get(key), "vs 0.5")),
                tile(f"{label}, flat 0.5", fmt(flat.get(key)))]
    return out


def thresholds_caption(metrics: dict[str, Any]) -> str:
    """Where the thresholds came from and their range, in one line."""
    info = metrics.get("thresholds") or {}
    values = list((info.get("values") or {}).values())
    if not info.get("fitted_on"):
        return "No tuned thresholds: every label used 0.5 (train with a validation split to tune them)."
    spread = f", from {min(values):.2f} to {max(values):.2f}" if values else ""
    where = info["fitted_on"]
    source = f"fitted on the {where} split" if where in SPLITS else md(where)  # or "saved with the model"
    return f"Thresholds {source}{spread}; the per-label table lists each one."


def top_confusions_text(metrics: dict[str, Any], shown: int = 3) -> str | None:
    """``Most frequent confusions: a → b (12); ...`` (Markdown-escaped), or None when the model confuses nothing."""
    top = metrics.get("top_confusions") or []
    if not top:
        return None
    return md("Most frequent confusions: " + "; ".join(f"{t['gold']} → {t['pred']} ({t['count']:,})" for t in top[:shown]))


def calibration_text(metrics: dict[str, Any]) -> tuple[str | None, str | None]:
    """What temperature scaling did, as (Markdown paragraph, caption); (None, None) when no temperature was fitted."""
    temperature = metrics.get("temperature")
    if not temperature:
        return None, None
    calib = metrics.get("calibration") or {}
    where = calib.get("fitted_on") or "validation"
    text = (f"**Temperature scaling** divides the logits by one number, T = **{temperature:.3f}**, fitted on the {where} split"
            + (" and saved with the model, so the Playground can use it." if calib.get("saved") else ".")
            + " It changes confidences, never the predicted class.")
    before, after = calib.get("log_loss_before"), calib.get("log_loss_after")
    caption = f"Log loss on this split: {before:.3f} → {after:.3f}." if before is not None and after is not None else None
    return text, caption


def no_temperature_text(metrics: dict[str, Any]) -> str | None:
    """Why an evaluation has no temperature, as one Markdown-escaped line; None when it has one."""
    if metrics.get("temperature"):
        return None
    reason = (metrics.get("calibration") or {}).get("reason")
    if not isinstance(reason, str) or not reason:  # an evaluation saved before reasons were recorded
        return "No temperature was fitted (the dataset has no validation split)."
    return md(f"No temperature was saved: {reason}. The probabilities are the model's own.")


def model_temperature_note(meta: dict[str, Any]) -> str | None:
    """Why a model's probabilities come without calibrated ones, from its ``bmcore.json``, as one Markdown-escaped
    line for the Playground; None when it has a temperature."""
    if meta.get("temperature"):
        return None
    reason = meta.get("temperature_reason")
    if isinstance(reason, str) and reason:
        return md(f"No calibrated probabilities: no temperature was saved with this model, as {reason}.")
    return ("No calibrated probabilities: no temperature is saved with this model (a run saves one when it lowers the "
            "log loss on validation examples it was not fitted on).")


def curve_frames(data: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC and PR curves from :func:`bmcore.report.examples.roc_pr_curves` as long frames for line charts.

    Each row is one point; ``class`` is the class as a chart shows it, with its AUC (ROC) or AP (PR).
    """
    roc = pd.DataFrame([{"class": f"{plot_text(n)} (AUC {c['roc']['auc']:.3f})", "false positive rate": x,
                         "true positive rate": y}
                        for n, c in data.items() for x, y in zip(c["roc"]["fpr"], c["roc"]["tpr"], strict=True)])
    pr = pd.DataFrame([{"class": f"{plot_text(n)} (AP {c['pr']['ap']:.3f})", "recall": x, "precision": y}
                       for n, c in data.items() for x, y in zip(c["pr"]["recall"], c["pr"]["precision"], strict=True)])
    return roc, pr


def comparable_runs(finished: dict[str, RunSummary], this_run: str | None, dataset: str,
                    split: str) -> dict[str, Path]:
    """The other finished runs with a saved evaluation of ``dataset``/``split``: name -> evaluation folder."""
    found = {name: find_evaluation(row.path, dataset, split) for name, row in finished.items() if name != this_run}
    return {name: path for name, path in found.items() if path is not None}


def compare_tiles(cmp: dict[str, Any], other: str) -> list[Tile]:
    """This model against ``other`` from :func:`bmcore.compare.compare_runs` (a is the other, b this one)."""
    what = f"vs {md(other)}"
    return [tile("Accuracy", fmt(cmp["accuracy_b"]), delta(cmp["accuracy_b"], cmp["accuracy_a"], what)),
            tile("Macro F1", fmt(cmp["macro_f1_b"]), delta(cmp["macro_f1_b"], cmp["macro_f1_a"], what)),
            tile("Now wrong (were right)", f"{cmp['num_right_to_wrong']:,}"),
            tile("Now right (were wrong)", f"{cmp['num_wrong_to_right']:,}")]


def multi_label_compare_tiles(cmp: dict[str, Any], other: str) -> list[Tile]:
    """This multi-label model against ``other`` from :func:`bmcore.compare.compare_multi_label_runs`."""
    what = f"vs {md(other)}"
    return [tile(label, fmt(cmp[f"{key}_b"]), delta(cmp[f"{key}_b"], cmp[f"{key}_a"], what))
            for key, label in (("macro_f1", "Macro F1"), ("micro_f1", "Micro F1"), ("subset_accuracy", "Subset accuracy"))
            ] + [tile("Now wrong (were right)", f"{cmp['num_right_to_wrong']:,}", help="Label sets exactly right before."),
                 tile("Now right (were wrong)", f"{cmp['num_wrong_to_right']:,}")]


def f1_diff_frame(cmp: dict[str, Any], shown: str) -> pd.DataFrame:
    """Per-class F1 of this model minus the other's (named ``shown`` in charts), and which one each class favours."""
    diffs = pd.DataFrame([{"class": plot_text(n), "F1 difference": v["f1_diff"], "this": v["f1_b"], shown: v["f1_a"]}
                          for n, v in cmp["per_class"].items()],
                         columns=["class", "F1 difference", "this", shown])
    diffs["better"] = diffs["F1 difference"].map(lambda d: "this model" if d > 0 else shown if d < 0 else "same")
    return diffs
