"""The labelling loop (issue 30): projects whose labels are saved as given, picking what to label next, the loop's
step, the export to a prepared dataset, the simulation, the CLI and what the page draws."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from bmcore import jobs
from bmcore.cli import main
from bmcore.data.storage import is_prepared, load_prepared
from bmcore.errors import BmcoreError
from bmcore.labelling.export import export_dataset
from bmcore.labelling.picking import density, margins, pick_diverse, pick_random, pick_uncertain
from bmcore.labelling.project import (
    LABELS_FILE,
    clear_label,
    counts,
    create_project,
    give_label,
    give_labels,
    label_history,
    labels,
    list_projects,
    load_project,
)
from bmcore.labelling.simulate import read_simulation, simulate
from bmcore.labelling.step import CURVE_FILE, PICKS_FILE, STEP_JOB, held_out, read_curve, read_picks, run_step
from bmcore.report.labelling import (
    batch_frame,
    counts_frame,
    curve_figure,
    curve_frame,
    label_commands,
    simulate_command,
    simulation_caption,
    simulation_figure,
)

CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
FAST = ["--max-steps", "2"]  # the tiny model learns nothing in 2 steps: these tests check the loop, not its accuracy


@pytest.fixture
def news_csv(tmp_path: Path, shared_data: Path) -> Path:
    """300 AG News rows; the first 40 (10 a class) keep their label, the rest have none."""
    df = pd.read_csv(shared_data / "ag_news" / "test.csv")
    first = df.groupby("label").head(10).index
    df = pd.concat([df.loc[first], df.drop(index=first).head(260)], ignore_index=True)
    df.loc[40:, "label"] = None
    path = tmp_path / "news.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def news(news_csv: Path) -> str:
    create_project("news", str(news_csv), classes=CLASSES)
    return "news"


# --- projects and labels ----------------------------------------------------------------------------------------


def test_labels_are_saved_as_given_and_survive_a_reload(news):
    project = load_project(news)
    assert project.rows == 300 and project.classes == CLASSES
    assert len(labels(news)) == 40 and counts(news) == dict.fromkeys(CLASSES, 10)
    give_label(news, 100, "Sports")
    give_label(news, 101, "World")
    give_label(news, 101, "Business")  # a later line wins
    clear_label(news, 0)
    give_labels(news, {102: "Sci/Tech", 103: ""})  # "" clears (a row never labelled: nothing changes)
    fresh = labels(news)  # read from disk again
    assert fresh[100] == "Sports" and fresh[101] == "Business" and fresh[102] == "Sci/Tech"
    assert 0 not in fresh and 103 not in fresh and len(fresh) == 42
    history = label_history(news)
    assert [h["from"] for h in history[:40]] == ["file"] * 40 and history[-1]["label"] is None
    assert list_projects()[0]["labelled"] == 42


def test_a_label_survives_a_process_killed_right_after_giving_it(news):
    code = textwrap.dedent("""
        import sys, time
        from bmcore.labelling.project import give_label
        give_label("news", 250, "Sports")
        print("given", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "given"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert labels(news)[250] == "Sports"


def test_a_half_written_line_is_skipped_and_a_damaged_one_refused(news):
    path = load_project(news).folder / LABELS_FILE
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"row": 7, "label": "Spo')  # a crash mid-write
    assert len(labels(news)) == 40
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('\n{"row": 7, "label": "Nope"}\n')
    with pytest.raises(BmcoreError, match="damaged"):
        labels(news)


def test_a_project_refuses_bad_input(news, news_csv, tmp_path):
    with pytest.raises(BmcoreError, match="already exists"):
        create_project(news, str(news_csv), classes=CLASSES)
    with pytest.raises(BmcoreError, match="not named"):
        create_project("other", str(news_csv), classes=["World", "Sports"])
    with pytest.raises(BmcoreError, match="between 2"):
        create_project("other", str(news_csv), label_column="label", classes=["World"])
    with pytest.raises(BmcoreError, match="not a class"):
        give_label(news, 1, "Nope")
    with pytest.raises(BmcoreError, match="outside"):
        give_label(news, 300, "World")
    with pytest.raises(BmcoreError, match="no labelling project"):
        labels("missing")
    assert not (tmp_path / "workspace" / "labelling" / "other").exists()


def test_a_txt_file_is_one_text_per_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("first, with a comma\n\nsecond\nthird\n", encoding="utf-8")
    project = create_project("notes", str(path), classes="a,b")
    assert project.texts["text"].tolist() == ["first, with a comma", "second", "third"]
    assert project.texts["file_row"].tolist() == [1, 3, 4] and labels("notes") == {}


# --- picking ------------------------------------------------------------------------------------------------------


def _blob(centre_axis: int, n: int, rng: np.random.Generator, spread: float = 0.1, dim: int = 8) -> np.ndarray:
    """``n`` embeddings around a point on one axis (sentence embeddings differ by direction, which cosine reads)."""
    centre = np.zeros(dim)
    centre[centre_axis] = 5.0
    return centre + rng.normal(0, spread, (n, dim))


def _two_blobs(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings in two blobs of different directions, and probabilities whose margin falls with the row's position."""
    rng = np.random.default_rng(seed)
    emb = np.vstack([_blob(0, n // 2, rng), _blob(1, n // 2, rng)])
    top = np.linspace(0.99, 0.5, n)
    return np.column_stack([top, 1 - top]), emb


def test_uncertainty_picks_unsure_rows_spread_over_the_data():
    probs, emb = _two_blobs()
    candidates = np.arange(1000, 1200)
    picked = pick_uncertain(probs, emb, candidates, 10, seed=0)
    assert len(picked) == 10 == len(set(picked)) and set(picked) <= set(candidates)
    positions = np.array(picked) - 1000
    assert margins(probs[positions]).max() <= np.sort(margins(probs))[60]  # among the most uncertain
    assert (np.diff(margins(probs[positions])) >= 0).all()  # the most uncertain come first
    assert picked != pick_random(candidates, 10, seed=0)
    # Uncertainty alone would take the last 10 rows, all in one blob; the clusters take some of another.
    rng = np.random.default_rng(1)
    probs2 = np.column_stack([np.r_[rng.uniform(0.5, 0.52, 30), np.full(170, 0.99)], np.zeros(200)])
    probs2[:, 1] = 1 - probs2[:, 0]
    emb2 = np.vstack([_blob(0, 15, rng), _blob(1, 15, rng), _blob(2, 170, rng)])
    got = np.array(pick_uncertain(probs2, emb2, np.arange(200), 4, seed=0))
    assert (got < 15).any() and ((got >= 15) & (got < 30)).any()


def test_uncertainty_passes_over_unsure_outliers_for_unsure_typical_rows():
    """Information density: among rows the model is equally unsure of, the ones in a crowd are picked, not the
    loners (an outlier teaches the model about itself alone)."""
    rng = np.random.default_rng(2)
    crowd, loners = _blob(0, 60, rng, spread=0.3), rng.normal(0, 1, (20, 8)) * 5  # 20 rows in random directions
    emb = np.vstack([crowd, loners])
    unsure = np.r_[np.full(60, 0.55), np.full(20, 0.5)]  # the loners are the least sure, by a little
    probs = np.column_stack([unsure, 1 - unsure])
    picked = pick_uncertain(probs, emb, np.arange(80), 5, seed=0)
    assert all(p < 60 for p in picked)
    dense = density(emb)
    assert dense.min() == 0.0 and dense.max() == 1.0 and dense[:60].mean() > dense[60:].mean()
    assert (density(np.ones((5, 3))) == 1).all() and len(density(np.zeros((0, 3)))) == 0


def test_picking_handles_small_pools_and_ties():
    assert sorted(pick_uncertain(np.full((3, 2), 0.5), np.zeros((3, 4)), [5, 6, 7], 10, seed=0)) == [5, 6, 7]
    same = pick_uncertain(np.full((50, 2), 0.5), np.zeros((50, 4)), np.arange(50), 5, seed=0)
    assert len(set(same)) == 5  # identical rows: k-means makes empty clusters, the batch is still full
    assert pick_random([1, 2], 5, seed=0) == [1, 2] and pick_diverse(np.zeros((0, 3)), [], 3, seed=0) == []
    with pytest.raises(ValueError):
        pick_uncertain(np.zeros((2, 2)), np.zeros((3, 4)), [1, 2, 3], 1, seed=0)


def test_the_cold_start_covers_the_data():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 10
    emb = np.vstack([c + rng.normal(0, 0.1, (25, 4)) for c in centres])
    picked = pick_diverse(emb, np.arange(100), 4, seed=0)
    assert sorted(p // 25 for p in picked) == [0, 1, 2, 3]


def test_the_training_steps_grow_with_the_labelled_rows_between_a_floor_and_a_cap():
    from bmcore.labelling.step import LOOP_MAX_STEPS, LOOP_MIN_STEPS, loop_steps

    assert [loop_steps(n) for n in (0, 20, 66, 67, 100, 160, 200, 1000)] == [40, 40, 40, 41, 60, 96, 120, 120]
    assert (LOOP_MIN_STEPS, LOOP_MAX_STEPS) == (40, 120)
    assert loop_steps(200, 2) == 2 and loop_steps(200, 500) == 120 and loop_steps(1000, 500) == 500  # the user's cap
    assert loop_steps(200, None) == LOOP_MAX_STEPS


def test_the_holdout_is_stable_and_about_a_fifth():
    rows = np.arange(5000)
    held = held_out(rows)
    assert 0.17 < held.mean() < 0.23 and (held_out(rows[::-1])[::-1] == held).all()


# --- the step, the export, the simulation ---------------------------------------------------------------------


def test_label_step_writes_picks_and_a_curve_point(news, tiny_model, capsys, monkeypatch):
    from bmcore.labelling import step

    learnt: list = []  # the class names each training learnt from (None: the texts alone)
    given_steps: list = []  # the steps each training was given
    fit = step.fit_few_shot
    monkeypatch.setattr(step, "fit_few_shot", lambda *a, **k: learnt.append(k.get("label_names"))
                        or given_steps.append(k.get("max_steps")) or fit(*a, **k))
    assert main(["label", "step", news, "--model", str(tiny_model), "--batch", "8", *FAST]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = load_project(news).folder
    assert (folder / PICKS_FILE).is_file() and (folder / CURVE_FILE).is_file()
    picks, given = read_picks(news), labels(news)
    assert picks["rows"] == result["rows"] and len(picks["rows"]) == 8 == len(set(picks["rows"]))
    assert not set(picks["rows"]) & set(given) and len(picks["probs"]) == 8 and picks["picker"] == "uncertainty"
    assert all(s in CLASSES for s in picks["suggested"])
    [point] = read_curve(news)
    assert point["labels"] == 40 and point["n_validation"] == sum(held_out(sorted(given)))
    assert point["accuracy"] is not None and point["trained_on"] + point["n_validation"] == 40
    assert point["label_names"] is True and learnt == [CLASSES]  # the class names are words: learnt from
    assert point["steps"] == 2 == given_steps[0]  # --max-steps 2 caps the rule's 40
    assert main(["label", "step", news, "--model", str(tiny_model), "--batch", "8", "--strategy", "random",
                 "--no-label-names", *FAST]) == 0
    assert read_picks(news)["rows"] != picks["rows"] and len(read_curve(news)) == 2
    assert read_curve(news)[1]["label_names"] is False and learnt[1] is None
    frame = batch_frame(load_project(news), read_picks(news), labels(news))
    assert len(frame) == 8 and frame["confidence"].notna().all()


def test_the_cold_start_step_picks_rows_that_cover_the_data(tmp_path, tiny_model):
    path = tmp_path / "plain.txt"
    path.write_text("\n".join(f"text number {i} about {'sports' if i % 2 else 'markets'}" for i in range(60)))
    create_project("plain", str(path), classes=["a", "b"])
    result = run_step("plain", batch=5, model=str(tiny_model), max_steps=2)
    assert result["picker"] == "diverse" and len(set(result["rows"])) == 5 and result["accuracy"] is None
    assert read_picks("plain")["probs"] is None


def test_the_step_runs_as_a_job(news, tiny_model):
    job = jobs.start(STEP_JOB, {"project": news, "batch": 4, "max_steps": 2, "model": str(tiny_model)}, key=news)
    done = jobs.wait(job, timeout=300)
    assert done["state"] == "completed", done
    assert done["result"]["rows"] == read_picks(news)["rows"] and len(done["result"]["rows"]) == 4


def test_label_export_makes_a_dataset_train_takes_and_a_second_gets_v2(news, tiny_model, tmp_path, capsys):
    assert main(["label", "export", news]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ds = load_prepared("news")
    assert first["name"] == "news" and ds.label_names == CLASSES and first["labels"] == 40
    assert sum(len(df) for df in ds.splits.values()) == 40 and all(len(df) for df in ds.splits.values())
    assert set(ds.splits["test"]["label"]) == set(CLASSES)  # stratified: every class in every split
    give_label(news, 200, "World")
    assert export_dataset(news)["name"] == "news-v2" and load_prepared("news-v2").version["number"] == 2
    from bmcore.report.data import prepared_frame

    shown = prepared_frame().set_index("name")["version"]
    assert shown["news-v2"] == "v2 of news (labelled in project news)" and shown["news"] == ""  # not "0 relabelled"
    assert main(["train", "--data", "news-v2", "--model", str(tiny_model), "--max-steps", "2",
                 "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "model" / "config.json").is_file()


def test_the_simulation_writes_both_curves(tiny_model, shared_data):
    from bmcore import data as bdata

    df = pd.read_csv(shared_data / "ag_news" / "test.csv").head(300)
    bdata.save_prepared(bdata.prepare(bdata.RawData("ag", {"all": df}), "ag300"))
    summary = simulate("ag300", budget=40, step=20, seeds=1, pool=150, eval_rows=60, max_steps=2,
                       model=str(tiny_model))
    frame, saved = read_simulation("ag300")
    assert set(frame["strategy"]) == {"uncertainty", "random"} and sorted(set(frame["labels"])) == [20, 40]
    assert Path(summary["html"]).is_file() and Path(summary["csv"]).is_file() and saved["budget"] == 40
    assert [p["labels"] for p in summary["steps"]] == [20, 40]
    assert all(isinstance(p["uncertainty_at_least_random"], bool) for p in summary["steps"])
    # Both strategies start from the same rows: their first points are the same model.
    first = frame[frame["labels"] == 20].set_index("strategy")["accuracy"]
    assert first["uncertainty"] == first["random"]
    assert len(simulation_figure(frame).data) == 4  # a band and a mean line per strategy
    assert summary["label_names"] is True  # World, Sports, Business, Sci/Tech: words, learnt from as the loop does
    assert (summary["max_steps"], summary["min_steps"]) == (2, 2)  # the cap below the rule's floor: 2 steps a round
    caption = simulation_caption({**summary, "max_steps": 120, "min_steps": 40})
    assert "40 to 120 training steps as labels grow (0.6 a label)" in caption


# --- bad input: one line, exit 2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, says", [
    (["label", "status", "missing"], "no labelling project"),
    (["label", "give", "news", "3", "Nope"], "not a class"),
    (["label", "give", "news", "300", "World"], "outside"),
    (["label", "step", "news", "--batch", "0"], "at least one row"),
    (["label", "new", "bad name", "--file", "x.csv", "--classes", "a,b"], "invalid project name"),
    (["label", "simulate", "--data", "missing"], "no prepared dataset"),
    (["label", "simulate", "--data", "multi", "--budget", "40"], "single-label text"),
    (["label", "simulate", "--data", "ag40", "--budget", "10", "--step", "20"], "at least one step"),
    (["label", "simulate", "--data", "ag40", "--budget", "60"], "more than the pool"),
    (["label", "simulate", "--data", "ag40", "--strategy", "guess"], "unknown strategy"),
])
def test_bad_input_is_one_line_and_exit_2(argv, says, news, shared_data, capsys):
    from bmcore import data as bdata

    df = pd.read_csv(shared_data / "ag_news" / "test.csv").head(60)
    bdata.save_prepared(bdata.prepare(bdata.RawData("ag", {"all": df}), "ag40"))
    multi = pd.DataFrame({"text": [f"text {i}" for i in range(60)], "label": ["a,b", "a", "b"] * 20})
    bdata.save_prepared(bdata.prepare(bdata.RawData("m", {"all": multi}), "multi",
                                      bdata.Columns(["text"], "label", label_delimiter=",")))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert is_prepared("ag40")


# --- what the page draws ----------------------------------------------------------------------------------------


def test_the_report_frames_figures_and_commands():
    assert counts_frame({"a": 2, "b": 0}).to_dict("list") == {"class": ["a", "b"], "labelled": [2, 0]}
    points = [{"labels": 20, "accuracy": None, "n_validation": 0, "strategy": "uncertainty"},
              {"labels": 40, "accuracy": 0.5, "n_validation": 8, "strategy": "uncertainty"}]
    assert curve_figure(points[:1]) is None and len(curve_figure(points).data) == 1
    assert curve_frame(points)["labels"].tolist() == [20, 40]
    commands = label_commands("my news", row=3, label="Sci/Tech")
    assert commands["give"] == "python -m bmcore label give 'my news' 3 Sci/Tech"
    assert commands["step"] == "python -m bmcore label step 'my news' --strategy uncertainty --batch 20"
    assert simulate_command("ag").endswith("--strategy uncertainty,random --seeds 3")
    assert label_commands("n", label_names=False)["step"].endswith("--batch 20 --no-label-names")
    assert simulate_command("ag", label_names=False).endswith("--seeds 3 --no-label-names")


@pytest.mark.slow
def test_the_loop_with_minilm_on_real_news(news, capsys):
    """builtin:minilm, 10 labelled news per class: the step trains, measures and picks with the real body."""
    result = run_step(news, batch=10, max_steps=5)  # a few pair steps: enough to prove the path, cheap on 2 cores
    assert result["accuracy"] is not None and result["accuracy"] > 0.4 and len(result["rows"]) == 10
    picks = read_picks(news)
    assert max(max(p) for p in picks["probs"]) < 0.99 and not set(picks["rows"]) & set(labels(news))


def test_damaged_picks_and_curve_files_are_refused(news):
    folder = load_project(news).folder
    (folder / PICKS_FILE).write_text(json.dumps({"rows": [1, 2], "probs": [[0.5, "x"]], "suggested": None}))
    with pytest.raises(BmcoreError, match="picks.json"):
        read_picks(news)
    (folder / CURVE_FILE).write_text('{"labels": 20, "accuracy": "<b>high</b>"}\n')
    with pytest.raises(BmcoreError, match="curve.jsonl"):
        read_curve(news)
