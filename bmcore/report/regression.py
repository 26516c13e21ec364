"""What the Evaluate page shows for a regression model (a score per example), worked out: the headline tiles beside
the baseline, the predicted-against-gold scatter's data and its selection, the error by gold range, the error browser's
table and the comparison with another run of the same split.

``pages/_regression.py`` only draws what these functions return. A prediction table is the one
:meth:`bmcore.tasks.regression.Regression.prediction_table` writes: inputs, gold, pred, error (pred - gold), abs_error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..display import md, plot_text
from ..errors import BmcoreError
from ..metrics import regression_metrics
from . import Tile, delta, fmt, preview, tile

INTRO = ("This model predicts a **score**, not a class, so it is never simply right or wrong: it is off by some "
         "distance. **Pearson correlation** says how closely the predicted scores follow the gold scores on a straight "
         "line (1: perfectly, 0: not at all); **Spearman** asks the same of their order alone. **RMSE** and **MAE** are "
         "the typical distance between a predicted and a gold score, in the data's own units, so lower is better "
         "(RMSE weighs large misses more). **R²** is the share of the gold scores' spread the model explains: 0 is no "
         "better than always predicting the mean.")
SCATTER_TEXT = ("Each point is one example: across, its gold score; up, the model's. Points on the dotted line "
                "y = x are exact; above it the model scores too high, below it too low. Select points (click, or drag a "
                "box or lasso) to list those examples below.")
RANGE_TEXT = ("The gold scores cut into equal ranges: the **MAE** of each range says where the model is good and where "
              "it is not, the **bias** (mean signed error, predicted minus gold) whether it leans too high (above 0) "
              "or too low. A model that squeezes every prediction toward the middle is too high on low scores and too "
              "low on high ones.")
# key, tile label, what it means, True when lower is better
TILES = (
    ("pearson", "Pearson", "Linear correlation of predicted and gold scores (1 is perfect, 0 none).", False),
    ("spearman", "Spearman", "Correlation of the two rankings: does a higher gold score get a higher prediction?", False),
    ("rmse", "RMSE", "Root mean squared error, in the scores' units: large misses weigh more (lower is better).", True),
    ("mae", "MAE", "Mean absolute error, in the scores' units: the typical distance from gold (lower is better).", True),
    ("r2", "R²", "Share of the gold scores' variance explained (1 is perfect; 0 or below: no better than the mean).", False),
)
BASELINE_TEXT = "TF-IDF + ridge regression, trained on the same train split and scored on the same examples"
MAX_POINTS = 3000  # points drawn in the scatter at once (an even sample beyond); the CSV download has them all
EXAMPLE_COLUMNS = ("text", "text_pair", "gold", "pred", "error", "abs_error", "truncated")
SORTS = {  # error-browser orderings: label -> (column, descending)
    "Largest error first": ("abs_error", True),
    "Predicted too high first": ("error", True),
    "Predicted too low first": ("error", False),
}


def scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """The prediction table with gold, pred, error and abs_error as numbers (an older CSV-only evaluation reads them
    as text); a table without gold and pred is a one-line error."""
    if not {"gold", "pred"} <= set(predictions.columns):
        raise BmcoreError("the predictions have no gold and pred columns; evaluate the model again")
    out = predictions.copy()
    for col in ("gold", "pred"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    out["error"] = out["pred"] - out["gold"]
    out["abs_error"] = out["error"].abs()
    return out


def regression_tiles(metrics: dict[str, Any]) -> list[Tile]:
    """Pearson, Spearman, RMSE, MAE and R², each against the baseline's figure (the delta, and in the help)."""
    base = metrics.get("baseline") or {}
    out = []
    for key, label, meaning, lower in TILES:
        value, other = metrics.get(key), base.get(key)
        where = f" Baseline ({BASELINE_TEXT}): {fmt(other)}." if base else " No baseline: the dataset has no train split."
        out.append(tile(label, fmt(value), delta(value, other), meaning + where, "inverse" if lower else "normal"))
    return out


