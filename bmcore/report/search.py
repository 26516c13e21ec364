"""What the Train page's Search tab shows of a search (:mod:`bmcore.tune`): the leaderboard, the validation-test gap of
the chosen trial, the command, and Optuna's own figures with a reason where one cannot be drawn yet."""

from __future__ import annotations

import math
import shlex
import warnings
from typing import Any

import pandas as pd

from ..run_list import short_model
from ..studies import SEARCH_LOG, Search, direction_of, load_study, study_dir, tune_command
from ..tune import MODEL_PARAM

SEARCH_INTRO = (
    "A **search** trains the same data several times, each trial with other settings (learning rate, epochs, batch "
    "size...) or another of the candidate models, and keeps the best: Optuna picks each trial's settings from how the "
    "earlier ones did and stops a hopeless trial early, until the time budget is spent. Trials are compared on the "
    "**validation** split only, and the **test** split is scored once, for the chosen trial: choosing among many trials "
    "by their test figure would fit the choice to the test split, and its figure would no longer be an honest estimate."
)
WIDE_GAP = 0.05  # a test figure this much worse than validation is worth a word
TRIAL_COLUMNS = ["trial", "outcome", "seconds", "predicted (s)", "run"]


def value_column(metric: str) -> str:
    """The leaderboard's column of each trial's validation figure."""
    return f"validation {metric}"


def trial_cell(value: Any, spec: str = ".3g") -> str:
    """One leaderboard cell as text: a float with ``spec`` (3 significant figures: a learning rate reads 3.11e-05),
    ``-`` for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def outcome_text(row: dict[str, Any], best: int | None) -> str:
    """A trial's outcome as the leaderboard says it: ``completed``, ``pruned``, ``training`` ...; the defaults trial
    and the best trial marked."""
    text = row.get("outcome") or ("training" if row.get("state") == "running" else str(row.get("state") or "-"))
    marks = [m for m, on in (("defaults", row.get("defaults")), ("best", row.get("trial") == best)) if on]
    return text + (f" ({', '.join(marks)})" if marks else "")


def best_trial(rows: list[dict[str, Any]], metric: str) -> int | None:
    """The number of the best completed trial on validation (the one the search chooses), or None."""
    done = [r for r in rows if isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])]
    if not done:
        return None
    sign = -1 if direction_of(metric) == "minimize" else 1
    return max(done, key=lambda r: (sign * r["value"], -r["trial"]))["trial"]


def leaderboard_frame(rows: list[dict[str, Any]], metric: str) -> pd.DataFrame:
    """The leaderboard from :func:`bmcore.studies.trial_table`: one row per trial, completed ones best first on
    validation, then the others newest first. Columns: trial, outcome (the defaults and best trial marked), the
    validation figure (a trial still training or stopped early: its last reported figure, marked ``so far`` or
    ``last``), seconds, predicted seconds, run, then each setting a trial chose. Every cell is text."""
    best = best_trial(rows, metric)
    sign = -1 if direction_of(metric) == "minimize" else 1
    done = sorted((r for r in rows if isinstance(r.get("value"), (int, float))), key=lambda r: -sign * r["value"])
    rest = sorted((r for r in rows if not isinstance(r.get("value"), (int, float))), key=lambda r: -r["trial"])
    params = list(dict.fromkeys(k for r in rows for k in (r.get("params") or {})))
    column = value_column(metric)
    data = []
    for r in [*done, *rest]:
        value = trial_cell(r.get("value"), ".4f")
        if value == "-" and r.get("last_value") is not None:
            value = f"{trial_cell(r['last_value'], '.4f')} ({'so far' if r.get('state') == 'running' else 'last'})"
        line = {"trial": str(r["trial"]), "outcome": outcome_text(r, best), column: value,
                "seconds": trial_cell(r.get("seconds"), ".0f"), "predicted (s)": trial_cell(r.get("predicted_s"), ".0f"), "run": trial_cell(r.get("run"))}
        for p in params:
            v = (r.get("params") or {}).get(p)
            if v is None and r.get("defaults"):
                line[p] = "default"  # the defaults trial chose nothing but its model
            else:
                line[p] = short_model(v) if p == MODEL_PARAM and isinstance(v, str) else trial_cell(v)
        data.append(line)
    return pd.DataFrame(data, columns=[*TRIAL_COLUMNS[:2], column, *TRIAL_COLUMNS[2:], *params])


def gap_line(status: dict[str, Any]) -> str | None:
    """The chosen trial's validation and test figures and the gap between them (from the study's ``status.json``),
    or None before a trial was chosen and scored. Plain text: the caller escapes it."""
    val, test, metric = status.get("best_validation"), status.get("best_test"), status.get("metric") or "score"
    if not isinstance(val, (int, float)) or not isinstance(test, (int, float)):
        return None
    gap = test - val
    worse = gap > 0 if direction_of(metric) == "minimize" else gap < 0
    than = ("the same as on validation" if abs(gap) < 5e-5
            else f"{abs(gap):.4f} {'lower' if gap < 0 else 'higher'} than on validation")
    line = (f"Trial {status.get('best_trial')}, chosen on validation: {metric} {val:.4f} on validation, {test:.4f} on "
            f"test ({than}). The test split was scored once, for this trial alone.")
    if worse and abs(gap) >= WIDE_GAP:
        line += (" A gap this wide says the choice partly fitted the validation split (or the splits are small): the "
                 "test figure is the one to expect on new data.")
    return line


def study_metric(name: str) -> str:
    """The validation metric a study compares its trials on (set when it was created; ``score`` before that)."""
    study = load_study(name)
    return str((study.user_attrs.get("metric") if study is not None else None) or "score")


def search_log_tail(name: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a study's ``tune.log`` (what the driver printed), or ``""``."""
    path = study_dir(name) / SEARCH_LOG
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def search_command(search: Search) -> str:
    """The terminal command of a search, as the tab starts it."""
    return shlex.join(tune_command(search))


