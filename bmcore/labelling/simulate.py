"""The simulation that shows whether picking helps: a labelled dataset's labels hidden, and revealed as the loop asks.

For each seed, the pool is a seeded sample of ``pool`` rows of the train split, its labels hidden. The same first
``step`` rows (drawn at random, per seed) start every strategy. Each round trains the few-shot model on the rows
revealed (:func:`bmcore.fewshot.fit_few_shot`, as the loop's step does, with the class names where ``label_names``
and they are words), scores its accuracy on a fixed sample of
``eval_rows`` rows of the test split, and reveals the next ``step`` rows its strategy picks
(:mod:`bmcore.labelling.picking`), until ``budget`` rows are revealed. ``pool`` caps what uncertainty scores in a
round, as :data:`bmcore.labelling.step.POOL_CAP` does in the loop.

Writes ``curves.csv`` (strategy, seed, labels, accuracy, seconds), ``curves.html`` (the mean curve of each
strategy with its spread over the seeds: :func:`bmcore.report.labelling.simulation_figure`) and ``summary.json``
into the output folder, by default ``datasets/NAME/simulation/`` beside the dataset.

Its cost: strategies x seeds x budget/step rounds (60 at the defaults), each training
:func:`bmcore.labelling.step.loop_steps` steps (more as labels grow, at most ``max_steps``) and scoring ``eval_rows``
texts (and, for uncertainty, the pool): with ``builtin:minilm`` on this 2-core CPU about 1.2 s a step on short texts
(quiet) to 5 s (AG News, one shared thread), and 28 ms a text; so hours on a CPU at the defaults (a first AG News round took 6 minutes on a loaded machine) and minutes on a GPU. Run it on a GPU, or with a
smaller pool, eval and budget. Runs as the job
``label-simulate`` (:data:`SIMULATE_JOB`) or ``python -m bmcore label simulate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.storage import dataset_dir, load_prepared
from ..errors import BmcoreError
from ..fewshot import few_shot_reason, fit_few_shot, names_to_learn
from ..files import atomic_path, read_json, write_json_atomic
from ..models import resolve_model
from ..report.labelling import simulation_figure, simulation_summary
from ..tasks import get_task
from .picking import pick_random, pick_uncertain
from .step import LOOP_MAX_STEPS, LOOP_MODEL, STEPS_PER_ROW, STRATEGIES, loop_steps

SIMULATE_JOB = "label-simulate"  # the job kind (bmcore.jobs.KINDS), keyed by the dataset's name
SIMULATION_DIR = "simulation"  # in the dataset's folder
CURVES_FILE = "curves.csv"
CHART_FILE = "curves.html"
SIMULATION_SUMMARY = "summary.json"
EVAL_SEED = 0  # one sample of the test split for every seed and strategy: the curves differ by their picks alone

Progress = Callable[[int, int, str], None]


def simulation_dir(dataset: str) -> Path:
    """Where the simulation on ``dataset`` writes by default: ``datasets/NAME/simulation/``."""
    return dataset_dir(dataset) / SIMULATION_DIR


def check_simulation(ds: Any, budget: int, step: int, strategies: Sequence[str], seeds: int, pool: int,
                     eval_rows: int, max_steps: int | None = None) -> None:
    """Refuse in one line what the simulation cannot run: a dataset that is not single-label text, a budget
    smaller than a step or larger than the pool, an unknown strategy."""
    task = get_task(ds.problem_type, ds.modality)
    reason = few_shot_reason(task, ds.is_pair) or ("" if task.label_quality else
                                                  f"{ds.name!r} is a {task.title.lower()} dataset")
    if reason:
        raise BmcoreError(f"the simulation takes a single-label text dataset: {reason}")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise BmcoreError(f"unknown strategy {unknown[0] if unknown else ''!r}; one or more of {', '.join(STRATEGIES)}")
    if step < 1 or budget < step:
        raise BmcoreError(f"the budget ({budget}) must be at least one step ({step}), and a step at least 1 row")
    if seeds < 1 or eval_rows < 1 or (max_steps is not None and max_steps < 1):
        raise BmcoreError("seeds, eval rows and max steps must be at least 1")
    available = min(pool, len(ds.splits["train"]))
    if budget > available:
        raise BmcoreError(f"the budget ({budget}) is more than the pool holds ({available} train rows)")
    if len(ds.splits["test"]) == 0:
        raise BmcoreError(f"{ds.name!r} has no test rows to score the curves on")


def _curve(texts: np.ndarray, targets: np.ndarray, evaluation: tuple[list[str], np.ndarray], start: np.ndarray, *,
           strategy: str, seed: int, budget: int, step: int, fit: Callable[[list[str], list[int]], Any],
           task: Any, tick: Callable[[str], None]) -> list[dict[str, Any]]:
    """One strategy's learning curve on one seed's pool: a point per round."""
    eval_texts, eval_targets = evaluation
    revealed = [int(i) for i in start]
    points = []
    while True:
        t0 = time.perf_counter()
        present = np.unique(targets[revealed])
        few = fit(list(texts[revealed]), targets[revealed].tolist()) if len(present) >= 2 else None
        # One class revealed: no model; it would call every row that class.
        top = task.top_class(few.scores(eval_texts)) if few is not None else np.full(len(eval_targets), present[0])
        accuracy = float(np.mean(top == eval_targets))
        picks: list[int] = []
        if len(revealed) < budget:
            free = np.setdiff1d(np.arange(len(texts)), revealed)
            n = min(step, budget - len(revealed))
            if strategy == "uncertainty" and few is not None:
                embeddings = few.embed(list(texts[free]))
                picks = pick_uncertain(task.scores(few.logits(embeddings)), embeddings, free, n, seed)
            else:
                picks = pick_random(free, n, seed * 7919 + len(revealed))
        points.append({"strategy": strategy, "seed": seed, "labels": len(revealed), "accuracy": round(accuracy, 4),
                       "seconds": round(time.perf_counter() - t0, 1)})
        tick(f"{strategy}, seed {seed}: {len(revealed)} labels, accuracy {accuracy:.3f}")
        if not picks:
            return points
        revealed += picks


def simulate(dataset: str, budget: int = 200, step: int = 20, strategies: Sequence[str] = STRATEGIES, seeds: int = 3,
             pool: int = 2000, eval_rows: int = 1000, max_steps: int | None = LOOP_MAX_STEPS, *,
             model: str = LOOP_MODEL, max_seq_length: int = 128, label_names: bool = True,
             out_dir: str | Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run the simulation on the prepared dataset ``dataset`` (see the module) and write its files; returns the
    summary (:func:`bmcore.report.labelling.simulation_summary`: per number of labels, each strategy's mean accuracy
    and whether uncertainty is at or above random) with the settings and the files' paths."""
    ds = load_prepared(dataset)
    strategies = list(dict.fromkeys(strategies))
    check_simulation(ds, budget, step, strategies, seeds, pool, eval_rows, max_steps)
    out = Path(out_dir) if out_dir else simulation_dir(dataset)
    out.mkdir(parents=True, exist_ok=True)
    task = get_task(ds.problem_type, ds.modality)
    names, mref = list(ds.label_names), resolve_model(model)
    learnt_names = names_to_learn(names, label_names)
    test = ds.splits["test"].sample(min(eval_rows, len(ds.splits["test"])), random_state=EVAL_SEED)
    evaluation = (test["text"].tolist(), np.asarray(task.targets(test, names)))
    rounds = len(strategies) * seeds * -(-budget // step)
    done = [0]

    def tick(message: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], rounds, message)

    t0, records = time.perf_counter(), []
    for seed in range(seeds):
        sample = ds.splits["train"].sample(min(pool, len(ds.splits["train"])), random_state=seed)
        texts, targets = sample["text"].to_numpy(dtype=object), np.asarray(task.targets(sample, names))
        start = np.random.default_rng(seed).permutation(len(sample))[:step]

        def fit(x: list[str], y: list[int], seed: int = seed) -> Any:
            return fit_few_shot(mref, task, x, y, len(names), seed=seed, max_steps=loop_steps(len(x), max_steps),
                                max_seq_length=max_seq_length, label_names=learnt_names)

        for strategy in strategies:
            records += _curve(texts, targets, evaluation, start, strategy=strategy, seed=seed, budget=budget,
                              step=step, fit=fit, task=task, tick=tick)
    frame = pd.DataFrame(records, columns=["strategy", "seed", "labels", "accuracy", "seconds"])
    with atomic_path(out / CURVES_FILE) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(out / CHART_FILE) as tmp:
        simulation_figure(frame, f"{ds.name}: accuracy against labels given ({seeds} seeds)").write_html(
            tmp, include_plotlyjs=True)
    summary = {"dataset": ds.name, "budget": budget, "step": step, "strategies": strategies, "seeds": seeds,
               "pool": int(min(pool, len(ds.splits["train"]))), "eval_rows": len(test),
               "max_steps": LOOP_MAX_STEPS if max_steps is None else max_steps,
               "min_steps": loop_steps(0, max_steps), "steps_per_row": STEPS_PER_ROW,
               "model": model, "label_names": bool(learnt_names), "steps": simulation_summary(frame),
               "seconds": round(time.perf_counter() - t0, 1),
               "csv": str(out / CURVES_FILE), "html": str(out / CHART_FILE)}
    write_json_atomic(out / SIMULATION_SUMMARY, summary)
    return summary


def read_simulation(dataset: str, out_dir: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The last simulation on ``dataset`` (its ``curves.csv`` as a frame, and its ``summary.json``), or None."""
    out = Path(out_dir) if out_dir else simulation_dir(dataset)
    if not (out / CURVES_FILE).is_file() or not (out / SIMULATION_SUMMARY).is_file():
        return None
    try:
        frame = pd.read_csv(out / CURVES_FILE)
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"curves.csv of the simulation on {dataset!r} is damaged ({exc.__class__.__name__})") from exc
    if list(frame.columns) != ["strategy", "seed", "labels", "accuracy", "seconds"]:
        raise BmcoreError(f"curves.csv of the simulation on {dataset!r} is damaged: unexpected columns")
    return frame, read_json(out / SIMULATION_SUMMARY, f"summary.json of the simulation on {dataset!r}")
