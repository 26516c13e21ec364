"""The Data page's "Label texts" section through AppTest (issue 30): start a project from an upload of unlabelled AG
News texts, label with the class buttons (each label on disk at once, and there after a server restart), undo and
skip, retrain (the real job, tiny model), label a batch in the table, save as a dataset and open Train on it; bad
input is one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import jobs, runs
from bmcore.data import is_prepared, load_prepared, source_fingerprint
from bmcore.display import md
from bmcore.labelling.project import create_project, give_labels, labels, load_project
from bmcore.labelling.simulate import simulate
from bmcore.labelling.step import STEP_JOB, held_out, read_curve, read_picks
from bmcore.report import labelling as rl

TIMEOUT = 180
CLASSES = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.fixture
def news(shared_data: Path) -> pd.DataFrame:
    """120 AG News texts (30 a class) in a fixed shuffled order, with their labels (the upload drops them)."""
    df = pd.read_csv(shared_data / "ag_news" / "test.csv").groupby("label").head(30)
    return df.sample(frac=1, random_state=0).reset_index(drop=True)


def upload_bytes(news: pd.DataFrame) -> bytes:
    return news[["text"]].to_csv(index=False).encode()


def open_labelling() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/data.py").run()
    at.radio(key="data_mode").set_value("Label texts").run()
    assert not at.exception
    return at


def new_project(at: AppTest, data: bytes, classes: str, name: str = "news", file: str = "news.csv") -> AppTest:
    at.selectbox(key="label_project").set_value("(new project)").run()
    at.file_uploader(key="label_upload").upload(file, data, "text/csv").run()
    at.text_input(key="label_classes").input(classes)
    at.text_input(key=f"label_name_{source_fingerprint(file, data)[:8]}").input(name).run()
    at.button(key="label_create").click().run()
    assert not at.exception
    return at


def shown_text(at: AppTest) -> str:
    return at.text[0].value


def truth(news: pd.DataFrame, text: str) -> str:
    return news.loc[news["text"] == text, "label"].iloc[0]


def test_start_a_project_label_with_the_buttons_and_keep_the_labels_across_a_restart(news):
    at = new_project(open_labelling(), upload_bytes(news), "World, Sports, Business, Sci/Tech")
    assert at.selectbox(key="label_project").value == "news" and load_project("news").rows == 120
    assert [b.label for b in at.button if str(b.key).startswith("label_class_")] == [md(c) for c in CLASSES]
    project = load_project("news")
    first = rl.next_batch(project, None, {})["rows"]
    assert shown_text(at) == project.texts.at[first[0], "text"]
    assert any("No model yet" in c.value for c in at.caption)
    # Label the first text with its own class, the second with another: each is on disk before the next run draws.
    gold = truth(news, shown_text(at))
    at.button(key=f"label_class_{CLASSES.index(gold)}").click().run()
    assert labels("news") == {first[0]: gold}
    assert shown_text(at) == project.texts.at[first[1], "text"]
    at.button(key="label_class_0").click().run()
    assert labels("news") == {first[0]: gold, first[1]: "World"}
    at.button(key="label_undo").click().run()  # the second label taken back: its text comes up again
    assert labels("news") == {first[0]: gold} and shown_text(at) == project.texts.at[first[1], "text"]
    at.button(key="label_skip").click().run()
    assert shown_text(at) == project.texts.at[first[2], "text"] and len(labels("news")) == 1
    assert at.metric[0].value == "1 of 120"
    # A server restart: a fresh session opens the newest project with its label.
    again = open_labelling()
    assert again.selectbox(key="label_project").value == "news" and again.metric[0].value == "1 of 120"
    assert shown_text(again) == project.texts.at[first[1], "text"]  # the skip was this session's alone


def test_retrain_label_a_batch_in_the_table_save_and_train(news, tiny_model):
    create_project("news", "news.csv", classes=CLASSES, data=upload_bytes(news))
    project = load_project("news")
    rows = rl.next_batch(project, None, {}, size=24)["rows"]
    assert held_out(rows).any()  # some labels validate: the step measures an accuracy
    give_labels("news", {r: truth(news, project.texts.at[r, "text"]) for r in rows})
    at = open_labelling()
    at.text_input(key="label_model").input(str(tiny_model))
    at.number_input(key="label_max_steps").set_value(2)
    at.number_input(key="label_batch").set_value(6).run()
    assert any(f"--model {tiny_model} --max-steps 2" in c.value and "--batch 6" in c.value for c in at.code)
    assert at.checkbox(key="label_names").value and not any("--no-label-names" in c.value for c in at.code)
    at.checkbox(key="label_names").uncheck().run()  # the texts alone: the command says so, the job does so
    assert any(c.value.endswith("--max-steps 2 --no-label-names") for c in at.code)
    at.button(key="label_step_start").click().run()
    job = jobs.latest(STEP_JOB, "news")
    assert job is not None and jobs.wait(job, timeout=300)["state"] == runs.COMPLETED, jobs.read(job)
    at.run()
    assert not at.exception
    picks, [point] = read_picks("news"), read_curve("news")
    assert len(picks["rows"]) == 6 and point["labels"] == 24 and point["accuracy"] is not None
    assert point["label_names"] is False
    assert any("6 of the 6 texts picked at 24 labels" in c.value for c in at.caption)
    assert shown_text(at) == project.texts.at[picks["rows"][0], "text"]
    assert any(c.value.startswith("The model suggests") for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the learning curve's first point
    # The batch in the table: label three rows, save them at once.
    at.radio(key="label_mode").set_value("A batch in a table").run()
    editor = at.data_editor[0]
    assert editor.value["row"].tolist() == picks["rows"]
    edits = {i: {"label": truth(news, project.texts.at[picks["rows"][i], "text"])} for i in range(3)}
    at.session_state[f"label_table_news_{len(labels('news'))}"] = {"edited_rows": edits, "added_rows": [],
                                                                   "deleted_rows": []}
    at.run()
    at.button(key="label_table_save").click().run()
    assert not at.exception and len(labels("news")) == 27
    assert at.data_editor[0].value["row"].tolist() == picks["rows"][3:]
    # Save as a dataset, then Train opens on it.
    at.button(key="label_export").click().run()
    assert is_prepared("news") and sum(len(df) for df in load_prepared("news").splits.values()) == 27
    assert any("Saved 27 labelled texts as the dataset" in s.value for s in at.success)
    at.button(key="label_train").click().run()
    assert not at.exception and at.selectbox(key="train_dataset").value == "news"


@pytest.mark.parametrize("classes, name, says", [
    ("", "news", "name the classes"),
    ("World, Sports, World", "news", "'World' is named twice"),
    ("World", "news", "between 2"),
    ("World, Sports", "bad name", "invalid project name"),
])
def test_bad_input_is_one_line(news, classes, name, says):
    at = new_project(open_labelling(), upload_bytes(news), classes, name)
    assert len(at.error) == 1 and says in at.error[0].value, [e.value for e in at.error]
    assert at.selectbox(key="label_project").value == "(new project)"


def test_the_same_column_for_texts_and_labels_and_a_taken_name_are_refused(news):
    data = news.to_csv(index=False).encode()
    at = open_labelling()
    at.file_uploader(key="label_upload").upload("news.csv", data, "text/csv").run()
    key = source_fingerprint("news.csv", data)[:8]
    at.selectbox(key=f"label_text_column_{key}").set_value("label")
    at.selectbox(key=f"label_label_column_{key}").set_value("label").run()
    assert len(at.error) == 1 and "cannot hold both" in at.error[0].value
    at.selectbox(key=f"label_text_column_{key}").set_value("text").run()
    assert not at.error and any("with a label" in c.value for c in at.caption)
    create_project("news", "news.csv", classes=CLASSES, data=upload_bytes(news))
    at = new_project(open_labelling(), data, "", "news")
    assert len(at.error) == 1 and "already exists" in at.error[0].value


def test_a_finished_simulation_shows_its_curves(tiny_model, shared_data):
    from bmcore import data as bdata

    df = pd.read_csv(shared_data / "ag_news" / "test.csv").head(300)
    bdata.save_prepared(bdata.prepare(bdata.RawData("ag", {"all": df}), "ag300"))
    simulate("ag300", budget=40, step=20, seeds=1, pool=150, eval_rows=60, max_steps=2, model=str(tiny_model))
    at = open_labelling()
    assert at.selectbox(key="label_sim_dataset").value == "ag300"
    assert any(c.value.startswith("python -m bmcore label simulate --data ag300 --budget 200") for c in at.code)
    assert len(at.get("plotly_chart")) == 1 and not at.exception
    summary = [d for d in at.dataframe if "uncertainty_at_least_random" in d.value.columns]
    assert summary and summary[0].value["labels"].tolist() == [20, 40]
    assert any(c.value.startswith("1 seed, a pool of 150 train rows") and "learning from the class names" in c.value
               and ", 2 training steps," in c.value for c in at.caption)  # --max-steps 2: below the rule's floor
