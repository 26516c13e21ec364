"""The Label quality section through AppTest: start the check as a job, review three flagged rows (relabel one, drop
one, keep one), save a new version, train on it; the Evaluate page marks errors whose gold label looks wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import jobs, runs
from bmcore import quality as bq
from bmcore.config import TrainConfig
from tests.test_quality import NAME, noisy_sms  # noqa: F401 - the fixture

TIMEOUT = 180


def open_data_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    return at


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def test_review_three_rows_save_a_version_and_train_on_it(noisy_sms: np.ndarray, tiny_model: Path):  # noqa: F811
    at = open_data_page()
    at.selectbox(key="quality_dataset").set_value(NAME)
    at.radio(key="quality_encoder").set_value("tfidf").run()
    assert any("has not been checked yet" in i.value for i in at.info)
    button(at, "quality_start").click().run()
    job = jobs.latest("label-quality", NAME)
    assert job is not None and jobs.wait(job, timeout=300)["state"] == runs.COMPLETED
    at.run()
    assert not at.exception
    result = bq.load_quality(NAME)
    assert at.metric[0].value == f"{result.summary['flagged']:,}"
    flagged = result.flagged().reset_index(drop=True)
    original = bdata.load_prepared(NAME)
    # Review three flagged rows: relabel the first to its suggestion, drop the second, keep the third.
    for i, action in enumerate(("relabel", "drop", "keep")):
        at.selectbox(key="quality_row").set_value(i)
        at.radio(key="quality_action").set_value(action).run()
        button(at, "quality_record").click().run()
        assert not at.exception
    assert any(m.value.startswith("**3** decisions: 1 keep, 1 relabel, 1 drop") for m in at.markdown)
    assert at.text_input(key=f"quality_version_name_{NAME}").value == "sms-v2"
    button(at, "quality_save").click().run()
    assert not at.exception and any("sms-v2" in s.value for s in at.success)
    new = bdata.load_prepared("sms-v2")
    assert new.version["relabelled"] == 1 and new.version["dropped"] == 1 and new.version["kept"] == 1
    rows = flagged.iloc[:3]
    split0, row0 = rows.iloc[0]["split"], int(rows.iloc[0]["row"])
    dropped_split = rows.iloc[1]["split"]
    assert len(new.splits[dropped_split]) == len(original.splits[dropped_split]) - 1
    if split0 != dropped_split or row0 < int(rows.iloc[1]["row"]):  # the relabelled row kept its position
        assert new.splits[split0]["label"].iloc[row0] == rows.iloc[0]["suggested"]
    assert bdata.load_prepared(NAME).content_hash() == original.content_hash()
    # Train on the new version: the run records it.
    run = runs.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="sms-v2", max_steps=4,
                                     max_seq_length=32, eval_strategy="steps", eval_steps=4), "on-v2")
    status = runs.wait_for(run, timeout=600)
    assert status["state"] == runs.COMPLETED, runs.log_tail(run)
    assert runs.summarize_run(run).dataset == "sms-v2"


def test_evaluate_marks_errors_whose_gold_label_looks_wrong(noisy_sms: np.ndarray, tiny_model: Path):  # noqa: F811
    from bmcore import evaluate as ev

    result = bq.run_quality(NAME, encoder="tfidf")
    run = runs.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset=NAME, max_steps=4, max_seq_length=32,
                                     eval_strategy="steps", eval_steps=4), "r1")
    assert runs.wait_for(run, timeout=600)["state"] == runs.COMPLETED, runs.log_tail(run)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert any(s.value == "Model mistakes or label mistakes?" for s in at.subheader)
    saved = ev.load_eval(run / runs.EVALUATION_DIR / "test")
    marked = bq.mark_predictions(saved.predictions, result, "test")
    errors = marked[~marked["correct"].astype(bool)]
    n = int(errors["gold_suspect"].sum())
    assert any(f"**{n:,}** of {len(errors):,} errors" in m.value for m in at.markdown)
    assert isinstance(errors, pd.DataFrame)


@pytest.mark.parametrize("hostile", ["**bold** <b>x</b> $x$"])
def test_dataset_names_and_labels_are_shown_as_text(noisy_sms: np.ndarray, hostile: str):  # noqa: F811
    at = open_data_page()
    at.selectbox(key="quality_dataset").set_value(NAME).run()
    assert not at.exception
    assert any("\\'sms\\'" in i.value or "'sms'" in i.value for i in at.info)
