"""The Train and Evaluate pages on an image dataset (issue 16), through AppTest: a tiny ResNet trained from the Train
page on real Fashion-MNIST images, then its evaluation with thumbnails where text stands; a text model on images
refused in one line before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_image_task import CLASSES, FASHION, fashion_frames

from bmcore import data as bdata
from bmcore import evaluation_files as evf
from bmcore import jobs, run_list, runs
from bmcore.report import examples as rex

TIMEOUT = 180  # the first run imports torch, transformers and scikit-learn on 2 busy CPU cores
PER_CLASS = {"train": 50, "validation": 15, "test": 15}  # 200 / 60 / 60 images of four classes


@pytest.fixture
def fashion_ds(workspace: Path) -> str:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    ds = bdata.PreparedDataset(name="fashion-small", source="fashion-mnist idx files", columns=bdata.Columns(["image"], "label"),
                               label_names=sorted(set(CLASSES.values())), splits=fashion_frames(PER_CLASS), modality="image")
    bdata.save_prepared(ds)
    return "fashion-small"


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def set_image_run(at: AppTest, dataset: str, model: Path) -> AppTest:
    """A local image model, 30 steps at 32 px, evaluation every 15 steps."""
    at.selectbox(key="train_dataset").select(dataset).run()
    at.radio(key="train_model_kind").set_value("Local folder").run()
    at.text_input(key="train_model_path").input(str(model)).run()
    at.radio(key="train_length").set_value("steps").run()
    at.number_input(key="train_max_steps").set_value(30)
    at.number_input(key="train_lr").set_value(2e-3)
    at.number_input(key="train_batch_size").set_value(16)
    at.number_input(key="train_image_size").set_value(32)
    at.radio(key="train_eval_strategy").set_value("steps").run()
    at.number_input(key="train_eval_steps").set_value(15)
    at.number_input(key="train_logging_steps").set_value(5)
    return at.run()


def gallery(at: AppTest, index: int) -> list[str]:
    """The captions of the page's ``index``-th image gallery (st.image with a list)."""
    galleries = at.image
    assert len(galleries) > index, f"only {len(galleries)} galleries"
    assert all(galleries[index].value)  # each thumbnail was served
    return galleries[index].captions


def test_image_settings_and_the_builtin_default(fashion_ds, tiny_resnet):
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset").select(fashion_ds).run()
    assert not at.exception and not at.error
    keys = {w.key for w in (*at.number_input, *at.checkbox)}
    assert {"train_image_size", "train_augment"} <= keys
    assert not {"train_max_seq_length", "train_freeze", "train_batch_growth"} & keys  # text-only settings hidden
    assert any("EfficientNet-Lite0" in c.value for c in at.caption)
    assert any("Augmentation" in c.value for c in at.caption)
    assert any(c.value.startswith("python -m bmcore train --data fashion-small --model builtin:efficientnet-lite0")
               for c in at.code)
    assert at.number_input(key="train_lr").value == 1e-3  # the image task's learning rate, not the text one
    at.checkbox(key="train_augment").uncheck().run()
    at.number_input(key="train_image_size").set_value(64).run()
    assert any("--image-size 64" in c.value and "--no-augment" in c.value for c in at.code), [c.value for c in at.code]

    # The time estimate probes real image batches (decoded, resized to image_size) through the image model.
    at.radio(key="train_model_kind").set_value("Local folder").run()
    at.text_input(key="train_model_path").input(str(tiny_resnet)).run()
    at.radio(key="train_length").set_value("steps").run()
    at.number_input(key="train_max_steps").set_value(20).run()
    at.toggle(key="train_estimate").set_value(True).run()
    assert not at.exception and not at.error
    [job] = jobs.list_jobs("estimate")
    assert jobs.wait(job, timeout=300)["state"] == runs.COMPLETED, runs.log_tail(job)
    at.run()
    assert any("About" in m.value and "20 steps" in m.value for m in at.markdown)
    result = jobs.read(job)["result"]
    assert result["total_steps"] == 20 and result["samples_per_s"] > 0 and result["n_train"] == 200