def varied_params(study: Any) -> tuple[list[str], int]:
    """The settings that differ between the completed trials holding them, and how many completed trials hold all of
    them (what a parameter-importance figure needs: two or more)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    widest = max((t.params for t in done), key=len, default={})
    holding = [t for t in done if set(widest) <= set(t.params)]
    varied = [p for p in widest if len({repr(t.params[p]) for t in holding}) > 1]
    return varied, len(holding)


def constant_params(study: Any) -> list[str]:
    """The settings every completed trial holds with one same value (a single candidate model): nothing to plot."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    names = set.intersection(*(set(t.params) for t in done)) if done else set()
    return [p for p in sorted(names) if len({repr(t.params[p]) for t in done}) == 1]


def search_figures(study: Any, metric: str) -> list[tuple[str, Any, str | None]]:
    """Optuna's optimisation history, parameter importances and parallel coordinates for ``study``: (title, plotly
    figure or None, why there is none: a clause that follows the title). Importances from a handful of trials are
    rough: the page says so."""
    from optuna import visualization  # loads plotly and Optuna's plotting: only when a search is shown

    done = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    wait = "it appears when a trial has completed." if not done else None
    history = None if wait else visualization.plot_optimization_history(study, target_name=metric)
    out: list[tuple[str, Any, str | None]] = [("Optimisation history", history, wait)]
    varied, holding = varied_params(study)
    if holding < 2 or not varied:
        why = ("they need two or more completed trials that searched the settings (the defaults "
               f"trial searches none) and chose them differently; so far {holding}.")
        out.append(("Parameter importances", None, why))
    else:
        try:
            with warnings.catch_warnings():  # few trials: Optuna warns that its estimate is rough, as the caption says
                warnings.simplefilter("ignore")
                fig = visualization.plot_param_importances(study, params=varied, target_name=metric)
        except (RuntimeError, ValueError) as exc:  # e.g. every trial scored the same: nothing to attribute
            fig, why = None, f"they cannot be worked out yet: {' '.join(str(exc).split())[:200]}"
        else:
            why = None
        out.append(("Parameter importances", fig, why))
    if wait:
        out.append(("Parallel coordinates", None, wait))
    else:
        out.append(("Parallel coordinates", *parallel_coordinates(study, metric)))
    return out


def parallel_coordinates(study: Any, metric: str) -> tuple[Any, str | None]:
    """Optuna's parallel-coordinate figure of the completed trials that hold every setting drawn: a defaults trial,
    which searched none of them, would be drawn at a "None" tick of every axis. (figure or None, why there is none)."""
    import optuna
    from optuna import visualization

    constant = set(constant_params(study))
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    shown = [p for p in dict.fromkeys(k for t in done for k in t.params) if p not in constant]
    drawn = [t for t in done if set(shown) <= set(t.params)]
    if not shown or len(drawn) < 2:  # only the defaults, or one searched trial: one line across nothing
        return None, "they appear when two completed trials chose different settings (the defaults trial searches none)."
    copy = optuna.create_study(directions=study.directions)  # in memory: the stored study is not touched
    copy.add_trials(drawn)
    return visualization.plot_parallel_coordinate(copy, params=shown, target_name=metric), None
