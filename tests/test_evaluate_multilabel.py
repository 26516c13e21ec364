"""The engine behind the multi-label Evaluate page: a label's cell examples, the error filter on label sets, label
sets as text, the per-label table, two runs compared, and the tiles. Real GoEmotions rows with fixed scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import compare, report
from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore.errors import BmcoreError
from bmcore.metrics import multi_label_metrics
from bmcore.report import evaluation as rev
from bmcore.report import examples as rex
from bmcore.tasks import MULTI_LABEL, get_task


@pytest.fixture(scope="module")
def goe(shared_data: Path) -> tuple[pd.DataFrame, list[str]]:
    """The train split of 250 prepared GoEmotions rows (label: JSON lists) and their label names."""
    if not (shared_data / "goemotions").is_dir():
        pytest.skip("../shared/data/goemotions is not present")
    df = pd.read_csv(shared_data / "goemotions" / "train.csv").head(250)
    ds = bdata.prepare(bdata.RawData("goe", {"all": df}), "goe", seed=0)
    assert ds.problem_type == MULTI_LABEL
    return ds.splits["train"].reset_index(drop=True), list(ds.label_names)


def scored(df: pd.DataFrame, names: list[str], seed: int) -> evf.EvalResult:
    """A multi-label evaluation of ``df`` with random scores, through the task (thresholds 0.3 for every label)."""
    task = get_task(MULTI_LABEL)
    logits = np.random.default_rng(seed).normal(-1.0, 1.5, (len(df), len(names)))
    meta = {"thresholds": dict.fromkeys(names, 0.3)}
    table, metrics, _, _ = task.evaluate(df, logits, names, meta, truncated=None, validation=None, fit=False, n_bins=15)
    return evf.EvalResult(metrics, table)


def test_an_evaluation_knows_its_labels_and_kind(goe):
    result = scored(*goe, seed=0)
    assert result.label_names == goe[1] and result.problem_type == MULTI_LABEL
    single = evf.EvalResult({"confusion_matrix": {"labels": ["a", "b"], "matrix": []}}, pd.DataFrame())
    assert single.label_names == ["a", "b"] and single.problem_type == get_task().problem_type


def test_label_cell_examples_are_that_label_s_cell_most_confident_first(goe):
    df, names = goe
    result = scored(df, names, seed=0)
    gold = bdata.label_matrix(result.predictions["gold"], names)
    pred = bdata.label_matrix(result.predictions["pred"], names)
    j = names.index("neutral")
    for cell, (_, in_gold, in_pred) in rex.LABEL_CELLS.items():
        rows = rex.label_cell_examples(result.predictions, "neutral", cell)
        expected = np.flatnonzero((gold[:, j] == in_gold) & (pred[:, j] == in_pred))
        assert sorted(rows.index) == expected.tolist()
        a, b = {"tn": (0, 0), "fp": (0, 1), "fn": (1, 0), "tp": (1, 1)}[cell]
        assert len(rows) == result.metrics["label_confusion"]["matrices"][j][a][b]
        assert rows["score"].tolist() == pytest.approx(result.predictions.loc[rows.index, "prob_neutral"].tolist())
        assert (rows["score"].is_monotonic_decreasing if in_pred else rows["score"].is_monotonic_increasing)
    with pytest.raises(BmcoreError, match="unknown cell"):
        rex.label_cell_examples(result.predictions, "neutral", "diagonal")
    with pytest.raises(BmcoreError, match="no column prob_nope"):
        rex.label_cell_examples(result.predictions, "nope", "fn")


def test_the_error_filter_works_on_label_sets(goe):
    df, names = goe
    table = scored(df, names, seed=0).predictions
    wrong = rex.filter_predictions(table, multi_label=True)
    assert len(wrong) == int((~table["correct"]).sum()) and wrong["loss"].is_monotonic_decreasing
    anger = rex.filter_predictions(table, errors_only=False, gold=["anger", "joy"], multi_label=True)
    sets = bdata.label_sets(table["gold"])
    assert sorted(anger.index) == [i for i, s in enumerate(sets) if {"anger", "joy"} & set(s)]
    predicted = rex.filter_predictions(table, errors_only=False, pred=["anger"], multi_label=True)
    assert all("anger" in s for s in bdata.label_sets(predicted["pred"]))
    assert "errors" in wrong.columns


def test_label_sets_read_as_text():
    assert rex.label_set_text(json.dumps(["anger", "joy"])) == "anger, joy"
    assert rex.label_set_text("[]") == rex.NO_LABELS
    frame = pd.DataFrame({"gold": ['["a"]', "[]"], "pred_b": ['["a", "b"]', '["b"]'], "text": ["x", "y"]})
    shown = rex.shown_sets(frame)
    assert shown["gold"].tolist() == ["a", rex.NO_LABELS] and shown["pred_b"].tolist() == ["a, b", "b"]
    assert frame["gold"].tolist() == ['["a"]', "[]"]  # a copy


def test_the_per_label_table_follows_the_metrics(goe):
    result = scored(*goe, seed=0)
    t = rex.per_label_table(result.metrics)
    assert t["label"].tolist() == goe[1]
    assert t["threshold"].tolist() == [0.3] * len(goe[1])
    assert t["f1"].tolist() == [result.metrics["per_class"][n]["f1"] for n in goe[1]]


def test_two_multi_label_runs_compared(goe):
    df, names = goe
    a, b = scored(df, names, seed=0), scored(df, names, seed=1)
    cmp = compare.compare_multi_label_runs(a.predictions, b.predictions, names)
    for key in ("macro_f1", "micro_f1", "subset_accuracy"):
        assert cmp[f"{key}_a"] == pytest.approx(a.metrics[key]) and cmp[f"{key}_b"] == pytest.approx(b.metrics[key])
        assert cmp[f"{key}_diff"] == pytest.approx(b.metrics[key] - a.metrics[key])
    gold = bdata.label_matrix(df["label"], names)
    for n in names:
        assert cmp["per_class"][n]["f1_diff"] == pytest.approx(b.metrics["per_class"][n]["f1"] - a.metrics["per_class"][n]["f1"])
    right_a, right_b = a.predictions["correct"].to_numpy(), b.predictions["correct"].to_numpy()
    assert cmp["num_right_to_wrong"] == int((right_a & ~right_b).sum())
    assert cmp["num_wrong_to_right"] == int((~right_a & right_b).sum())
    # The same per-label F1 as scikit-learn's report of b.
    ref = multi_label_metrics(gold, bdata.label_matrix(b.predictions["pred"], names), None, names)
    assert cmp["macro_f1_b"] == pytest.approx(ref["macro_f1"])
    with pytest.raises(BmcoreError, match="different splits"):
        compare.compare_multi_label_runs(a.predictions.head(10), b.predictions, names)
    with pytest.raises(BmcoreError, match="not the same split"):
        compare.compare_multi_label_runs(a.predictions, b.predictions.iloc[::-1].reset_index(drop=True), names)


def test_multi_label_tiles(goe):
    df, names = goe
    m = scored(df, names, seed=0).metrics
    m["baseline"] = {k: 0.5 for k in ("micro_f1", "macro_f1", "weighted_f1", "samples_f1", "subset_accuracy")} | {
        "hamming_loss": 0.1}
    rows = rev.multi_label_tiles(m)
    tiles = {t["label"]: t for row in rows for t in row}
    assert [len(r) for r in rows] == [4, 4, 4]
    assert tiles["Samples F1"]["value"] == f"{m['samples_f1']:.3f}"
    assert tiles["Samples F1"]["delta"] == f"{m['samples_f1'] - 0.5:+.3f} vs baseline"
    assert tiles["Hamming loss"]["delta_color"] == "inverse" and tiles["Baseline Hamming loss"]["value"] == "0.100"
    thresholds = {t["label"]: t for t in rev.threshold_tiles(m)}
    flat = m["flat_threshold"]
    assert thresholds["Micro F1, tuned thresholds"]["delta"] == f"{m['micro_f1'] - flat['micro_f1']:+.3f} vs 0.5"
    assert rev.thresholds_caption(m) == "Thresholds saved with the model, from 0.30 to 0.30; the per-label table lists each one."
    assert "No tuned thresholds" in rev.thresholds_caption({"thresholds": {"values": {}, "fitted_on": None}})
    cmp = compare.compare_multi_label_runs(*(scored(df, names, seed=s).predictions for s in (0, 1)), names)
    shown = {t["label"]: t for t in rev.multi_label_compare_tiles(cmp, "other*run")}
    assert shown["Macro F1"]["delta"].endswith("vs other\\*run")  # a run name is Markdown-escaped


def test_a_finished_run_s_tiles_follow_its_problem_type():
    single = {"test": {"accuracy": 0.8, "macro_f1": 0.7}, "validation": {"accuracy": 0.75, "macro_f1": 0.6}}
    assert [t["label"] for t in report.result_tiles(single)][0] == "Test accuracy"
    multi = {"problem_type": MULTI_LABEL, "baseline": {"macro_f1": 0.2},
             "test": {"macro_f1": 0.4, "subset_accuracy": 0.1, "flat_threshold": {"macro_f1": 0.3}},
             "validation": {"macro_f1": 0.45}}
    tiles = {t["label"]: t for t in report.result_tiles(multi)}
    assert tiles["Test macro F1"]["delta"] == "+0.200 vs baseline"
    assert tiles["Test subset accuracy"]["value"] == "0.100" and tiles["Tuned thresholds gain"]["value"] == "+0.100"
    assert "sigmoid per label" in report.problem_type_text(MULTI_LABEL)
    assert report.problem_type_text("single_label_classification") is None
    assert report.label_unit(MULTI_LABEL) == "labels" and report.label_unit(None) == "classes"
