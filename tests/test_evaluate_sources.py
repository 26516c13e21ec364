"""``evaluate --data FOLDER|ZIP`` (issue 27): every image of a folder or zip of class folders is scored, with and
without train/validation/test folders, on real Fashion-MNIST images and the tiny random ResNet (tests/_folders.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _folders import CLASSES, PER_CLASS, fashion_splits, tiny_image_model, write_class_folders, zip_folder

from bmcore.cli import main

N_CLASSES = len(CLASSES)
TOTAL = sum(PER_CLASS.values()) * N_CLASSES


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model, a folder with split folders, the test split alone as a flat folder, and both zipped."""
    base = tmp_path_factory.mktemp("sources")
    frames = fashion_splits()
    out = {"model": tiny_image_model(base / "model"),
           "splits": write_class_folders(base / "splits", frames),
           "flat": write_class_folders(base / "flat", {"test": frames["test"]}, split_folders=False)}
    out["splits_zip"] = zip_folder(out["splits"], base / "splits.zip", wrap="photos")
    out["flat_zip"] = zip_folder(out["flat"], base / "flat.zip")
    return out


def evaluate(capsys: pytest.CaptureFixture[str], sources: dict[str, Path], data: Path, out: Path, *extra: str) -> dict:
    rc = main(["evaluate", "--model", str(sources["model"]), "--data", str(data), "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


@pytest.mark.parametrize("key", ["flat", "flat_zip"])
def test_class_folders_without_splits_are_scored_whole(key, sources, tmp_path, capsys):
    summary = evaluate(capsys, sources, sources[key], tmp_path / "out")
    n = PER_CLASS["test"] * N_CLASSES
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    preds = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert summary["split"] == metrics["split"] == "all" and summary["n"] == metrics["n"] == len(preds) == n
    assert metrics["confusion_matrix"]["labels"] == sorted(CLASSES.values())  # the model's id2label order
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == n
    assert preds["gold"].value_counts().to_dict() == dict.fromkeys(CLASSES.values(), PER_CLASS["test"])
    assert all(p.split("/")[0] in CLASSES.values() for p in preds["path"])  # each row names its file
    assert summary["notes"][0] == f"scored all {n} images of {sources[key].name}"
    assert summary["baseline"] is None and any("baseline was skipped" in n for n in summary["notes"])


@pytest.mark.parametrize("key", ["splits", "splits_zip"])
def test_split_folders_are_scored_together_or_one_by_split(key, sources, tmp_path, capsys):
    summary = evaluate(capsys, sources, sources[key], tmp_path / "all")
    assert summary["split"] == "all" and summary["n"] == TOTAL
    sizes = ", ".join(f"{s} {n * N_CLASSES}" for s, n in PER_CLASS.items())
    assert summary["notes"][0].startswith(f"scored all {TOTAL} images of {sources[key].name}, its splits together ({sizes})")
    # --split test: the test folder alone, next to the pixel baseline trained on train/, temperature fitted on validation/
    summary = evaluate(capsys, sources, sources[key], tmp_path / "test", "--split", "test")
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert summary["split"] == "test" and summary["n"] == PER_CLASS["test"] * N_CLASSES
    assert summary["notes"][0] == f"scored the test folder of {sources[key].name}: {summary['n']} images"
    assert metrics["baseline"]["train_rows"] == PER_CLASS["train"] * N_CLASSES
    # Its validation/ folder is read for the temperature, and found too small to trust one (issue 27's rule).
    assert metrics["calibration"]["fitted_on"] is None
    assert metrics["calibration"]["reason"].startswith(f"the validation split has {PER_CLASS['validation'] * N_CLASSES} examples")


def test_a_baseline_can_be_trained_on_another_source(sources, tmp_path, capsys):
    summary = evaluate(capsys, sources, sources["flat"], tmp_path / "out", "--baseline-train", str(sources["splits"]))
    assert summary["split"] == "all" and summary["baseline"] is not None


def test_split_that_the_source_lacks_is_one_line(sources, tmp_path, capsys):
    rc = main(["evaluate", "--model", str(sources["model"]), "--data", str(sources["flat"]), "--split", "test",
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "flat has no test folder: it has no split folders" in err and not (tmp_path / "out").exists()


def test_a_class_the_model_does_not_know_is_refused_by_name(sources, tmp_path, capsys):
    model = tiny_image_model(tmp_path / "two-classes", ["Bag", "Trouser"])
    rc = main(["evaluate", "--model", str(model), "--data", str(sources["splits_zip"]), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "splits.zip has 1 class the model does not know (Sneaker); the model's classes are Bag, Trouser" in err
    assert not (tmp_path / "out").exists()


def test_rows_a_page_read_are_scored_by_the_job_as_read(tiny_model, shared_data, tmp_path):
    """The Evaluate page saves what it read from an upload (save_rows); the scoring job scores exactly that."""
    from bmcore.evaluate import evaluate_model
    from bmcore.scoring import load_rows, save_rows, whole_dataset
    from bmcore.tasks import get_task

    rows = pd.read_csv(shared_data / "sst2" / "dev.csv").head(40)
    ds, split = whole_dataset("new.csv", get_task(), ["negative", "positive"], data=rows.to_csv(index=False).encode())
    assert split == "all" and len(ds.splits["all"]) == 40
    back, split = load_rows(save_rows(ds, split, tmp_path / "eval"))
    assert split == "all" and back.label_names == ds.label_names and back.splits["all"].equals(ds.splits["all"])
    result = evaluate_model(str(tiny_model), back, split, tmp_path / "eval", notes=["a note"])
    assert result.metrics["n"] == 40 and result.metrics["notes"][0] == "a note"
