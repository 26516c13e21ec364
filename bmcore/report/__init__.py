"""What the pages show, worked out: number formats, metric tiles, captions, commands and chart inputs.

This module holds the shared helpers (formats, tiles) and what the Train and Pretrain pages show of a run; each
other page's content is a sibling module (:mod:`.evaluation` and :mod:`.examples` for the Evaluate page,
:mod:`.playground`, :mod:`.data`, :mod:`.export`, ...).

The pages only draw what these functions return, so every figure's input
and every decision about what to show is plain data that a test can check without a browser.
A metric tile is a dict of :func:`streamlit.metric`'s arguments (label, value, delta, help, delta_color).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import runs
from ..config import DEFAULT_EPOCHS
from ..data import DATASET_META, SPLITS, dataset_dir, is_prepared
from ..display import md
from ..errors import BmcoreError
from ..estimate import format_duration
from ..files import read_json
from ..modalities import modality_of_ref
from ..problem_types import chosen_problem_type
from ..schedule import planned_steps, resolve_schedule
from ..tasks import TASKS, get_task
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
    """A finished run's test and validation scores from its eval.json, as its task sums them up
    (:attr:`~bmcore.tasks.base.Task.result_tiles`): the task's first two headline metrics (accuracy and macro F1;
    regression: Pearson and Spearman correlation), or, with tuned thresholds (multi-label), macro F1 and subset
    accuracy and what the thresholds gained over a flat 0.5.
    """
    task = get_task(result["problem_type"] if result.get("problem_type") in TASKS else None)
    return RESULT_TILES[task.result_tiles](task, result)


def _headline_result_tiles(task: Any, result: dict[str, Any]) -> list[Tile]:
    test, val = result.get("test", {}), result.get("validation", {})
    shown = [(k, task.metric_names.get(k, k)) for k in task.headline[:2]]  # accuracy and macro F1; Pearson, Spearman
    return [*(tile(f"Test {name}", fmt(test.get(k))) for k, name in shown),
            *(tile(f"Validation {name}", fmt(val.get(k))) for k, name in shown)]


def _threshold_result_tiles(task: Any, result: dict[str, Any]) -> list[Tile]:
    test, val = result.get("test", {}), result.get("validation", {})
    flat = test.get("flat_threshold") or {}
    return [tile("Test macro F1", fmt(test.get("macro_f1")), delta(test.get("macro_f1"), (result.get("baseline") or {})
                 .get("macro_f1")), "The mean of the per-label F1 scores; next to the TF-IDF baseline."),
            tile("Test subset accuracy", fmt(test.get("subset_accuracy")), help=SUBSET_HELP),
            tile("Validation macro F1", fmt(val.get("macro_f1"))),
            tile("Tuned thresholds gain", fmt(_gain(test.get("macro_f1"), flat.get("macro_f1")), "+.3f"),
                 help="Test macro F1 with the per-label thresholds tuned on validation, minus at a flat 0.5.")]


RESULT_TILES = {"headline": _headline_result_tiles, "thresholds": _threshold_result_tiles}  # by Task.result_tiles
SUBSET_HELP = "Share of examples whose whole label set is exactly right (strict: one label wrong fails the row)."


def _gain(value: float | None, other: float | None) -> float | None:
    return None if value is None or other is None else value - other


def label_unit(problem_type: str | None) -> str:
    """What a dataset's labels are called in a count, as its task says (``classes``; ``labels`` for multi-label
    data); ``classes`` for an unknown problem type."""
    try:
        return get_task(problem_type if isinstance(problem_type, str) else None).label_unit
    except BmcoreError:
        return "classes"


def problem_type_text(problem_type: str | None) -> str | None:
    """One sentence on what a dataset's ``problem_type`` means for training (its task's
    :attr:`~bmcore.tasks.base.Task.training_text`), or None where there is nothing to say (plain single-label data)."""
    try:
        return get_task(problem_type if isinstance(problem_type, str) else None).training_text or None
    except BmcoreError:
        return None


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
    meta = read_json(dataset_dir(config.dataset) / DATASET_META)
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


def run_task(config: Any) -> Any:
    """The task a run's ``config`` trains: its ``problem_type``, or with ``auto`` its prepared dataset's; None when the
    dataset is not prepared (a raw source, detected by the job) or its ``dataset.json`` is unreadable."""
    try:
        meta = read_json(dataset_dir(config.dataset) / DATASET_META) if is_prepared(config.dataset) else None
        problem_type = chosen_problem_type(getattr(config, "problem_type", None), (meta or {}).get("problem_type"))
        return None if problem_type is None and meta is None else get_task(problem_type, (meta or {}).get("modality"))
    except (BmcoreError, OSError, TypeError, ValueError, AttributeError):
        return None


def _run_advice(run_dir: Path) -> dict[str, Any]:
    """The settings the overfitting note names, from the run's config and its dataset's task; {} when unreadable."""
    try:
        config = runs.load_run_config(run_dir)
    except (BmcoreError, OSError, TypeError, ValueError):
        return {}
    out: dict[str, Any] = {"best": str(config.metric_for_best_model), "patience": int(config.early_stopping_patience)}
    if (task := run_task(config)) is not None:
        out["more_data"] = task.more_data
    return out


CURVE_NAMES = {"loss": "training loss", "eval_loss": "validation loss", "learning_rate": "learning rate"}


def train_curves_frame(run_dir: str | Path) -> Any:
    """A fine-tuning run's curves from its ``metrics.jsonl`` as a long ``pandas.DataFrame`` (step, epoch, metric,
    value): the losses, the learning rate, and the validation scores its task sums a split up with, named as the task
    names them (``validation macro F1``; regression: ``validation Pearson correlation``)."""
    import pandas as pd

    names = dict(CURVE_NAMES)
    try:
        task = run_task(runs.load_run_config(Path(run_dir)))
    except (BmcoreError, OSError, TypeError, ValueError):
        task = None
    task = task or get_task(None)
    names.update({f"eval_{k}": f"validation {task.metric_names.get(k, k)}" for k in task.headline[:2]})
    rows = [{"step": m.get("step"), "epoch": m.get("epoch"), "metric": name, "value": m[key]}
            for m in runs.read_metrics(Path(run_dir)) for key, name in names.items() if isinstance(m.get(key), (int, float))]
    return pd.DataFrame(rows, columns=["step", "epoch", "metric", "value"])


def run_overfitting_note(run_dir: str | Path) -> str | None:
    """:func:`overfitting_note` for the run in ``run_dir``, with its own settings; None too when its metrics.jsonl is
    damaged (the run view says so itself)."""
    try:
        return overfitting_note(runs.read_metrics(Path(run_dir)), **_run_advice(Path(run_dir)))
    except BmcoreError:
        return None
