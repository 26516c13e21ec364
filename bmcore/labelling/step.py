"""The loop's step: train a few-shot model on the labels given, measure it, and pick the next batch to label.

:func:`run_step` runs as the job ``label-step`` (:data:`STEP_JOB`, :mod:`bmcore.jobs`) for the page, and in the
foreground for ``python -m bmcore label step``. It

1. splits the labelled rows: a stable ~20% (:data:`HOLDOUT_SHARE`, chosen by a hash of the row id, so a row once
   held out stays held out and the validation set only grows) is the validation set, the rest trains. When the rows
   left to train on hold fewer than two classes, the model trains on every labelled row and reports no accuracy.
   The held-out rows are rows the loop picked, harder than rows drawn at random: the curve's accuracy errs low;
2. trains SetFit (:func:`bmcore.fewshot.fit_few_shot`) on them and, with ``label_names``, on the class names too
   (:data:`bmcore.fewshot.NAME_EXAMPLES` examples "This sentence is NAME" each, where the names are words, not codes:
   :func:`bmcore.fewshot.names_usable`), for :func:`loop_steps` steps of 16 pairs: more as labels grow, at most
   ``max_steps`` (:data:`LOOP_MAX_STEPS` by default). Measured with ``builtin:minilm`` on this 2-core CPU: about
   1.2 s a step on short texts (emotion, quiet machine) and about 5 s with AG News' longer texts on one thread
   shared with other jobs (28 ms a text scored there); so a CPU step of the loop takes one to ten minutes (120 steps
   from 200 labels on), a GPU's seconds;
3. scores the held-out rows (accuracy and their number) and a seeded sample of at most :data:`POOL_CAP` unlabelled
   rows, the candidates: a pick among 3,000 is as good as among all on any data a person labels by hand, and
   scoring costs time linear in the rows;
4. picks the next batch (:mod:`bmcore.labelling.picking`: ``uncertainty`` or ``random``). With fewer than two
   classes labelled there is no model yet: ``uncertainty`` picks rows that cover the data on frozen embeddings;
5. writes ``picks.json`` atomically (the rows, the strategy, the model's probabilities of them) and appends a line to
   ``curve.jsonl`` (labels given, per class, validation accuracy and its rows, seconds, strategy).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import BmcoreError
from ..fewshot import fit_few_shot, names_to_learn
from ..files import append_json_lines, read_json, read_json_lines, write_json_atomic
from ..models import resolve_model
from ..problem_types import DEFAULT_PROBLEM_TYPE
from ..quality.features import embed_texts
from ..tasks import get_task
from .picking import pick_diverse, pick_random, pick_uncertain
from .project import Project, labels, load_project

STEP_JOB = "label-step"  # the job kind (bmcore.jobs.KINDS), keyed by the project's name
STRATEGIES = ("uncertainty", "random")
LOOP_MODEL = "builtin:minilm"  # a sentence-transformers checkpoint: the family SetFit was built on
# Steps of 16 pairs grow with the rows the model trains on (loop_steps): STEPS_PER_ROW a row, at least LOOP_MIN_STEPS,
# at most LOOP_MAX_STEPS (few-shot training's own default cap, bmcore.fewshot.MAX_STEPS). A fixed 40 starved the body
# as labels grew: emotion, the 200 rows random reveals (seed 0), test accuracy 0.570 after 40 steps (0.560-0.580 over
# four training seeds and orders) and 0.667 after 120; the loop's curve fell from 160 labels to 200 on every seed.
LOOP_MIN_STEPS = 40
LOOP_MAX_STEPS = 120
STEPS_PER_ROW = 0.6
LOOP_BATCH = 20  # rows picked per step
POOL_CAP = 3000  # unlabelled rows scored per step at most (a seeded sample of them)
HOLDOUT_SHARE = 0.2  # of the labelled rows, held out as the validation set (by a hash of the row id)
PICKS_FILE = "picks.json"
CURVE_FILE = "curve.jsonl"

Progress = Callable[[int, int, str], None]


def _quiet(done: int, total: int, message: str) -> None:
    pass


def held_out(rows: Any) -> np.ndarray:
    """True for each row id that belongs to the validation set: the first bytes of a hash of the id, below
    :data:`HOLDOUT_SHARE`. The same row is held out in every step and every session."""
    cut = int(HOLDOUT_SHARE * 2**32)
    return np.array([int.from_bytes(hashlib.sha256(f"row-{int(r)}".encode()).digest()[:4], "big") < cut
                     for r in rows], dtype=bool)


def split_labelled(given: dict[int, str]) -> tuple[list[int], list[int]]:
    """``(train rows, validation rows)`` of the labelled rows ``given`` (see the module: the held-out rows validate
    unless the rest holds fewer than two classes, then every row trains and none validates)."""
    rows = sorted(given)
    held = held_out(rows)
    train = [r for r, h in zip(rows, held, strict=True) if not h]
    validation = [r for r, h in zip(rows, held, strict=True) if h]
    if len({given[r] for r in train}) < 2:
        return rows, []
    return train, validation


def _pool(project: Project, given: dict[int, str], seed: int) -> np.ndarray:
    """The candidates: the unlabelled rows, a seeded sample of :data:`POOL_CAP` of them where there are more."""
    free = np.setdiff1d(project.texts["row"].to_numpy(dtype=np.int64), np.fromiter(given, dtype=np.int64, count=len(given)))
    if len(free) > POOL_CAP:
        free = np.sort(np.random.default_rng(seed).choice(free, size=POOL_CAP, replace=False))
    return free


def loop_steps(rows: int, max_steps: int | None = LOOP_MAX_STEPS) -> int:
    """Steps of 16 pairs the loop's model trains for on ``rows`` labelled rows: :data:`STEPS_PER_ROW` a row, at least
    :data:`LOOP_MIN_STEPS` and at most ``max_steps`` (the cap: :data:`LOOP_MAX_STEPS` by default, or the user's)."""
    cap = LOOP_MAX_STEPS if max_steps is None else max_steps
    return max(1, min(cap, max(LOOP_MIN_STEPS, math.ceil(STEPS_PER_ROW * rows))))


def _check_step(strategy: str, batch: int, max_steps: int | None) -> None:
    if strategy not in STRATEGIES:
        raise BmcoreError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    if batch < 1:
        raise BmcoreError("the batch must hold at least one row")
    if max_steps is not None and max_steps < 1:
        raise BmcoreError("max_steps must be at least 1")


def run_step(name: str, *, strategy: str = "uncertainty", batch: int = LOOP_BATCH, max_steps: int | None = LOOP_MAX_STEPS,
             model: str = LOOP_MODEL, seed: int = 0, max_seq_length: int = 128, label_names: bool = True,
             progress: Progress | None = None) -> dict[str, Any]:
    """One step of the loop on the labelling project ``name`` (see the module); returns the curve point with the
    picks: ``rows``, ``picker`` (uncertainty, diverse or random), ``labels``, ``accuracy``, ``n_validation``,
    ``label_names`` (whether the class names were learnt from)...."""
    _check_step(strategy, batch, max_steps)
    report = progress or _quiet
    t0 = time.perf_counter()
    project = load_project(name)
    given = labels(name)
    seed = seed * 1_000_003 + len(given)  # another sample of candidates and another draw after each batch
    texts = project.texts["text"].to_numpy(dtype=object)
    pool = _pool(project, given, seed)
    train, validation = split_labelled(given)
    task = get_task(DEFAULT_PROBLEM_TYPE)  # a labelling project labels one class per row
    index = {c: i for i, c in enumerate(project.classes)}
    names = names_to_learn(project.classes, label_names)
    point: dict[str, Any] = {"accuracy": None, "n_validation": len(validation), "trained_on": 0, "steps": 0,
                             "label_names": bool(names)}
    probs = None
    if len({given[r] for r in train}) >= 2:
        steps = loop_steps(len(train), max_steps)
        report(1, 4, f"Training the few-shot model on {len(train)} labelled rows ({steps} steps)...")
        few = fit_few_shot(resolve_model(model), task, list(texts[train]), [index[given[r]] for r in train],
                           len(project.classes), seed=seed, max_steps=steps, max_seq_length=max_seq_length,
                           label_names=names)
        point["trained_on"], point["steps"] = len(train), steps
        if validation:
            report(2, 4, f"Scoring the {len(validation)} held-out rows...")
            top = task.top_class(few.scores(list(texts[validation])))
            point["accuracy"] = round(float(np.mean(top == np.array([index[given[r]] for r in validation]))), 4)
        report(3, 4, f"Scoring {len(pool):,} unlabelled rows...")
        if strategy == "uncertainty":
            embeddings = few.embed(list(texts[pool]))
            scores = task.scores(few.logits(embeddings))
            picked, picker = pick_uncertain(scores, embeddings, pool, batch, seed), "uncertainty"
            probs = scores[np.searchsorted(pool, picked)]
        else:
            picked, picker = pick_random(pool, batch, seed), "random"
            probs = few.scores(list(texts[picked])) if picked else np.zeros((0, len(project.classes)))
    elif strategy == "uncertainty":
        report(1, 4, f"Fewer than two classes labelled: embedding {len(pool):,} rows to pick a batch that covers them...")
        picked, picker = pick_diverse(embed_texts(model, list(texts[pool]), max_seq_length=max_seq_length), pool,
                                      batch, seed), "diverse"
    else:
        picked, picker = pick_random(pool, batch, seed), "random"
    report(4, 4, "Saving the picks...")
    point = {"labels": len(given), "counts": {c: sum(1 for v in given.values() if v == c) for c in project.classes},
             **point, "seconds": round(time.perf_counter() - t0, 1), "strategy": strategy, "picker": picker,
             "model": model, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _save(project, picked, probs, point)
    return {**point, "rows": [int(r) for r in picked]}


def _save(project: Project, picked: list[int], probs: np.ndarray | None, point: dict[str, Any]) -> None:
    task = get_task(DEFAULT_PROBLEM_TYPE)
    suggested = ([project.classes[int(i)] for i in np.atleast_1d(task.top_class(probs))] if probs is not None
                 and len(picked) else None)
    write_json_atomic(project.folder / PICKS_FILE, {
        "rows": [int(r) for r in picked], "strategy": point["strategy"], "picker": point["picker"],
        "classes": project.classes, "labels_given": point["labels"], "created": point["time"],
        "probs": None if probs is None else np.round(np.asarray(probs, dtype=np.float64), 4).tolist(),
        "suggested": suggested})
    append_json_lines(project.folder / CURVE_FILE, [point])


def read_picks(name: str) -> dict[str, Any] | None:
    """The last step's ``picks.json`` (``rows``, ``strategy``, ``picker``, ``probs``, ``suggested``,
    ``labels_given``, ``classes``, ``created``), or None before the first step."""
    path = load_project(name).folder / PICKS_FILE
    if not path.is_file():
        return None
    picks = read_json(path, f"picks.json of labelling project {name!r}")
    rows, probs, suggested = picks.get("rows"), picks.get("probs"), picks.get("suggested")
    ok = isinstance(rows, list) and all(isinstance(r, int) for r in rows)
    ok = ok and (probs is None or isinstance(probs, list) and len(probs) == len(rows) and all(
        isinstance(p, list) and all(isinstance(v, (int, float)) for v in p) for p in probs))
    ok = ok and (suggested is None or isinstance(suggested, list) and len(suggested) == len(rows)
                 and all(isinstance(v, str) for v in suggested))
    if not ok:
        raise BmcoreError(f"picks.json of labelling project {name!r} is damaged: its rows, probabilities or "
                          "suggestions are not lists of the same length")
    return picks


def curve_problem(point: Any) -> str | None:
    """What is wrong with a learning-curve line, if anything: an object with whole ``labels`` and a numeric or null
    ``accuracy``."""
    good = isinstance(point, dict) and isinstance(point.get("labels"), int) and (
        point.get("accuracy") is None or isinstance(point["accuracy"], (int, float)))
    return None if good else "is no point of a learning curve"


def read_curve(name: str) -> list[dict[str, Any]]:
    """Every point of ``curve.jsonl`` in order; a half-written last line is skipped, a damaged one refused."""
    return read_json_lines(load_project(name).folder / CURVE_FILE, f"curve.jsonl of labelling project {name!r}",
                           curve_problem)
