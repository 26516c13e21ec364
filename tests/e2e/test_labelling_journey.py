"""The labelling loop in a real browser (issue 30): upload 120 AG News texts without their labels, name the classes,
label a first batch with the keyboard (digit keys), retrain (the tiny BERT typed into the model box), see the first
point of the learning curve, label the batch the model picked with the keyboard, retrain, see the curve move, save as
a dataset, open Train on it and train. Screenshots in test-artifacts/e2e-labelling/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from _server import fill, idle, open_app, set_up_tiny_run, shot, train_to_the_end, wait_job_result
from conftest import ROOT

from bmcore import run_list, runs
from bmcore.labelling.project import labels
from bmcore.labelling.step import read_curve, read_picks

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "e2e-labelling"
CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
PROJECT = "news"


def plain(text: str) -> str:
    return " ".join(text.split())


def shown(page) -> str:
    return plain(page.locator('[data-testid="stText"]').first.inner_text())


def blur(page) -> None:
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # keys go to the page


def wait_labels(n: int, text: str) -> None:
    deadline = time.time() + 60
    while len(labels(PROJECT)) != n:
        assert time.time() < deadline, f"{len(labels(PROJECT))} labels, not {n}, after {text[:60]!r}"
        time.sleep(0.2)


def label_with_keys(page, truth: dict[str, str], n: int) -> list[str]:
    """Label the next ``n`` texts shown with their AG News class, pressing its digit key; each label is on disk before
    the next text is read. Returns the texts labelled."""
    done = []
    for _ in range(n):
        blur(page)
        text, before = shown(page), len(labels(PROJECT))
        page.keyboard.press(str(CLASSES.index(truth[text]) + 1))
        wait_labels(before + 1, text)
        idle(page)
        assert shown(page) != text
        done.append(text)
    return done


def retrain(page, workspace: Path, given: int) -> None:
    page.get_by_role("button", name="Retrain and pick the next batch").click()
    wait_job_result(page, f"texts picked at {given} labels", workspace)
    idle(page)


def test_labelling_journey(workspace: Path, shared_data: Path, tiny_model: Path) -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    news = pd.read_csv(shared_data / "ag_news" / "test.csv").groupby("label").head(30).sample(frac=1, random_state=0)
    path = workspace.parent / "news.csv"
    news[["text"]].to_csv(path, index=False)  # the labels dropped: the user labels them
    truth = {plain(t): lab for t, lab in zip(news["text"], news["label"], strict=True)}

    with open_app(workspace) as page:
        page.get_by_text("Label texts", exact=True).click()
        idle(page)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
        page.get_by_text("120 texts, 0 with a label").first.wait_for()
        idle(page)
        fill(page, "Classes, separated by commas (keys 1 to 9 label them in this order)", ", ".join(CLASSES))
        fill(page, "Project name", PROJECT)
        shot(page, ARTIFACTS, "1-new-project")
        page.get_by_role("button", name="Start labelling").click()
        idle(page)
        page.get_by_text("No model yet: texts come in a random order").first.wait_for()
        fill(page, "Model", str(tiny_model))
        fill(page, "Training steps, at most", "4")
        fill(page, "Batch size", "8")

        done = label_with_keys(page, truth, 16)
        blur(page)
        page.keyboard.press("u")  # take the 16th label back: its text comes up again
        wait_labels(15, done[-1])
        idle(page)
        assert shown(page) == done[-1]
        label_with_keys(page, truth, 1)
        shot(page, ARTIFACTS, "2-first-batch-by-keyboard")
        retrain(page, workspace, 16)
        [first] = read_curve(PROJECT)
        assert first["accuracy"] is not None and first["labels"] == 16
        assert page.locator(".js-plotly-plot").count() == 1
        picked = read_picks(PROJECT)["rows"]
        page.get_by_text("The model suggests").first.wait_for()
        shot(page, ARTIFACTS, "3-first-retrain")

        label_with_keys(page, truth, 8)
        assert set(picked) <= set(labels(PROJECT))  # the texts labelled were the ones the model picked
        retrain(page, workspace, 24)
        curve = read_curve(PROJECT)
        assert [p["labels"] for p in curve] == [16, 24] and all(p["accuracy"] is not None for p in curve)
        shot(page, ARTIFACTS, "4-second-retrain-curve-moved")
        page.get_by_text("A batch in a table", exact=True).click()
        idle(page)
        page.get_by_role("button", name="Save 0 labels").wait_for()
        shot(page, ARTIFACTS, "5-the-batch-as-a-table")
        page.get_by_text("One at a time", exact=True).click()
        idle(page)

        page.get_by_role("button", name="Save as a dataset").click()
        page.get_by_text("Saved 24 labelled texts as the dataset 'news'").first.wait_for()
        idle(page)
        shot(page, ARTIFACTS, "6-saved-as-a-dataset")
        page.get_by_role("button", name="Train on it").click()
        idle(page)
        page.get_by_role("heading", name="Train", exact=True).first.wait_for()
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Prepared dataset").first
        assert box.locator("input").input_value() == PROJECT
        set_up_tiny_run(page, PROJECT, tiny_model, 32, 4)
        run_dir = train_to_the_end(page, workspace)
        page.get_by_text("The best model is a standard Hugging Face folder").first.wait_for()
        page.get_by_role("button", name="Start training").wait_for()
        idle(page)
        shot(page, ARTIFACTS, "7-trained-on-the-labels")
    (run,) = run_list.list_runs()
    assert run.dataset == PROJECT and run.state == runs.COMPLETED and run_dir.name == run.name
