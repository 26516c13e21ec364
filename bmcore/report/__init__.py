"""What the pages show, worked out: number formats, metric tiles, captions, commands and chart inputs.

The pages (Train, Pretrain, Evaluate) only draw what these functions return, so every figure's input
and every decision about what to show is plain data that a test can check without a browser.
A metric tile is a dict of :func:`streamlit.metric`'s arguments (label, value, delta, help, delta_color).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import runs
from ..baseline import PIXEL_BASELINE_NAME
from ..config import DEFAULT_EPOCHS
from ..data import DATASET_META, SPLITS, dataset_dir, is_prepared
from ..display import md, plot_text
from ..errors import BmcoreError
from ..estimate import format_duration
from ..evaluate import find_evaluation
from ..files import read_json
from ..modalities import modality_of_ref
from ..schedule import planned_steps, resolve_schedule
from ..splits import examples_of
from ..tasks import MULTI_LABEL, TASKS, get_task
from ..workspace import runs_dir

PREVIEW = 90  # characters of text in pickers

Tile = dict[str, Any]


def fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``, or ``-`` when there is none."""
    return "-" if value is None else format(value, spec)


def delta(value: float | None, other: float | None, what: str = "vs baseline") -> str | None:
    """The signed difference ``value - other`` with a word on what it is measured against, or None without both."""
    return None if value is None or other is None else f"{value - other:+.3f} {what}".strip()


def preview(text: Any, width: int = PREVIEW) -> str:
    """One line of ``text`` (whitespace folded), cut to ``width`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def tile(label: str, value: str, delta: str | None = None, help: str | None = None, delta_color: str = "normal") -> Tile:
    """One metric tile: the arguments of ``st.metric``."""
    return {"label": label, "value": value, "delta": delta, "help": help, "delta_color": delta_color}


def shown_path(path: str | Path) -> Path:
    """``path`` relative to the working directory when it lies inside it (shorter commands), else as given."""
    path = Path(path)
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def split_sizes(sizes: dict[str, int]) -> str:
    """``1,000 train / 100 validation / 100 test`` from a prepared dataset's split sizes."""
    return " / ".join(f"{sizes.get(s, 0):,} {s}" for s in SPLITS)


def label_summary(labels: Sequence[str], shown: int = 8, unit: str = "classes") -> str:
    """``3 classes (a, b, c)``, the first ``shown`` names then ``...``; Markdown-escaped."""
    more = ", ..." if len(labels) > shown else ""
    return md(f"{len(labels)} {unit} ({', '.join(labels[:shown])}{more}) · ")


# --- runs: Train and Pretrain ----------------------------------------------------------------


def run_commands(kind: str, config: Any, run_name: str) -> list[str]:
    """The terminal command for a ``train`` or ``pretrain`` run of ``config`` into the workspace's runs/``run_name``.

    For ``train`` a second command runs it on several GPUs with torchrun.
    """
    args = ["--data", config.dataset, "--model", config.model_name_or_path, *config.cli_args(),
            "--out", str(shown_path(runs_dir() / run_name))]
    commands = [shlex.join(["python", "-m", "bmcore", kind, *args])]
    if kind == "train":
        commands.append(shlex.join(["torchrun", "--nproc_per_node", "2", "-m", "bmcore", "train", *args]))
    return commands


def pipeline_snippet(model_dir: str | Path, problem_type: str | None) -> str:
    """Python that loads a saved model with ``transformers.pipeline`` and calls it on one input: the pipeline of the
    model's modality, with the arguments its task needs (multi-label: a score for every label)."""
    modality = modality_of_ref(str(model_dir))
    return modality.pipeline_snippet(str(model_dir), get_task(problem_type, modality.name).pipeline_kwargs)


def progress_text(p: dict[str, Any]) -> str:
    """The progress bar's line: ``step 5 of 10``, and while running the time left (the scoring after training
    included), that the speed is being measured, or, past the reckoned end, that the job is finishing."""
    eta = ""
    if p["status"]["state"] == runs.RUNNING:
        if p["eta_s"] is None:
            eta = " · measuring the speed..."
        else:
            eta = f" · about {format_duration(p['eta_s'])} left" if p["eta_s"] >= 1 else " · finishing..."
    return f"step {p['step']} of {p['total_steps']}{eta}"


