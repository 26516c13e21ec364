"""The Evaluate page's uploaded zip of image class folders (issue 27): read and checked in the page, scored whole by
the background job, shown as a run's test split is (tiles, confusion, thumbnails in the error browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _folders import CLASSES, PER_CLASS, fashion_splits, tiny_image_model, write_class_folders, zip_folder
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore import jobs, runs
from bmcore.report import examples as rex

TIMEOUT = 180


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, dict]:
    """The tiny ResNet, a zip of Fashion-MNIST class folders under train/validation/test, and its frames."""
    base = tmp_path_factory.mktemp("upload")
    frames = fashion_splits()
    data = zip_folder(write_class_folders(base / "photos", frames), base / "photos.zip").read_bytes()
    return tiny_image_model(base / "model"), data, frames


def open_with_upload(model: Path, name: str, data: bytes) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/evaluate.py").run()
    at.radio(key="evaluate_source").set_value("Local model folder").run()
    at.text_input(key="evaluate_model_path").input(str(model)).run()
    at.radio(key="evaluate_data_kind").set_value("Upload a file").run()
    at.file_uploader(key="evaluate_upload").upload(name, data, "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_uploaded_zip_is_scored_whole_with_thumbnails(upload, workspace: Path):
    model, data, frames = upload
    # The page opens on a workspace with a prepared dataset (as after training); the upload is scored, not it.
    bdata.save_prepared(bdata.PreparedDataset(name="other", source="x", columns=bdata.IMAGE_COLUMNS,
                                              label_names=sorted(CLASSES.values()), splits=frames, modality="image"))
    at = open_with_upload(model, "photos.zip", data)
    total = sum(PER_CLASS.values()) * len(CLASSES)
    assert not at.error and any(f"{total:,} examples" in i.value for i in at.info), [i.value for i in at.info]
    assert any("--data photos.zip --split all" in c.value for c in at.code)
    assert not (workspace / evf.EVALUATIONS_DIR).exists()  # read in the page; nothing written before Evaluate
    at.button(key="evaluate_start").click().run()
    assert not at.exception and not at.error
    [job] = jobs.list_jobs("evaluate")
    assert jobs.wait(job, timeout=TIMEOUT)["state"] == runs.COMPLETED, runs.log_tail(job)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [out] = list((workspace / evf.EVALUATIONS_DIR).iterdir())
    metrics = json.loads((out / evf.EVAL_METRICS_FILE).read_text())
    assert metrics["split"] == "all" and metrics["n"] == total
    assert metrics["notes"][0].startswith(f"scored all {total} images of photos.zip, its splits together")
    assert {m.label for m in at.metric} >= {"Accuracy", "Macro F1"}
    assert any(f"{total} examples of photos-" in c.value for c in at.caption)  # not "all examples"
    # The error browser shows the misclassified images as thumbnails, captioned file: gold → predicted.
    wrong = int((~evf.read_predictions(out)["correct"]).sum())
    captions = at.image[0].captions
    assert len(captions) == min(wrong, rex.GALLERY_MAX) > 0 and all(at.image[0].value)
    assert all(" → " in c and c.split(": ", 1)[0].split("-", 1)[0] in PER_CLASS for c in captions)
    assert "Model mistakes or label mistakes?" not in [h.value for h in at.subheader]
    again = open_with_upload(model, "photos.zip", data)  # the same file again: its saved results, at once
    assert not again.error and not any(b.key == "evaluate_start" for b in again.button)
    assert {m.label for m in again.metric} >= {"Accuracy"}



def test_an_uploaded_text_file_is_scored_whole_for_a_text_model(tiny_model: Path, shared_data: Path, workspace: Path):
    rows = pd.read_csv(shared_data / "sst2" / "dev.csv").head(40)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst2", {"all": rows}), "sst-few", seed=0))
    at = open_with_upload(tiny_model, "new-reviews.csv", rows.to_csv(index=False).encode())
    assert not at.error and any("40 examples" in i.value for i in at.info), [i.value for i in at.info]
    assert any(b.key == "evaluate_start" for b in at.button)  # the job's side: tests/test_evaluate_sources.py
