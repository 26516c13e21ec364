"""The regression Evaluate page's content without a browser (bmcore.report.regression), and how the page finds its
sections: the task names them, the modality leaves some out, one registry draws them (issue 28)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import report
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.metrics import regression_metrics
from bmcore.modalities import MODALITIES, get_modality
from bmcore.report import regression as rr
from bmcore.tasks import IMAGE_TASKS, MASKED_LM, TASKS, get_task


@pytest.fixture
def scored(shared_data: Path) -> tuple[pd.DataFrame, dict]:
    """120 STS-B dev pairs as a regression prediction table: predictions squeezed toward the middle (as an undertrained
    model's are), plus noise; and their metrics with a baseline's."""
    df = pd.read_csv(shared_data / "stsb" / "dev.csv").iloc[:120]
    split = pd.DataFrame({"text": df["sentence1"], "text_pair": df["sentence2"], "label": df["score"].astype(float)})
    gold = split["label"].to_numpy()
    pred = 2.5 + 0.5 * (gold - 2.5) + np.random.default_rng(0).normal(0, 0.4, len(gold))
    table = get_task("regression").prediction_table(split, pred, None)
    metrics = {"problem_type": "regression", **regression_metrics(gold, pred),
               "baseline": regression_metrics(gold, np.full(len(gold), 2.0) + 0.1 * gold)}
    return table, metrics


def test_tiles_give_each_metric_beside_the_baseline(scored):
    _, m = scored
    tiles = rr.regression_tiles(m)
    assert [t["label"] for t in tiles] == ["Pearson", "Spearman", "RMSE", "MAE", "R²"]
    by = {t["label"]: t for t in tiles}
    assert by["Pearson"]["value"] == f"{m['pearson']:.3f}"
    assert by["Pearson"]["delta"] == f"{m['pearson'] - m['baseline']['pearson']:+.3f} vs baseline"
    assert by["RMSE"]["delta_color"] == "inverse" and by["MAE"]["delta_color"] == "inverse"  # lower is better
    assert by["Pearson"]["delta_color"] == "normal"
    assert f"{m['baseline']['mae']:.3f}" in by["MAE"]["help"] and "ridge" in by["MAE"]["help"]
    bare = rr.regression_tiles({**m, "baseline": None, "pearson": None})
    assert bare[0]["value"] == "-" and bare[0]["delta"] is None and "No baseline" in bare[0]["help"]


def test_scatter_data_carries_each_point_s_row_and_escaped_text(scored):
    table, _ = scored
    table = table.copy()
    table.loc[3, "text"] = "<b>bold</b> costs $5"
    points = rr.scatter_frame(table)
    assert len(points) == len(table) and points["row"].tolist() == list(range(len(table)))
    assert (points["gold"].to_numpy() == table["gold"].to_numpy()).all()
    assert "<b>" not in points.loc[3, "hover"] and "bold" in points.loc[3, "hover"]
    lo, hi = rr.scatter_range(points)
    assert lo < min(table["gold"].min(), table["pred"].min()) and hi > max(table["gold"].max(), table["pred"].max())
    sample = rr.scatter_frame(table, max_points=50)
    assert len(sample) == 50 and sample["row"].is_monotonic_increasing and sample["row"].iloc[-1] == len(table) - 1


def test_a_selection_lists_its_rows_largest_error_first(scored):
    table, _ = scored
    points = rr.scatter_frame(table)
    picked = points.sort_values("gold").head(7)
    # As Streamlit hands a box selection back: plotly's point fields, the row in customdata.
    selection = [{"curve_number": 0, "point_number": i, "point_index": i, "x": g, "y": p, "customdata": int(r)}
                 for i, (r, g, p) in enumerate(zip(picked["row"], picked["gold"], picked["pred"], strict=True))]
    rows = rr.selected_rows(selection + [{"x": 1}, "junk", {"customdata": ["x"]}, {"customdata": True}])
    assert rows == sorted(picked["row"].tolist())
    assert rr.selected_rows([{"customdata": [5]}, {"customdata": {"0": 7}}, {"customdata": 2.0}]) == [2, 5, 7]
    listed = rr.example_table(table, rows)
    assert len(listed) == 7 and listed["abs_error"].is_monotonic_decreasing
    assert set(listed["text"]) == set(table.loc[rows, "text"])
    assert rr.selected_rows(None) == [] and rr.selected_rows({"points": []}) == []


def test_the_error_table_is_sorted_by_absolute_error_and_filters_a_gold_range(scored):
    table, _ = scored
    errors = rr.example_table(table)
    assert len(errors) == len(table) and errors["abs_error"].is_monotonic_decreasing
    assert errors["abs_error"].iloc[0] == pytest.approx((table["pred"] - table["gold"]).abs().max())
    assert list(errors.columns) == ["text", "text_pair", "gold", "pred", "error", "abs_error", "truncated"]
    high = rr.example_table(table, sort="Predicted too high first")
    assert high["error"].is_monotonic_decreasing and high["error"].iloc[0] > 0
    assert rr.example_table(table, sort="Predicted too low first")["error"].is_monotonic_increasing
    inside = rr.example_table(table, gold_range=(4.0, 5.0))
    assert len(inside) == int(table["gold"].between(4.0, 5.0).sum()) > 0
    assert rr.gold_bounds(table) == (table["gold"].min(), table["gold"].max())
    assert rr.range_state((1.0, 2.0), (0.0, 5.0)) == (1.0, 2.0)
    assert rr.range_state((1.0, 6.0), (0.0, 5.0)) == rr.range_state(None, (0.0, 5.0)) == (0.0, 5.0)  # another evaluation's
    with pytest.raises(BmcoreError, match="unknown order"):
        rr.example_table(table, sort="by colour")
    as_text = table.astype({"gold": str, "pred": str})  # an older evaluation read from its CSV
    assert rr.example_table(as_text)["abs_error"].iloc[0] == pytest.approx(errors["abs_error"].iloc[0])


def test_the_error_by_range_frame_and_its_bias(scored):
    table, m = scored
    frame = rr.error_range_frame(m)
    assert list(frame.columns) == ["range", "low", "high", "n", "mae", "bias"]
    assert frame["n"].sum() == len(table) and frame["range"].iloc[0].startswith(f"{table['gold'].min():.2f}–")
    # Predictions squeezed toward the middle: too high on low gold scores, too low on high ones.
    assert frame["bias"].iloc[0] > 0 > frame["bias"].iloc[-1]
    text = rr.bias_text(m)
    mean_error = float((table["pred"] - table["gold"]).mean())
    assert text.startswith(f"Over all examples the model predicts {abs(mean_error):.3f}")
    assert f"(mean signed error {mean_error:+.3f})" in text
    assert rr.error_range_frame({}).empty and rr.bias_text({}) is None


def test_compare_two_runs_of_the_same_split(scored):
    a, _ = scored
    b = a.copy()
    b["pred"] = b["gold"] + 0.5 * (a["pred"] - a["gold"])  # halfway to gold: every example closer
    b.loc[0, "pred"] = b.loc[0, "gold"] + 3.0  # but one much further
    cmp = rr.compare_runs(a, b)
    assert cmp["n"] == len(a) and cmp["mae_b"] == pytest.approx(float((b["pred"] - b["gold"]).abs().mean()))
    assert len(cmp["worse"]) == 1 and cmp["worse"].index[0] == 0
    assert len(cmp["better"]) == len(a) - 1 and cmp["better"]["change"].is_monotonic_increasing
    tiles = {t["label"]: t for t in rr.compare_tiles(cmp, "run <2>")}
    assert tiles["MAE"]["delta"] == f"{cmp['mae_b'] - cmp['mae_a']:+.3f} vs {md('run <2>')}"  # the name as text
    assert tiles["MAE"]["delta_color"] == "inverse"
    assert tiles["Further from gold"]["value"] == "1"
    with pytest.raises(BmcoreError, match="same split"):
        rr.compare_runs(a, b.iloc[:10])
    with pytest.raises(BmcoreError, match="same split"):
        rr.compare_runs(a, b.assign(gold=b["gold"] + 1))


def test_each_task_names_sections_the_pages_can_draw():
    from pages._sections import DRAWERS

    for registry, modality in ((TASKS, "text"), (IMAGE_TASKS, "image")):
        for name in registry:
            if name == MASKED_LM:
                continue  # pretraining: nothing to evaluate on the Evaluate page
            sections = get_task(name, modality).evaluate_sections
            assert sections and set(sections) <= set(DRAWERS), name
    assert "confusion" not in get_task("regression").evaluate_sections
    assert {"score_scatter", "error_by_range", "score_errors"} <= set(get_task("regression").evaluate_sections)
    single = get_task().evaluate_sections
    assert get_modality("text").evaluate_sections(single) == single  # text leaves nothing out
    assert get_modality("image").evaluate_sections(single) == tuple(k for k in single if k != "gold")
    assert get_modality("image").thumbnails and not get_modality("text").thumbnails
    assert get_modality("image").evaluate_note and not get_modality("text").evaluate_note
    assert set(MODALITIES) == {"text", "image"}


def test_a_task_says_what_its_labels_are_called():
    assert report.label_unit(None) == "classes" and report.label_unit("multi_label_classification") == "labels"
    assert report.label_unit("regression") == "score" and report.label_unit("no such task") == "classes"