def train_tiles(p: dict[str, Any]) -> list[Tile]:
    """A fine-tuning run's live figures from :func:`bmcore.runs.progress`."""
    last = p["last"]
    return [tile("Epoch", fmt(last.get("epoch"), ".2f")), tile("Learning rate", fmt(last.get("learning_rate"), ".2e")),
            tile("Samples/s", fmt(last.get("samples_per_s"), ".1f")), tile("Tokens/s", fmt(last.get("tokens_per_s") or None, ",.0f")),
            tile("Precision", md(p["status"].get("precision") or "-"))]


def pretrain_tiles(p: dict[str, Any]) -> list[Tile]:
    """A pretraining run's live figures: perplexity before and now, the training loss, the precision."""
    evals = p["eval"]
    return [tile("Perplexity before", fmt(evals[0].get("eval_perplexity") if evals else None, ",.1f")),
            tile("Perplexity now", fmt(evals[-1].get("eval_perplexity") if evals else None, ",.2f")),
            tile("Training MLM loss", fmt(p["last"].get("loss"), ".3f")),
            tile("Precision", md(p["status"].get("precision") or "-"))]


def result_tiles(result: dict[str, Any]) -> list[Tile]:
    """A finished run's test and validation scores from its eval.json: its task's first two headline metrics
    (accuracy and macro F1; regression: Pearson and Spearman correlation).

    Multi-label: macro F1 and subset accuracy, and what the tuned per-label thresholds gained over a flat 0.5.
    """
    test, val = result.get("test", {}), result.get("validation", {})
    if result.get("problem_type") == MULTI_LABEL:
        flat = test.get("flat_threshold") or {}
        return [tile("Test macro F1", fmt(test.get("macro_f1")), delta(test.get("macro_f1"), (result.get("baseline") or {})
                     .get("macro_f1")), "The mean of the per-label F1 scores; next to the TF-IDF baseline."),
                tile("Test subset accuracy", fmt(test.get("subset_accuracy")), help=SUBSET_HELP),
                tile("Validation macro F1", fmt(val.get("macro_f1"))),
                tile("Tuned thresholds gain", fmt(_gain(test.get("macro_f1"), flat.get("macro_f1")), "+.3f"),
                     help="Test macro F1 with the per-label thresholds tuned on validation, minus at a flat 0.5.")]
    task = get_task(result["problem_type"] if result.get("problem_type") in TASKS else None)
    shown = [(k, task.metric_names.get(k, k)) for k in task.headline[:2]]  # accuracy and macro F1; Pearson, Spearman
    return [*(tile(f"Test {name}", fmt(test.get(k))) for k, name in shown),
            *(tile(f"Validation {name}", fmt(val.get(k))) for k, name in shown)]


def _gain(value: float | None, other: float | None) -> float | None:
    return None if value is None or other is None else value - other


PROBLEM_TYPE_TEXT = {  # what a learner needs to know about each kind of problem, one sentence
    MULTI_LABEL: "Multi-label: a text can carry any number of labels at once. The model gives every label its own "
                 "yes/no score (a sigmoid per label), learns with binary cross-entropy, and after training tunes one "
                 "threshold per label on the validation split.",
}


def label_unit(problem_type: str | None) -> str:
    """What a dataset's labels are called in a count, as its task says (``classes``; ``labels`` for multi-label
    data); ``classes`` for an unknown problem type."""
    try:
        return get_task(problem_type if isinstance(problem_type, str) else None).label_unit
    except BmcoreError:
        return "classes"


def problem_type_text(problem_type: str | None) -> str | None:
    """One sentence on what a dataset's ``problem_type`` means for training, or None for plain single-label data."""
    return PROBLEM_TYPE_TEXT.get(problem_type or "")


ESTIMATE_NUMBERS = ("estimated_seconds", "low_seconds", "high_seconds", "total_steps", "seconds_per_step", "samples_per_s",
                    "evaluations", "probe_steps", "probe_seconds", "load", "cores")


def check_estimate(est: dict[str, Any]) -> dict[str, Any]:
    """Refuse a timing result (a job's ``result.json``) with a field of the wrong type, in one line."""
    for key in ESTIMATE_NUMBERS:
        value = est.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BmcoreError(f"the timing result is damaged: {key} is {value!r:.60}, not a number; time it again")
    needed = ("estimated_seconds", "total_steps", "seconds_per_step", "samples_per_s", "evaluations",
              *(("high_seconds",) if est.get("low_seconds") is not None else ()))
    if missing := [key for key in needed if est.get(key) is None]:
        raise BmcoreError(f"the timing result is damaged: it has no {missing[0]}; time it again")
    return est