def scatter_frame(predictions: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """The scatter's points: ``row`` (the example's row in the predictions, what a selection returns), gold, pred,
    abs_error and a hover line of the text (escaped for plotly); an even sample of ``max_points`` beyond that."""
    p = scores(predictions).reset_index(drop=True)
    p = p[p["gold"].notna() & p["pred"].notna()]
    if len(p) > max_points:
        p = p.iloc[np.linspace(0, len(p) - 1, max_points).round().astype(int)]
    text = p["text"] if "text" in p else pd.Series([""] * len(p), index=p.index)
    pair = p["text_pair"] if "text_pair" in p else None
    hover = [plot_text(preview(t, 80) + (f" / {preview(pair.loc[i], 60)}" if pair is not None else ""))
             for i, t in text.items()]
    return pd.DataFrame({"row": p.index.to_numpy(), "gold": p["gold"].to_numpy(), "pred": p["pred"].to_numpy(),
                         "abs_error": p["abs_error"].to_numpy(), "hover": hover})


def scatter_range(frame: pd.DataFrame) -> tuple[float, float]:
    """The span the y = x line covers: the smallest and largest gold or predicted score, with a little margin."""
    values = pd.concat([frame["gold"], frame["pred"]]).dropna()
    if values.empty:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = 0.02 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def selected_rows(points: Any) -> list[int]:
    """The prediction rows a scatter selection picked: each point carries its row as its ``customdata`` (the browser
    sends a number, or a one-item list or ``{"0": row}`` for a row of custom data; anything else is ignored)."""
    rows = []
    for point in points if isinstance(points, list) else []:
        data = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(data, dict):
            data = list(data.values())
        value = data[0] if isinstance(data, list) and data else data
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            rows.append(int(value))
    return sorted(set(rows))


def example_table(predictions: pd.DataFrame, rows: Sequence[int] | None = None, *, sort: str = "Largest error first",
                  gold_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """The examples to list (``rows`` of the predictions, all by default; a gold score within ``gold_range``),
    ordered as :data:`SORTS` says: by default the largest absolute error first."""
    if sort not in SORTS:
        raise BmcoreError(f"unknown order {sort!r}; one of {', '.join(SORTS)}")
    p = scores(predictions).reset_index(drop=True)
    if rows is not None:
        p = p.loc[[r for r in rows if 0 <= r < len(p)]]
    if gold_range is not None:
        p = p[(p["gold"] >= gold_range[0]) & (p["gold"] <= gold_range[1])]
    column, descending = SORTS[sort]
    p = p.sort_values(column, ascending=not descending, kind="stable", na_position="last")
    return p[[c for c in EXAMPLE_COLUMNS if c in p]]


def error_range_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """``metrics["error_by_range"]`` as a frame: range (``0.00–1.00``, the last one closed), low, high, n, mae and
    bias (mean signed error, predicted minus gold); empty when the metrics have none."""
    rows = [r for r in metrics.get("error_by_range") or [] if isinstance(r, dict)]
    frame = pd.DataFrame(rows, columns=["low", "high", "n", "mae", "bias"])
    frame.insert(0, "range", [f"{fmt(r['low'], '.2f')}–{fmt(r['high'], '.2f')}" for r in rows])
    return frame


def bias_text(metrics: dict[str, Any]) -> str | None:
    """One line on the error by range: the mean signed error over all examples, and the range the model misses most;
    None without ranges."""
    frame = error_range_frame(metrics).dropna(subset=["mae"])
    frame = frame[frame["n"] > 0]
    if frame.empty:
        return None
    bias = float((frame["bias"] * frame["n"]).sum() / frame["n"].sum())
    lean = "too high" if bias > 0 else "too low" if bias < 0 else "neither high nor low"
    worst = frame.loc[frame["mae"].idxmax()]
    return (f"Over all examples the model predicts {abs(bias):.3f} {lean} on average (mean signed error {bias:+.3f}). "
            f"It misses most for gold scores {worst['range']} (MAE {worst['mae']:.3f}, {int(worst['n']):,} examples).")


def gold_bounds(predictions: pd.DataFrame) -> tuple[float, float] | None:
    """The smallest and largest gold score (the error browser's range filter), or None without a finite one."""
    gold = scores(predictions)["gold"].dropna()
    return None if gold.empty else (float(gold.min()), float(gold.max()))


def range_state(state: Any, bounds: tuple[float, float]) -> tuple[float, float]:
    """The gold range filter to show: the one kept from an earlier visit when it lies within ``bounds`` (this
    evaluation's gold scores), else all of them."""
    if isinstance(state, (tuple, list)) and len(state) == 2 and all(isinstance(v, (int, float)) for v in state):
        lo, hi = float(state[0]), float(state[1])
        if bounds[0] <= lo <= hi <= bounds[1]:
            return lo, hi
    return bounds


# --- comparing two runs ---------------------------------------------------------------------


def compare_runs(pred_a: pd.DataFrame, pred_b: pd.DataFrame, label_names: Sequence[str] = ()) -> dict[str, Any]:
    """Compare two regression prediction tables of the same split (same rows, same order): Pearson, Spearman, RMSE and
    MAE of each (``_a``, ``_b``), and the examples whose absolute error grew (``worse``, most first) or shrank
    (``better``), with text, gold, both predictions and the change (b's absolute error minus a's)."""
    a, b = scores(pred_a), scores(pred_b)
    if len(a) != len(b):
        raise BmcoreError(f"the two runs scored different splits ({len(a)} vs {len(b)} rows); compare the same split")
    same_text = "text" not in a or "text" not in b or (a["text"].astype(str).to_numpy() == b["text"].astype(str).to_numpy()).all()
    if not same_text or not np.allclose(a["gold"].to_numpy(), b["gold"].to_numpy(), equal_nan=True):
        raise BmcoreError("the two prediction tables are not the same split (texts or gold scores differ); compare the same split")
    out: dict[str, Any] = {"n": int(len(a))}
    ma, mb = regression_metrics(a["gold"], a["pred"]), regression_metrics(b["gold"], b["pred"])
    for key in ("pearson", "spearman", "rmse", "mae"):
        out[f"{key}_a"], out[f"{key}_b"] = ma[key], mb[key]
    changes = a[[c for c in ("text", "text_pair", "gold") if c in a]].copy()
    changes["pred_a"], changes["pred_b"] = a["pred"].to_numpy(), b["pred"].to_numpy()
    changes["change"] = b["abs_error"].to_numpy() - a["abs_error"].to_numpy()
    out["worse"] = changes[changes["change"] > 0].sort_values("change", ascending=False, kind="stable")
    out["better"] = changes[changes["change"] < 0].sort_values("change", kind="stable")
    return out


def compare_tiles(cmp: dict[str, Any], other: str) -> list[Tile]:
    """This model against ``other`` from :func:`compare_runs` (a is the other, b this one)."""
    what = f"vs {md(other)}"
    return [tile(label, fmt(cmp[f"{key}_b"]), delta(cmp[f"{key}_b"], cmp[f"{key}_a"], what), meaning,
                 "inverse" if lower else "normal")
            for key, label, meaning, lower in TILES if f"{key}_b" in cmp] + [
        tile("Further from gold", f"{len(cmp['worse']):,}", help="Examples whose absolute error grew with this model."),
        tile("Closer to gold", f"{len(cmp['better']):,}", help="Examples whose absolute error shrank with this model.")]
