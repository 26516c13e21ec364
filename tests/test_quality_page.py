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
from bmcore import evaluation_files as evf
from bmcore import jobs, launch, run_list, runs
from bmcore import quality as bq
from bmcore.config import TrainConfig
from bmcore.errors import BmcoreError
from bmcore.problem_types import MULTI_LABEL
from bmcore.report import quality as rq
from tests.test_quality import NAME, noisy_sms  # noqa: F401 - the fixture

TIMEOUT = 180


def open_data_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    return at


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def action_key(row: pd.Series) -> str:
    return f"quality_action_{NAME}_{rq.decision_key(row)}"


def label_key(row: pd.Series) -> str:
    return f"quality_new_label_{NAME}_{rq.decision_key(row)}"


def scored_page(encoder: str = "tfidf") -> AppTest:
    """The Data page with ``NAME`` scored (in this process: the job is tested above) and its review open."""
    bq.run_quality(NAME, encoder=encoder)
    at = open_data_page()
    at.selectbox(key="quality_dataset").set_value(NAME).run()
    assert not at.exception
    return at


@pytest.mark.slow
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
        at.selectbox(key=f"quality_row_{NAME}_1").set_value(i).run()
        at.radio(key=action_key(flagged.iloc[i])).set_value(action).run()
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
    run = launch.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="sms-v2", max_steps=4,
                                     max_seq_length=32, eval_strategy="steps", eval_steps=4), "on-v2")
    status = runs.wait_for(run, timeout=600)
    assert status["state"] == runs.COMPLETED, runs.log_tail(run)
    assert run_list.summarize_run(run).dataset == "sms-v2"


def test_evaluate_marks_errors_whose_gold_label_looks_wrong(noisy_sms: np.ndarray, tiny_model: Path):  # noqa: F811

    result = bq.run_quality(NAME, encoder="tfidf")
    run = launch.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset=NAME, max_steps=4, max_seq_length=32,
                                     eval_strategy="steps", eval_steps=4), "r1")
    assert runs.wait_for(run, timeout=600)["state"] == runs.COMPLETED, runs.log_tail(run)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert any(s.value == "Model mistakes or label mistakes?" for s in at.subheader)
    saved = evf.load_eval(run / runs.EVALUATION_DIR / "test")
    marked = rq.mark_predictions(saved.predictions, result, "test")
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


def test_each_row_starts_from_its_own_suggestion(noisy_sms: np.ndarray):  # noqa: F811
    """Item 5: a row's New label is its own suggested label, never the previous row's choice."""
    at = scored_page()
    flagged = rq.flags_frame(bq.load_quality(NAME))
    first, second = flagged.iloc[0], flagged.iloc[1]
    at.radio(key=action_key(first)).set_value("relabel").run()
    other = next(n for n in ("ham", "spam") if n != first["suggested"])
    at.selectbox(key=label_key(first)).set_value(other).run()  # the reviewer overrides the suggestion
    button(at, "quality_record").click().run()
    at.selectbox(key=f"quality_row_{NAME}_1").set_value(1).run()
    assert at.selectbox(key=label_key(second)).value == second["suggested"]
    assert at.radio(key=action_key(second)).value == "keep"
    button(at, "quality_record").click().run()
    decisions = at.session_state["quality_decisions"][NAME]
    assert decisions == {rq.decision_key(first): ("relabel", other), rq.decision_key(second): ("keep", "ham" if
                         second["suggested"] == "ham" else "spam")}
    # Back on the first row: its recorded decision, not a default.
    at.selectbox(key=f"quality_row_{NAME}_1").set_value(0).run()
    assert at.radio(key=action_key(first)).value == "relabel" and at.selectbox(key=label_key(first)).value == other


def test_every_flag_is_reviewable_by_page_and_in_bulk(noisy_sms: np.ndarray, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """Item 17: flags beyond the first page are reachable; bulk drop takes the undecided rows shown."""
    import pages._quality as pq

    monkeypatch.setattr(pq, "SHOWN", 10)
    at = scored_page()
    flagged = rq.flags_frame(bq.load_quality(NAME))
    assert len(flagged) > 20
    pages = -(-len(flagged) // 10)
    assert any(f"Flags 1 to 10 of {len(flagged):,}" in c.value and f"{pages} pages" in c.value for c in at.caption)
    at.number_input(key=f"quality_page_{NAME}").set_value(pages).run()
    last = flagged.iloc[(pages - 1) * 10:]
    assert any(f"Flags {(pages - 1) * 10 + 1:,} to {len(flagged):,}" in c.value for c in at.caption)
    assert at.dataframe[1].value["flag"].tolist() == last["flag"].tolist()
    at.selectbox(key=f"quality_row_{NAME}_{last['flag'].iloc[0]}").set_value(len(last) - 1).run()
    at.radio(key=action_key(last.iloc[-1])).set_value("keep").run()
    button(at, "quality_record").click().run()
    button(at, "quality_bulk_drop").click().run()
    decisions = at.session_state["quality_decisions"][NAME]
    assert len(decisions) == len(last) and decisions[rq.decision_key(last.iloc[-1])] == ("keep", last.iloc[-1]["suggested"])
    assert all(decisions[rq.decision_key(r)] == ("drop", "") for _, r in last.iloc[:-1].iterrows())


def test_a_dataset_saved_on_the_page_is_offered_for_review_at_once(workspace: Path, shared_data: Path):
    """Item 20: the label-quality picker lists a dataset saved moments before, without leaving the page."""
    path = workspace.parent / "sms.csv"
    pd.read_csv(shared_data / "sms_spam" / "all.csv").head(300).to_csv(path, index=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["data_source_kind"] = "Local file or folder"
    at.run()
    at.text_input(key="data_path").input(str(path)).run()
    next(t for t in at.text_input if str(t.key).startswith("data_name_")).input("fresh-sms").run()
    at.button(key="data_save").click().run()
    assert not at.exception and any("Saved 'fresh-sms'" in s.value for s in at.success)
    assert "fresh-sms" in at.selectbox(key="quality_dataset").options


def test_image_and_multi_label_datasets_are_not_offered(noisy_sms: np.ndarray):  # noqa: F811
    """Item 15: the page lists only what the check supports; the engine refuses the rest in one line."""
    ds = bdata.load_prepared(NAME)
    multi = bdata.prepare(bdata.RawData("multi", {"all": pd.DataFrame({
        "text": [f"text number {i}" for i in range(60)], "labels": ["a,b", "a", "b"] * 20})}), "multi", seed=0)
    assert multi.problem_type == MULTI_LABEL
    bdata.save_prepared(multi)
    at = open_data_page()
    assert "multi" not in at.selectbox(key="quality_dataset").options and NAME in at.selectbox(key="quality_dataset").options
    assert bq.supports(ds) and not bq.supports(multi)
    with pytest.raises(BmcoreError, match="'multi' is a multi-label classification dataset"):
        bq.score_dataset(multi, encoder="tfidf")