def estimate_text(est: dict[str, Any]) -> str:
    """A timing probe's result as one Markdown sentence: about how long, the likely range, and how it was reckoned."""
    check_estimate(est)
    likely = ""
    if est.get("low_seconds") is not None:
        likely = f" (likely {format_duration(est['low_seconds'])} to {format_duration(est['high_seconds'])})"
    return (f"About **{format_duration(est['estimated_seconds'])}**{likely} on this machine: "
            f"{est['total_steps']:,} steps at {est['seconds_per_step']:.2f} s each ({est['samples_per_s']:.1f} "
            f"samples/s in {md(est.get('precision'))}), plus {est['evaluations']} evaluation(s) and the final test scoring.")


def estimate_note(est: dict[str, Any], ended: str) -> tuple[bool, str]:
    """How a timing probe was made, and whether the machine was busy then (the estimate errs long)."""
    check_estimate(est)
    timed = f"{est.get('probe_steps', '?')} steps timed over {est.get('probe_seconds') or 0:.0f} s, {md(ended)}"
    if est.get("busy"):
        return True, (f"The machine was busy while timing (load {est['load']} on {est['cores']} cores), so this errs "
                      f"long; time it again when it is idle. {timed}.")
    return False, f"{timed}. Once the run starts, its progress bar gives the time left from its own measured speed."


def schedule_note(config: Any, n_train: int, min_steps: int, *, grows: bool = True, noun: str = "rows") -> str | None:
    """Before a run starts: the sentence on a run that would make few optimiser steps, and what the small-data default
    does about it (:mod:`bmcore.schedule`); None when the run makes enough (or its task has no minimum). ``grows`` and
    ``noun``: the task's :attr:`~bmcore.tasks.base.Task.grows_batches` and :attr:`~bmcore.tasks.base.Task.example_noun`."""
    if not min_steps or n_train <= 0:
        return None
    sched = resolve_schedule(config, n_train, min_steps, grows=grows, noun=noun)
    if sched.small_data:
        fewest = math.ceil(DEFAULT_EPOCHS * sched.steps_per_epoch / (max(config.batch_growth, 1) if grows else 1))
        steps = planned_steps(sched, config)
        if sched.epochs and sched.epochs > DEFAULT_EPOCHS:
            how = f"trains {sched.epochs:g} epochs in batches of {config.per_device_train_batch_size} instead ({steps:,} steps)"
        else:
            how = (f"keeps batches at {config.per_device_train_batch_size} examples (batch growth off), so its "
                   f"{DEFAULT_EPOCHS:g} epochs make {steps:,} steps")
        grown = " with short texts in grown batches" if grows else ""
        return (f"Small dataset: {n_train:,} training {noun} could make as few as {fewest:,} optimiser steps in the default "
                f"{DEFAULT_EPOCHS:g} epochs{grown}, too few to learn from. The run {how}; the best "
                "epoch on the validation split is kept. Set the epochs or steps yourself to choose otherwise.")
    steps = planned_steps(sched, config)
    grown = grows and config.max_steps is None and config.batch_growth > 1
    fewest = math.ceil(steps / config.batch_growth) if grown else steps
    if fewest >= min_steps:
        return None
    how_many = f"{fewest:,} to {steps:,}" if grown and fewest < steps else f"{steps:,}"
    return (f"Few optimiser steps: this run makes {how_many} ({n_train:,} training {noun}), and a model learns little in "
            f"fewer than {min_steps}. Leave the epochs on auto for the small-data default, or raise the epochs or steps"
            f"{' and set batch growth to 1' if grown else ''}.")


def run_schedule_note(config: Any) -> str | None:
    """:func:`schedule_note` for a run on a prepared dataset (its train rows and task from its ``dataset.json``);
    None for a raw source, whose size the job learns (and logs) when it prepares it."""
    if not is_prepared(config.dataset):
        return None
    meta = runs.read_json(dataset_dir(config.dataset) / DATASET_META)
    try:
        task = get_task(meta.get("problem_type"), meta.get("modality"))
        n_train = int(meta.get("splits", {}).get("train", 0))
    except (BmcoreError, TypeError, ValueError, AttributeError):
        return None  # a damaged dataset.json: the job refuses it in one line
    return schedule_note(config, n_train, task.min_train_steps, grows=task.grows_batches, noun=task.example_noun)


