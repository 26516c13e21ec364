"""The Playground page on a multi-label model (AppTest): every label against its threshold, the predicted set,
explanations of a picked label, batch mode, and the helpers behind them in
bmcore.report.playground and bmcore.batch_files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _multilabel import DATASET, RUN, copy_workspace
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import batch_files
from bmcore import data as bdata
from bmcore.display import md
from bmcore.model_meta import read_model_meta
from bmcore.problem_types import MULTI_LABEL
from bmcore.report import playground as view
from bmcore.tasks import get_task

TIMEOUT = 180  # the first run imports torch and transformers on 2 busy CPU cores
PAGE = "pages/playground.py"
TEXT = "Thank you so much, this is <b>wonderful</b> news!"


@pytest.fixture
def model_dir(multilabel_workspace: Path, workspace: Path) -> Path:
    return (copy_workspace(multilabel_workspace, workspace) / "model").resolve()


def values(array: list | dict) -> list:
    """A plotly JSON array as a list: plain, or typed and base64-encoded (``{"bdata": ..., "dtype": ...}``)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def open_playground() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def test_every_label_against_its_threshold_the_set_and_a_picked_label_explained(model_dir: Path) -> None:
    at = open_playground()
    picker = at.selectbox(key="playground_model_choice")
    assert picker.value == str(model_dir)
    assert picker.format_func(picker.value).startswith(f"{RUN} · {DATASET} · test subset accuracy ")
    at.text_area(key="playground_input").input(TEXT).run()
    assert not at.exception and not at.error

    thresholds = read_model_meta(model_dir)["thresholds"]
    table = at.dataframe[0].value  # the "As a table" expander: one row per label
    assert sorted(table["label"]) == sorted(thresholds)
    assert dict(zip(table["label"], table["threshold"], strict=True)) == pytest.approx(thresholds)
    assert table["probability"].is_monotonic_decreasing and table["probability"].between(0, 1).all()
    decided = table["probability"] >= table["threshold"]
    assert (table["predicted"] == decided.map({True: "yes", False: "no"})).all()
    predicted = [n for n in thresholds if n in set(table.loc[decided, "label"])]  # in the model's label order
    metrics = {m.label: m for m in at.metric}
    assert metrics["Labels predicted"].value == f"{len(predicted)} of 28"
    assert metrics["Top label"].value == md(table["label"].iloc[0])
    assert metrics["Top label"].delta == f"{table['probability'].iloc[0]:.1%}"
    shown = "**Predicted labels:** " + (md(", ".join(predicted)) if predicted else "none (no label reaches its threshold)")
    assert shown in [m.value for m in at.markdown]
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # thresholds, one head, rollout, all heads, [CLS]
    figure = json.loads(charts[0].proto.spec)
    bars, marks = figure["data"]
    assert bars["type"] == "bar" and marks["type"] == "scatter"
    assert values(marks["x"]) == table["threshold"].tolist() and values(bars["x"]) == table["probability"].tolist()
    assert marks["y"] == bars["y"] == table["label"].tolist()  # plain names here: nothing to escape
    assert any("threshold, tuned on the validation split" in c.value for c in at.caption)  # the learners' sentence

    # Attributions explain the top predicted label by default, then the label the user picks.
    picker = at.selectbox(key="playground_target")
    assert picker.format_func(picker.value) == "the top predicted label"
    top = get_task(MULTI_LABEL).explain_target({"labels": predicted,
                                                "scores": dict(zip(table["label"], table["probability"], strict=True))})
    assert f"“{top}”" in at.get("html")[0].value
    other = next(n for n in table["label"] if n != top)
    picker.select(other).run()
    assert not at.exception and f"“{other}”" in at.get("html")[0].value
    assert any(c.value.startswith(f"Attributions of P({md(other)})") for c in at.caption)
    at.slider(key="playground_layer_2").set_value(1).run()
    assert not at.exception and at.selectbox(key="playground_target").value == other


