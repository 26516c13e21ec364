"""What the labelling loop's page shows, worked out from the engine's plain data (:mod:`bmcore.labelling`): the
labelled rows per class, the batch to label, the learning curve and the simulation's curves as frames and plotly
figures, and the command each step of the page runs.

Class names and texts come from the user's file: the frames carry them as values (the page shows them with
``st.dataframe``), and every one in a figure goes through :func:`bmcore.display.plot_text`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..display import plot_text
from ..labelling.project import Project
from ..labelling.step import HOLDOUT_SHARE, LOOP_BATCH, LOOP_MAX_STEPS, LOOP_MODEL

BATCH_PREVIEW = 200  # characters of a text in the batch table
ORDER_SEED = 0  # the fixed random order texts come in where no step has picked them

HELD_OUT_NOTE = (f"Validation accuracy is measured on about {HOLDOUT_SHARE:.0%} of your labels, held out by a hash of "
                 "the row (the same rows at every step, so the validation set only grows) and never trained on. Those "
                 "rows were picked as hard ones, so the curve errs low; with few labels each point rests on a handful "
                 "of rows.")
PICKERS = {
    "uncertainty": "the texts the model is least sure of among typical ones, spread over the data",
    "random": "texts drawn at random",
    "diverse": "texts that cover the data (fewer than two classes labelled: no model yet)",
}


def counts_frame(counts: dict[str, int]) -> pd.DataFrame:
    """Labelled rows per class (:func:`bmcore.labelling.project.counts`), in the project's class order."""
    return pd.DataFrame({"class": list(counts), "labelled": [int(v) for v in counts.values()]})


def batch_frame(project: Project, picks: dict[str, Any] | None, given: dict[int, str]) -> pd.DataFrame:
    """The picked rows still to label (:func:`bmcore.labelling.step.read_picks`, less those labelled since): ``row``,
    ``text``, the model's ``suggested`` class and its ``confidence`` (empty before a model), and ``label`` to fill."""
    columns = ["row", "text", "suggested", "confidence", "label"]
    if not picks:
        return pd.DataFrame(columns=columns)
    texts = project.texts.set_index("row")["text"]
    probs = picks.get("probs") or [None] * len(picks["rows"])
    suggested = picks.get("suggested") or [None] * len(picks["rows"])
    out = [{"row": r, "text": str(texts.get(r, ""))[:BATCH_PREVIEW], "suggested": s,
            "confidence": None if p is None else round(float(np.max(p)), 3), "label": None}
           for r, s, p in zip(picks["rows"], suggested, probs, strict=False) if r not in given and r in texts.index]
    return pd.DataFrame(out, columns=columns)


def next_batch(project: Project, picks: dict[str, Any] | None, given: dict[int, str], skipped: Sequence[int] = (),
               size: int = LOOP_BATCH) -> dict[str, Any]:
    """What to label next, shaped as picks (``rows``, ``probs``, ``suggested``) with ``source``: ``picks``, the last
    step's picked rows neither labelled nor ``skipped`` yet, in the order picked; once there are none (before the
    first step, or the batch is done), ``random``: ``size`` unlabelled rows in a fixed random order (the same on every
    visit, so a label given takes its row out and the next comes in)."""
    if picks:
        left = [i for i, r in enumerate(picks["rows"]) if r not in given and r not in skipped]
        if left:
            probs, suggested = picks.get("probs"), picks.get("suggested")
            return {"rows": [picks["rows"][i] for i in left], "source": "picks",
                    "probs": [probs[i] for i in left] if probs else None,
                    "suggested": [suggested[i] for i in left] if suggested else None}
    order = np.random.default_rng(ORDER_SEED).permutation(project.texts["row"].to_numpy(dtype=np.int64))
    out = set(given) | set(skipped)
    rows = [int(r) for r in order if int(r) not in out][:size]
    return {"rows": rows, "probs": None, "suggested": None, "source": "random"}


