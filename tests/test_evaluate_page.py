"""The Evaluate page through AppTest: a finished run's results, confusion cells, the error browser, new evaluations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore import jobs, launch, runs
from bmcore.config import TrainConfig
from bmcore.tiny_models import make_tiny_bert

TIMEOUT = 180  # the first run imports torch, transformers and scikit-learn on 2 busy CPU cores
AG_LABELS = ["Business", "Sci/Tech", "Sports", "World"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Path:
    """A workspace with sst-small (300/60/60 SST-2 rows), ag-small (4 classes) and a finished tiny run r1.

    Trained once per module through the real CLI; each test copies it (mtimes kept) into its own workspace.
    """
    ws = tmp_path_factory.mktemp("evaluate-ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(420, random_state=0)
        bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), "sst-small",
                                          ratios=(300 / 420, 60 / 420, 60 / 420), seed=0))
        ag = pd.read_csv(shared_data / "ag_news" / "test.csv").groupby("label").head(40)
        bdata.save_prepared(bdata.prepare(bdata.RawData("ag-sample", {"all": ag}), "ag-small", seed=0))
        env = {**os.environ, "BMCORE_WORKSPACE": str(ws)}
        out = subprocess.run([sys.executable, "-m", "bmcore", "train", "--data", "sst-small", "--model", str(tiny_model),
                              "--out", str(ws / "runs" / "r1"), "--max-steps", "10", "--eval-strategy", "steps",
                              "--eval-steps", "5", "--max-seq-length", "64"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
    assert (ws / "runs" / "r1" / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE).is_file()
    return ws


@pytest.fixture
def ws(finished: Path, workspace: Path) -> Path:
    shutil.copytree(finished, workspace, dirs_exist_ok=True)  # copy2 keeps mtimes, so the saved evaluation stays fresh
    return workspace


def open_page(run: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    if run is not None:
        at.selectbox(key="evaluate_run").select(run).run()
    return at


def finish_job(at: AppTest, kind: str, key: str | None = None) -> None:
    """The page started a background job: it shows its progress, not a result; wait for the job, then redraw."""
    found = jobs.list_jobs(kind, key)
    assert found, f"no {kind} job was started"
    assert any(k.endswith("_job_cancel") for k in (b.key for b in at.button))  # live progress with Cancel
    assert jobs.wait(found[0], timeout=TIMEOUT)["state"] == runs.COMPLETED, runs.log_tail(found[0])
    at.run()
    assert not at.exception and not at.error


def metric_values(at: AppTest) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def table(at: AppTest, key: str) -> pd.DataFrame:
    """A selectable table by key."""
    found = [d for d in at.dataframe if getattr(d, "key", None) == key]
    assert found, f"no table {key}"
    return found[0].value


@pytest.mark.slow
def test_finished_run_opens_with_metrics_cells_errors_and_downloads(ws: Path):
    at = open_page()
    assert not at.exception and not at.error
    saved = json.loads((ws / "runs" / "r1" / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE).read_text())
    values = metric_values(at)
    assert values["Accuracy"][0] == f"{saved['accuracy']:.3f}"
    assert values["Baseline accuracy"][0] == f"{saved['baseline']['accuracy']:.3f}"
    assert values["Macro F1"][0] == f"{saved['macro_f1']:.3f}"
    assert values["Accuracy"][1].endswith("vs baseline")
    assert "ECE, calibrated" in values
    # 60 validation rows: no temperature was saved, and the reliability section says why.
    assert any(c.value == "No temperature was saved: the validation split has 60 examples; at least 100 are needed to "
               "trust a fitted temperature. The probabilities are the model's own." for c in at.caption)
    assert not any(b.key == "evaluate_start" for b in at.button)  # opened directly, nothing to score
    assert any("python -m bmcore evaluate --model" in c.value and "--split test" in c.value for c in at.code)
    assert len(at.get("plotly_chart")) >= 5  # confusion, per class, ROC, PR, reliability
    assert {"evaluate_download_csv", "evaluate_download_json"} <= {b.key for b in at.get("download_button")}

    # A confusion cell through the fallback selectboxes: its examples, and only those.
    cm = saved["confusion_matrix"]
    i, j = max(((a, b) for a in range(2) for b in range(2)), key=lambda ab: cm["matrix"][ab[0]][ab[1]])
    gold, pred = cm["labels"][i], cm["labels"][j]
    at.selectbox(key="evaluate_cell_gold").select(gold).run()
    at.selectbox(key="evaluate_cell_pred").select(pred).run()
    assert not at.exception
    cell = table(at, "evaluate_cell_table")
    assert len(cell) == cm["matrix"][i][j] > 0
    assert (cell["gold"] == gold).all() and (cell["pred"] == pred).all()
    assert cell["confidence"].is_monotonic_decreasing

    # The error browser: misclassified by default, highest loss first; then all examples filtered by gold label.
    errors = table(at, "evaluate_errors_table")
    n_wrong = saved["n"] - sum(cm["matrix"][k][k] for k in range(2))
    assert len(errors) == n_wrong and (errors["gold"] != errors["pred"]).all()
    assert errors["loss"].is_monotonic_decreasing
    at.radio(key="evaluate_err_show").set_value("All examples").run()
    at.selectbox(key="evaluate_err_sort").select("least confident first").run()
    at.multiselect(key="evaluate_err_gold").select(gold).run()
    rows = table(at, "evaluate_errors_table")
    assert len(rows) == sum(cm["matrix"][i]) and (rows["gold"] == gold).all()
    assert rows["confidence"].is_monotonic_increasing
    assert not at.exception and not at.error


def test_the_chosen_cell_and_normalisation_stay_when_you_leave_and_come_back(ws: Path):
    at = open_page()
    cm = json.loads((ws / "runs" / "r1" / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE).read_text())["confusion_matrix"]
    i, j = max(((a, b) for a in range(2) for b in range(2)), key=lambda ab: cm["matrix"][ab[0]][ab[1]])
    gold, pred = cm["labels"][i], cm["labels"][j]
    at.radio(key="evaluate_cm_norm").set_value("Row-normalised").run()
    at.selectbox(key="evaluate_cell_gold").select(gold).run()
    at.selectbox(key="evaluate_cell_pred").select(pred).run()
    cell = table(at, "evaluate_cell_table")
    for page in ("pages/playground.py", "pages/data.py"):  # away, through two other pages, then back
        at.switch_page(page).run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception and not at.error
    assert at.radio(key="evaluate_cm_norm").value == "Row-normalised"
    assert (at.selectbox(key="evaluate_cell_gold").value, at.selectbox(key="evaluate_cell_pred").value) == (gold, pred)
    assert table(at, "evaluate_cell_table").equals(cell)  # the cell's examples are listed again
    assert at.selectbox(key="evaluate_run").value == "r1" and at.selectbox(key="evaluate_split").value == "test"


def test_open_an_example_in_the_playground(ws: Path):
    at = open_page()
    at.radio(key="evaluate_err_show").set_value("All examples").run()
    first = table(at, "evaluate_errors_table").iloc[0]["text"]
    at.button(key="evaluate_errors_open").click().run()
    # The hand-over contract: the Playground takes the text into its input box and the model into its picker.
    # (Whether the Playground then renders without error is tested in test_playground_page.py.)
    assert at.title[0].value == "Playground"
    assert at.session_state["playground_input"] == first


def test_a_confusion_cell_example_opens_in_the_playground_with_its_true_label(ws: Path):
    at = open_page()
    cm = json.loads((ws / "runs" / "r1" / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE).read_text())["confusion_matrix"]
    i, j = max(((a, b) for a in range(2) for b in range(2) if a != b), key=lambda ab: cm["matrix"][ab[0]][ab[1]])
    if not cm["matrix"][i][j]:
        i, j = 0, 0  # a model without mistakes: a diagonal cell
    gold, pred = cm["labels"][i], cm["labels"][j]
    at.selectbox(key="evaluate_cell_gold").select(gold).run()
    at.selectbox(key="evaluate_cell_pred").select(pred).run()
    cell = table(at, "evaluate_cell_table")
    assert at.selectbox(key="evaluate_cell_open_row").value == 0  # the most confident: the Playground predicts the same
    at.button(key="evaluate_cell_open").click().run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Playground"
    assert at.session_state["playground_input"] == cell.iloc[0]["text"]
    shown = {m.label: (m.value, m.delta) for m in at.metric}
    assert shown["Prediction"][0] == pred
    assert shown["True label"] == (gold, "right" if gold == pred else "wrong")
    at.text_area(key="playground_input").input("an edited text, whose label nobody knows").run()
    assert "True label" not in {m.label for m in at.metric}


def test_another_split_is_scored_once_then_cached(ws: Path):
    at = open_page()
    at.selectbox(key="evaluate_split").select("validation").run()
    assert any("not been scored" in i.value for i in at.info)
    at.button(key="evaluate_start").click().run()
    assert not at.exception and not at.error
    out = ws / "runs" / "r1" / runs.EVALUATION_DIR / "sst-small-validation"
    finish_job(at, "evaluate", str(out))
    assert json.loads((out / evf.EVAL_METRICS_FILE).read_text())["n"] == 60
    assert "Accuracy" in metric_values(at)
    at.run()
    assert not any(b.key == "evaluate_start" for b in at.button)  # cached on disk: opens at once


@pytest.mark.slow
def test_four_class_local_model_and_label_mismatch(ws: Path, tmp_path: Path):
    model = make_tiny_bert(tmp_path / "tiny-ag", AG_LABELS)
    at = open_page()
    at.radio(key="evaluate_source").set_value("Local model folder").run()
    at.text_input(key="evaluate_model_path").input(str(model)).run()
    at.selectbox(key="evaluate_dataset").select("ag-small").run()
    at.button(key="evaluate_start").click().run()
    assert not at.exception and not at.error
    finish_job(at, "evaluate")
    assert list((ws / evf.EVALUATIONS_DIR).iterdir())  # cached under <workspace>/evaluations/
    at.selectbox(key="evaluate_cell_gold").select("World").run()
    at.selectbox(key="evaluate_cell_pred").select("Sports").run()
    assert any("examples of **World** predicted as **Sports**" in m.value for m in at.markdown)
    # The tiny run's model knows negative/positive only: refused with the engine's one-line message.
    at.text_input(key="evaluate_model_path").input(str(ws / "runs" / "r1" / "model")).run()
    assert not at.exception
    assert len(at.error) == 1 and "do not match dataset labels" in at.error[0].value


def test_compare_with_another_run(ws: Path):
    # r2 is r1 with one prediction flipped: the comparison must find exactly that example.
    shutil.copytree(ws / "runs" / "r1", ws / "runs" / "r2")
    path = ws / "runs" / "r2" / runs.EVALUATION_DIR / "test" / evf.RAW_PREDICTIONS_FILE  # what the page reads
    preds = pd.read_parquet(path)
    preds.loc[0, "pred"] = "negative" if preds.loc[0, "pred"] == "positive" else "positive"
    preds.loc[0, "correct"] = preds.loc[0, "pred"] == preds.loc[0, "gold"]
    preds.to_parquet(path, index=False)
    at = open_page("r1")
    at.selectbox(key="evaluate_compare_run").select("r2").run()
    assert not at.exception and not at.error
    values = metric_values(at)
    assert int(values["Now wrong (were right)"][0]) + int(values["Now right (were wrong)"][0]) == 1
    # Each run's base model is named, so "from base" vs "from domain-adapted" reads at a glance.
    assert any(c.value.startswith("This run was fine-tuned from `tiny-bert`; r2 from `tiny-bert`") for c in at.caption)
    charts = [c.key for c in at.get("plotly_chart")]
    assert "evaluate_compare_f1_chart" in charts and "evaluate_compare_cm_chart" in charts


def test_scoring_waits_for_training_survives_a_reload_and_cancels(ws: Path, tiny_model: Path):
    # A real training run holds the device: scoring started from the page queues behind it.
    busy = launch.start_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="sst-small", max_steps=100_000,
                                      max_seq_length=32), "busy")
    try:
        runs.wait_for(busy, (runs.RUNNING,), timeout=TIMEOUT)
        at = open_page("r1")
        at.selectbox(key="evaluate_split").select("validation").run()
        at.button(key="evaluate_start").click().run()
        assert not at.exception and not at.error
        assert any("queued" in i.value for i in at.info)
        job = jobs.latest("evaluate", str(ws / "runs" / "r1" / runs.EVALUATION_DIR / "sst-small-validation"))
        assert jobs.read(job)["state"] == runs.QUEUED

        again = open_page("r1")  # a reload (a new session): the job is found on disk, still queued
        again.selectbox(key="evaluate_split").select("validation").run()
        assert any("queued" in i.value for i in again.info)
        assert not any(b.key == "evaluate_start" for b in again.button)
        again.button(key="evaluate_job_cancel").click().run()
        assert not again.exception
        assert runs.wait_for(job, timeout=60)["state"] == runs.CANCELLED
        again.run()
        assert any(c.value == "The last scoring was cancelled." for c in again.caption)
        assert any(b.key == "evaluate_start" for b in again.button)  # nothing was written: it can be started again
        assert not (job.parent.parent / "runs" / "r1" / runs.EVALUATION_DIR / "sst-small-validation").exists()
    finally:
        runs.request_stop(busy)
    runs.wait_for(busy, timeout=TIMEOUT)