def missed_note(problem_type: Any, metrics: Any, split: str = "test") -> str:
    """The task's warning on classes or labels a split's ``metrics`` show are never predicted right (see
    :meth:`bmcore.tasks.Task.missed_note`); empty for none, and for a damaged file (an unknown task, no metrics)."""
    try:
        task = get_task(problem_type if isinstance(problem_type, str) else None)
    except BmcoreError:
        return ""
    return task.missed_note(metrics, split) if isinstance(metrics, dict) else ""


OVERFIT_RISES = 3  # consecutive rises of the validation loss that read as overfitting (2 in a run of 3 evaluations:
# a small-data run evaluates once an epoch, 3 times in all, and a loss that rose at both evaluations after the first
# is the same signature)
OVERFIT_RATIO = 1.5  # or the validation loss this many times its lowest
OVERFIT_CHANGE = 0.05  # and each loss moved by this share at least (a random model's 0.6931 drifts by 1e-6)


def _loss_points(records: Sequence[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """(step, value) of every record with a finite number under ``key``, by step; a step logged twice (a resumed
    run) keeps its last value."""
    points: dict[float, float] = {}
    for r in records:
        step, value = (r.get("step"), r.get(key)) if isinstance(r, dict) else (None, None)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                       for v in (step, value)):
            points[float(step)] = float(value)
    return sorted(points.items())


def _train_loss_at(train: list[tuple[float, float]], after: float, upto: float) -> float | None:
    """The mean training loss logged in (``after``, ``upto``], else the last one at or before ``upto`` (smoother than
    one noisy logging step)."""
    window = [v for s, v in train if after < s <= upto]
    if window:
        return sum(window) / len(window)
    before = [v for s, v in train if s <= upto]
    return before[-1] if before else None


def overfitting(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether a run's metrics.jsonl records show overfitting: the validation loss (``eval_loss``) rose over the last
    :data:`OVERFIT_RISES` evaluations in a row (at every evaluation after the first, in a run of 3), or stands at
    :data:`OVERFIT_RATIO` times its lowest or more, while the training loss (``loss``) fell over the same stretch; each
    by :data:`OVERFIT_CHANGE` of its value at least. Returns the figures (``best_step``, ``best_loss``, ``start_step``,
    ``start_loss``, ``step``, ``loss``, ``rises``, ``in_a_row``, ``train_from``, ``train_to``), or None."""
    evals, train = _loss_points(records, "eval_loss"), _loss_points(records, "loss")
    if len(evals) < 2:
        return None
    steps = [s for s, _ in evals]
    losses = [v for _, v in evals]
    best = min(range(len(losses)), key=losses.__getitem__)
    rises = next((k for k in range(len(losses) - 1) if losses[-1 - k] <= losses[-2 - k]), len(losses) - 1)
    in_a_row = rises >= max(2, min(OVERFIT_RISES, len(losses) - 1)) and losses[-1] >= (1 + OVERFIT_CHANGE) * losses[-1 - rises]
    if in_a_row:
        start = len(losses) - 1 - rises  # the evaluation the rise started from
    elif best < len(losses) - 1 and losses[-1] >= OVERFIT_RATIO * losses[best] and losses[best] > 0:
        start = best
    else:
        return None
    before = [-math.inf, *steps]  # each evaluation's training window starts after the previous evaluation
    train_from = _train_loss_at(train, before[start], steps[start])
    train_to = _train_loss_at(train, before[-2], steps[-1])
    if train_from is None or train_to is None or train_to > (1 - OVERFIT_CHANGE) * train_from:
        return None  # the training loss did not fall: not overfitting (underfitting or a bad learning rate)
    return {"best_step": int(steps[best]), "best_loss": losses[best], "start_step": int(steps[start]),
            "start_loss": losses[start], "step": int(steps[-1]), "loss": losses[-1], "rises": rises, "in_a_row": in_a_row,
            "train_from": train_from, "train_to": train_to}


def overfitting_note(records: Sequence[dict[str, Any]], best: str = "macro_f1", patience: int = 0,
                     more_data: str = "add training examples") -> str | None:
    """:func:`overfitting` as one plain-text warning with what to try, or None. ``best`` is the run's
    ``metric_for_best_model``, ``patience`` its ``early_stopping_patience``, ``more_data`` its task's
    :attr:`~bmcore.tasks.Task.more_data`."""
    o = overfitting(records)
    if o is None:
        return None
    start, end = f"{o['start_loss']:.3f} at step {o['start_step']:,}", f"{o['loss']:.3f} at step {o['step']:,}"
    if o["in_a_row"]:
        lowest = "" if o["start_step"] == o["best_step"] else f" (its lowest: {o['best_loss']:.3f} at step {o['best_step']:,})"
        rose = f"rose {o['rises']} evaluations in a row, from {start} to {end}{lowest}"
    else:
        rose = f"rose from its lowest, {start}, to {end}"
    stop = f"lower early_stopping_patience (now {patience})" if patience else "set early_stopping_patience (2, say)"
    return (f"Overfitting: the validation loss {rose}, while "
            f"the training loss fell from {o['train_from']:.3f} to {o['train_to']:.3f}: the model is memorising the "
            f"training examples. The checkpoint kept is the one with the best validation {best} "
            f"(metric_for_best_model), not necessarily the last. To do better: train fewer epochs or {stop}, lower the "
            f"learning rate, or {more_data}.")


def _run_advice(run_dir: Path) -> dict[str, Any]:
    """The settings the overfitting note names, from the run's config and its dataset's task; {} when unreadable."""
    try:
        config = runs.load_run_config(run_dir)
    except (BmcoreError, OSError, TypeError, ValueError):
        return {}
    out: dict[str, Any] = {"best": str(config.metric_for_best_model), "patience": int(config.early_stopping_patience)}
    try:
        meta = read_json(dataset_dir(config.dataset) / DATASET_META) if is_prepared(config.dataset) else {}
        out["more_data"] = get_task(meta.get("problem_type"), meta.get("modality")).more_data
    except (BmcoreError, OSError, TypeError, ValueError, AttributeError):
        pass
    return out


def run_overfitting_note(run_dir: str | Path) -> str | None:
    """:func:`overfitting_note` for the run in ``run_dir``, with its own settings; None too when its metrics.jsonl is
    damaged (the run view says so itself)."""
    try:
        return overfitting_note(runs.read_metrics(Path(run_dir)), **_run_advice(Path(run_dir)))
    except BmcoreError:
        return None


# --- evaluation ------------------------------------------------------------------------------


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


SUBSET_HELP = "Share of examples whose whole label set is exactly right (strict: one label wrong fails the row)."
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
    """ROC and PR curves from :func:`bmcore.evaluate.roc_pr_curves` as long frames for line charts.

    Each row is one point; ``class`` is the class as a chart shows it, with its AUC (ROC) or AP (PR).
    """
    roc = pd.DataFrame([{"class": f"{plot_text(n)} (AUC {c['roc']['auc']:.3f})", "false positive rate": x,
                         "true positive rate": y}
                        for n, c in data.items() for x, y in zip(c["roc"]["fpr"], c["roc"]["tpr"], strict=True)])
    pr = pd.DataFrame([{"class": f"{plot_text(n)} (AP {c['pr']['ap']:.3f})", "recall": x, "precision": y}
                       for n, c in data.items() for x, y in zip(c["pr"]["recall"], c["pr"]["precision"], strict=True)])
    return roc, pr


def comparable_runs(finished: dict[str, runs.RunSummary], this_run: str | None, dataset: str,
                    split: str) -> dict[str, Path]:
    """The other finished runs with a saved evaluation of ``dataset``/``split``: name -> evaluation folder."""
    found = {name: find_evaluation(row.path, dataset, split) for name, row in finished.items() if name != this_run}
    return {name: path for name, path in found.items() if path is not None}


def compare_tiles(cmp: dict[str, Any], other: str) -> list[Tile]:
    """This model against ``other`` from :func:`bmcore.evaluate.compare_runs` (a is the other, b this one)."""
    what = f"vs {md(other)}"
    return [tile("Accuracy", fmt(cmp["accuracy_b"]), delta(cmp["accuracy_b"], cmp["accuracy_a"], what)),
            tile("Macro F1", fmt(cmp["macro_f1_b"]), delta(cmp["macro_f1_b"], cmp["macro_f1_a"], what)),
            tile("Now wrong (were right)", f"{cmp['num_right_to_wrong']:,}"),
            tile("Now right (were wrong)", f"{cmp['num_wrong_to_right']:,}")]


def multi_label_compare_tiles(cmp: dict[str, Any], other: str) -> list[Tile]:
    """This multi-label model against ``other`` from :func:`bmcore.evaluate.compare_multi_label_runs`."""
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