def picks_note(picks: dict[str, Any] | None, batch: dict[str, Any]) -> str:
    """One line on where the texts to label come from (``batch``: :func:`next_batch`)."""
    if batch["source"] == "picks" and picks:
        what = PICKERS.get(str(picks.get("picker")), "texts")
        return f"{len(batch['rows'])} of the {len(picks['rows'])} texts picked at {picks.get('labels_given', 0)} labels " \
               f"are left to label: {what}."
    if picks:
        return ("Every text the last step picked is labelled or skipped: retrain below to pick the next batch. "
                "Meanwhile texts come in a random order.")
    return ("No model yet: texts come in a random order. Label a few of each class, then retrain below, and the "
            "model picks what to label next.")


def curve_frame(points: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The learning curve (:func:`bmcore.labelling.step.read_curve`): one row per step, ``labels`` given,
    validation ``accuracy`` (empty when nothing was held out) on ``n_validation`` rows, the rows it ``trained_on`` for
    ``steps`` steps of pairs, ``strategy``, ``seconds``."""
    columns = ["labels", "accuracy", "n_validation", "trained_on", "steps", "strategy", "seconds"]
    return pd.DataFrame([{c: p.get(c) for c in columns} for p in points], columns=columns)


def curve_figure(points: Sequence[dict[str, Any]]) -> Any:
    """Validation accuracy against labels given, a line per strategy; None while no step has measured one."""
    import plotly.graph_objects as go  # loaded when a page draws: the CLI's start-up stays light

    frame = curve_frame(points).dropna(subset=["accuracy"])
    if frame.empty:
        return None
    fig = go.Figure()
    for strategy, part in frame.groupby("strategy", sort=False):
        fig.add_trace(go.Scatter(x=part["labels"], y=part["accuracy"], mode="lines+markers+text", name=plot_text(strategy),
                                 customdata=part[["n_validation"]].to_numpy(), marker={"size": 9},
                                 text=[f"{a:.2f}" + (f" on {int(n)}" if isinstance(n, (int, float)) and n == n else "")  # curve.jsonl is data
                                       for a, n in zip(part["accuracy"], part["n_validation"], strict=True)],
                                 textposition="top center",
                                 hovertemplate="%{x} labels: accuracy %{y:.3f} on %{customdata[0]} held-out rows"))
    fig.update_layout(xaxis_title="labels given", yaxis_title="validation accuracy", yaxis_range=[0, 1.05],
                      xaxis={"rangemode": "tozero", "tickformat": "d"}, margin={"t": 30},
                      showlegend=frame["strategy"].nunique() > 1, legend_title_text="strategy")
    return fig


def simulation_summary(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per number of labels: each strategy's mean accuracy over the seeds, and ``uncertainty_at_least_random``
    (None unless both ran)."""
    out = []
    means = frame.groupby(["labels", "strategy"])["accuracy"].mean().unstack("strategy")
    for labels, row in means.iterrows():
        point: dict[str, Any] = {"labels": int(labels), **{s: round(float(v), 4) for s, v in row.items()
                                                           if not pd.isna(v)}}
        both = "uncertainty" in point and "random" in point
        point["uncertainty_at_least_random"] = bool(point["uncertainty"] >= point["random"]) if both else None
        out.append(point)
    return out


def simulation_caption(summary: dict[str, Any]) -> str:
    """The settings a finished simulation ran with, in a sentence (its ``summary.json``)."""
    names = {True: ", learning from the class names", False: ", from the texts alone"}.get(summary.get("label_names"), "")
    seeds, low, cap = summary.get("seeds"), summary.get("min_steps"), summary.get("max_steps")
    steps = ""
    if isinstance(low, int) and isinstance(cap, int):  # older simulations trained a fixed number of steps
        per = summary.get("steps_per_row")
        steps = f", {low} to {cap} training steps as labels grow ({per} a label)" if cap > low else f", {cap} training steps"
    return (f"{seeds} seed{'' if seeds == 1 else 's'}, a pool of {summary.get('pool')} train rows, scored on "
            f"{summary.get('eval_rows')} test rows, model {summary.get('model')}{names}{steps}, "
            f"{summary.get('seconds')} s.")


def simulation_figure(frame: pd.DataFrame, title: str = "") -> Any:
    """The simulation's mean curve per strategy (``curves.csv``) with a band from the lowest to the highest seed."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    for i, (strategy, part) in enumerate(frame.groupby("strategy", sort=False)):
        stats = part.groupby("labels")["accuracy"].agg(["mean", "min", "max"]).reset_index()
        colour = colours[i % len(colours)]
        x = stats["labels"].tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=stats["max"].tolist() + stats["min"].tolist()[::-1], fill="toself",
                                 fillcolor=colour, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                 showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=stats["mean"], mode="lines+markers", name=plot_text(strategy),
                                 line={"color": colour}, hovertemplate="%{x} labels: mean accuracy %{y:.3f}"))
    fig.update_layout(title=plot_text(title) if title else None, xaxis_title="labels given",
                      yaxis_title="test accuracy (mean over seeds; band: lowest to highest)", margin={"t": 40})
    return fig


def _command(*parts: Any) -> str:
    return shlex.join(["python", "-m", "bmcore", "label", *(str(p) for p in parts)])


def label_commands(name: str, *, strategy: str = "uncertainty", batch: int = LOOP_BATCH, row: int | None = None,
                   label: str | None = None, dataset: str | None = None, model: str = LOOP_MODEL,
                   max_steps: int | None = LOOP_MAX_STEPS, label_names: bool = True) -> dict[str, str]:
    """The command behind each thing the page does with project ``name``: ``give`` (a label), ``clear``, ``step``
    (retrain and pick; ``--model``, ``--max-steps`` and ``--no-label-names`` where not the defaults), ``status`` and
    ``export``."""
    step = ["step", name, "--strategy", strategy, "--batch", batch]
    step += ["--model", model] if model != LOOP_MODEL else []
    step += ["--max-steps", max_steps] if max_steps is not None and max_steps != LOOP_MAX_STEPS else []
    step += [] if label_names else ["--no-label-names"]
    export = ["export", name, *(["--name", dataset] if dataset else [])]
    return {"give": _command("give", name, "ROW" if row is None else row, "LABEL" if label is None else label),
            "clear": _command("clear", name, "ROW" if row is None else row),
            "step": _command(*step), "status": _command("status", name), "export": _command(*export)}


def new_command(name: str, file: str, classes: Sequence[str], text_column: str | None = None,
                label_column: str | None = None) -> str:
    """The ``label new`` command that starts a project as the page did."""
    parts: list[Any] = ["new", name, "--file", file, "--classes", ",".join(classes)]
    if text_column:
        parts += ["--text-column", text_column]
    if label_column:
        parts += ["--label-column", label_column]
    return _command(*parts)


def simulate_command(dataset: str, *, budget: int = 200, step: int = 20,
                     strategies: Sequence[str] = ("uncertainty", "random"), seeds: int = 3, model: str = LOOP_MODEL,
                     max_steps: int | None = LOOP_MAX_STEPS, label_names: bool = True) -> str:
    """The ``label simulate`` command the page's simulation runs (``--model``, ``--max-steps`` and
    ``--no-label-names`` where not the defaults)."""
    extra: list[Any] = ["--model", model] if model != LOOP_MODEL else []
    extra += ["--max-steps", max_steps] if max_steps is not None and max_steps != LOOP_MAX_STEPS else []
    extra += [] if label_names else ["--no-label-names"]
    return _command("simulate", "--data", dataset, "--budget", budget, "--step", step, "--strategy",
                    ",".join(strategies), "--seeds", seeds, *extra)