def test_an_example_shows_its_true_label_set(model_dir: Path) -> None:
    at = open_playground()
    buttons = [b for b in at.button if b.key.startswith("playground_example_")]
    assert 0 < len(buttons) <= 28  # one example per label at most, none repeated
    buttons[0].click().run()
    assert not at.exception
    text = at.text_area(key="playground_input").value
    test = bdata.load_prepared(DATASET).splits["test"]
    gold = bdata.decode_label_set(test.loc[test["text"] == text, "label"].iloc[0])
    true = next(m for m in at.metric if m.label == "True labels")
    assert true.value == md(", ".join(gold))
    table = at.dataframe[0].value
    predicted = set(table.loc[table["predicted"] == "yes", "label"])
    assert true.delta == ("right" if predicted == set(gold) else "wrong")
    assert buttons[0].label.startswith(md(", ".join(gold)) + ":")  # the set as names, not as a JSON list


def test_batch_of_a_labelled_multi_label_file(model_dir: Path, shared_data: Path) -> None:
    from sklearn.metrics import f1_score

    at = open_playground()
    at.text_area(key="playground_batch_lines").input("so happy for you\nthis is terrible\n=1+1").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["text"].tolist() == ["so happy for you", "this is terrible", "=1+1"]
    sets = [json.loads(v) for v in table["labels"]]
    thresholds = read_model_meta(model_dir)["thresholds"]
    for row, labels in zip(table.to_dict("records"), sets, strict=True):
        assert labels == [n for n in thresholds if row[f"p({n})"] >= thresholds[n]]

    dev = pd.read_csv(shared_data / "goemotions" / "dev.csv", dtype=str, keep_default_na=False).head(30)
    at.radio(key="playground_batch_source").set_value("Upload a file").run()
    at.file_uploader(key="playground_batch_file").upload("dev.csv", dev.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["gold"].tolist() == dev["labels"].tolist()
    names = list(thresholds)
    gold = [[int(n in g.split(",")) for n in names] for g in dev["labels"]]
    pred = [[int(n in json.loads(v)) for n in names] for v in table["labels"]]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Labelled rows"] == "30"
    assert shown["Subset accuracy"] == f"{sum(g == p for g, p in zip(gold, pred, strict=True)) / 30:.3f}"
    assert shown["Micro F1"] == f"{f1_score(gold, pred, average='micro', zero_division=0):.3f}"
    assert shown["Macro F1"] == f"{f1_score(gold, pred, average='macro', zero_division=0):.3f}"
    assert any(c.value.startswith("30 texts · predicted labels: ") for c in at.caption)


def test_helpers_top_predicted_threshold_frame_and_gold_sets() -> None:
    scores = {"joy": 0.7, "anger": 0.2, "love": 0.6}
    top = get_task(MULTI_LABEL).explain_target  # what attributions explain by default: the top predicted label
    assert top({"labels": ["love", "joy"], "scores": scores}) == "joy"
    assert top({"labels": [], "scores": scores}) == "joy"  # nothing predicted: the top-scoring label
    assert get_task().explain_target({"label": "anger", "scores": scores}) == "anger"  # single-label: the prediction
    frame = view.threshold_frame(scores, [0.5, 0.1, 0.65], ["joy", "anger"])
    assert frame["label"].tolist() == ["joy", "love", "anger"]
    assert frame["threshold"].tolist() == [0.5, 0.65, 0.1] and frame["predicted"].tolist() == ["yes", "no", "yes"]
    assert batch_files.gold_label_set('["a", "b"]') == ["a", "b"]
    assert batch_files.gold_label_set("a, b") == ["a", "b"] and batch_files.gold_label_set("a|b") == ["a", "b"]
    assert batch_files.gold_label_set("neutral") == ["neutral"]
    records = [{"label": "joy", "labels": ["joy", "love"], "scores": {}}, {"label": "joy", "labels": ["joy"], "scores": {}}]
    assert view.batch_label_counts(records) == {"joy": 2, "love": 1}