def test_a_text_model_on_images_is_refused_before_start(fashion_ds, tiny_model):
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset").select(fashion_ds).run()
    at.radio(key="train_model_kind").set_value("Local folder").run()
    at.text_input(key="train_model_path").input(str(tiny_model)).run()
    assert not at.exception
    [error] = at.error
    assert "is a text model" in error.value and "holds image data" in error.value and "\n" not in error.value
    assert not any(b.key == "train_start" for b in at.button)
    assert run_list.list_runs() == []


def test_train_an_image_model_then_evaluate_it_with_thumbnails(fashion_ds, tiny_resnet):
    at = set_image_run(open_page("pages/train.py"), fashion_ds, tiny_resnet)
    assert not at.exception and not at.error
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error
    [row] = run_list.list_runs()
    run_dir = Path(row.path)
    assert runs.wait_for(run_dir, timeout=600)["state"] == runs.COMPLETED, runs.log_tail(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["image_size"], config["augment"], config["max_steps"]) == (32, True, 30)
    at.run()
    assert not at.exception and not at.error
    assert any('pipeline("image-classification"' in c.value for c in at.code)

    ev_page = open_page("pages/evaluate.py")
    ev_page.selectbox(key="evaluate_run").select(run_dir.name).run()
    assert not ev_page.exception and not ev_page.error
    saved = json.loads((run_dir / runs.EVALUATION_DIR / "test" / evf.EVAL_METRICS_FILE).read_text())
    metrics = {m.label: m for m in ev_page.metric}
    assert metrics["Accuracy"].value == f"{saved['accuracy']:.3f}"
    assert saved["baseline"]["model"] == "pixels16-logreg"
    assert metrics["Baseline accuracy"].value == f"{saved['baseline']['accuracy']:.3f}"
    assert saved["baseline"]["accuracy"] > 0.5  # logistic regression on pixels tells these four garments apart
    assert "pixels" in metrics["Baseline accuracy"].proto.help
    assert any("60 test examples of fashion-small" in c.value and "32 px images" in c.value for c in ev_page.caption)
    assert len(ev_page.get("plotly_chart")) >= 5  # confusion, per class, ROC, PR, reliability
    assert "Model mistakes or label mistakes?" not in [h.value for h in ev_page.subheader]  # the text-only check

    # The error browser is a gallery: the misclassified images, highest loss first, each captioned as text.
    cm = saved["confusion_matrix"]
    names, matrix = cm["labels"], cm["matrix"]
    n_wrong = saved["n"] - sum(matrix[k][k] for k in range(len(names)))
    errors = gallery(ev_page, 0)
    assert len(errors) == min(n_wrong, rex.GALLERY_MAX) > 0
    losses = [float(c.rsplit("loss ", 1)[1]) for c in errors]
    assert losses == sorted(losses, reverse=True)
    assert all(c.split(": ", 1)[1].split(" → ")[0] != c.split(" → ")[1].split(" (")[0] for c in errors)

    # A confusion cell, chosen through the selectboxes beside the matrix: its images, most confident first.
    i, j = max(((a, b) for a in range(len(names)) for b in range(len(names))), key=lambda ab: matrix[ab[0]][ab[1]])
    ev_page.selectbox(key="evaluate_cell_gold").select(names[i]).run()
    ev_page.selectbox(key="evaluate_cell_pred").select(names[j]).run()
    assert not ev_page.exception and not ev_page.error
    cell = gallery(ev_page, 0)  # drawn above the error browser
    assert len(cell) == min(matrix[i][j], rex.GALLERY_MAX) > 0
    assert all(f": {names[i]} → {names[j]} (" in c for c in cell)
    confidences = [float(c.rsplit("(", 1)[1].rstrip(")")) for c in cell]
    assert confidences == sorted(confidences, reverse=True)
    predictions = evf.read_predictions(run_dir / runs.EVALUATION_DIR / "test")
    files = predictions.loc[(predictions["gold"] == names[i]) & (predictions["pred"] == names[j]), "text"]
    assert all(f.startswith("t10k/") for f in files)  # the test split's files, captioned by their names
    shown = {c.split(": ", 1)[0].replace("\\", "") for c in cell}  # captions are Markdown-escaped ("102\\.png")
    assert shown <= {f.removeprefix("t10k/") for f in files}
