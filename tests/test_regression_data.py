"""Regression data (issue 28): a column of scores is detected as regression, said in a note and changeable; its splits
are stratified on the score's range; the stats hold the scores' histogram; the Data page draws it."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError
from bmcore.report.data import prepare_command, score_histogram_frame


def test_the_stsb_folder_is_regression_scored_on_its_dev_split(shared_data: Path):
    raw = bdata.load_source(str(shared_data / "stsb"))
    ds = bdata.prepare(raw, "stsb")
    assert ds.problem_type == "regression" and ds.label_names == ["score"] and ds.columns.scores
    assert ds.columns.text == ["sentence1", "sentence2"]
    assert any(n.startswith("regression: column 'score' holds numbers that are not whole") for n in ds.notes)
    dev = pd.read_csv(shared_data / "stsb" / "dev.csv")
    assert ds.splits["test"]["label"].tolist() == pytest.approx(dev["score"].tolist())  # the benchmark's dev split
    assert ds.splits["test"]["label"].dtype == float
    # Validation is carved from train, stratified on the score's quintile: its mean and spread follow train's.
    train, val = ds.splits["train"]["label"], ds.splits["validation"]["label"]
    assert len(train) + len(val) == 5749 and abs(train.mean() - val.mean()) < 0.05
    assert np.quantile(val, [0.2, 0.5, 0.8]) == pytest.approx(np.quantile(train, [0.2, 0.5, 0.8]), abs=0.15)


def test_scores_are_told_from_class_ids(shared_data: Path):
    rows = pd.read_csv(shared_data / "sst2" / "dev.csv").head(200)
    ids = rows.assign(label=np.arange(200) % 150)  # 150 intent ids 0..149: classes (CLINC has 150)
    assert not bdata.detect_columns(ids).scores
    counts = rows.assign(label=np.arange(200) * 7 + 3)  # 200 whole numbers that are no ids: scores
    assert bdata.detect_columns(counts).scores
    stars = rows.assign(label=np.arange(200) % 5 + 1)  # 1-5 stars: classes by default, scores when asked
    assert not bdata.detect_columns(stars).scores
    cols, notes = bdata.choose_columns(stars, scores=True)
    assert cols.scores and cols.problem_type == "regression" and notes[0].startswith("regression (as chosen)")
    with pytest.raises(BmcoreError, match="holds 'positive' in row 1; a score to predict must be a number"):
        bdata.choose_columns(rows, ["text"], "label", scores=True)


def test_a_score_column_read_as_classes_says_how_to_read_it_as_scores(shared_data: Path):
    raw = bdata.load_source(str(shared_data / "stsb"))
    cols, _ = bdata.choose_columns(raw.frames["train"], single_label=True)
    with pytest.raises(BmcoreError, match=r"e\.g\. \d\.\d+\).*read them as scores \(regression\)"):
        bdata.prepare(raw, "x", cols)


def test_score_stats_and_the_data_page_frame(shared_data: Path):
    ds = bdata.prepare(bdata.load_source(str(shared_data / "stsb")), "stsb")
    stats = bdata.compute_stats(ds)
    assert stats["score_summary"]["test"]["count"] == 1500 and stats["score_summary"]["train"]["max"] == 5.0
    frame = score_histogram_frame(stats)
    assert set(frame["split"]) == {"train", "validation", "test"} and frame.groupby("split")["rows"].sum()["test"] == 1500
    assert not any("class" in w for w in bdata.warnings_for(stats))  # no class imbalance or tiny classes for scores
    assert stats["class_weights"] == {}
    assert "--problem-type regression" in prepare_command("x.csv", "x", scores=True)


def test_cli_prepare_takes_a_problem_type(workspace: Path, shared_data: Path, tmp_path: Path, capsys):
    stars = pd.read_csv(shared_data / "sst2" / "dev.csv").head(300)
    stars["label"] = np.arange(300) % 5 + 1
    stars.to_csv(tmp_path / "stars.csv", index=False)
    assert cli_main(["data", "prepare", str(tmp_path / "stars.csv"), "--name", "stars", "--problem-type", "regression"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["problem_type"] == "regression" and out["label_names"] == ["score"]
    assert bdata.load_prepared("stars").columns.scores  # kept when saved and loaded
    assert cli_main(["data", "prepare", str(shared_data / "stsb"), "--name", "stsb-classes",
                     "--problem-type", "single_label_classification"]) == 2
    assert "read them as scores (regression)" in capsys.readouterr().err


def test_the_data_page_reads_an_upload_of_scores_as_regression(shared_data: Path, workspace: Path):
    from conftest import ROOT
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["data_kept"] = {"data_source_kind": "Upload a file"}
    at.run()
    rows = (shared_data / "stsb" / "train.csv").read_text(encoding="utf-8").splitlines(keepends=True)[:401]
    at.file_uploader(key="data_upload").upload("pairs.csv", "".join(rows).encode(), "text/csv").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fp = bdata.source_fingerprint("pairs.csv", "".join(rows).encode())[:8]
    assert at.selectbox(key=f"data_shape_{fp}").value == "score"  # detected, and shown as the choice
    assert any(c.value.startswith("regression: column 'score' holds numbers") for c in at.caption)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Rows"] == "400" and float(shown["Mean score (train)"]) > 1
    assert any("--problem-type" not in c.value and "data prepare" in c.value for c in at.code)  # detected: no flag needed
    at.selectbox(key=f"data_shape_{fp}").set_value("single").run()  # read as classes: one line, no traceback
    assert not at.exception and any("read them as scores (regression)" in e.value for e in at.error)
