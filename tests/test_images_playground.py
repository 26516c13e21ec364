"""The Playground on image models (AppTest): tiny ResNet and ViT runs trained on real Fashion-MNIST images
(tests/_images.py). Upload a PNG: every class's probability, the prediction and the explanation overlaid on the image;
an image from the test split with its true class; a bad upload is one st.error; a zip of images gives a table."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from _images import DATASET, copy_workspace
from conftest import ROOT
from PIL import Image
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import runs
from bmcore.display import plot_texts
from bmcore.inference import load_for_inference, predict_images

TIMEOUT = 180
PAGE = "pages/playground.py"


@pytest.fixture
def image_runs(image_workspace: Path, workspace: Path) -> dict[str, Path]:
    return copy_workspace(image_workspace, workspace)


def open_model(run_dir: Path) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    model = str((run_dir / runs.MODEL_DIR).resolve())
    at.selectbox(key="playground_model_choice").select(model).run()
    assert not at.exception and not at.error
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_upload_shows_probabilities_prediction_and_explanation(image_runs, kind):
    at = open_model(image_runs[kind])
    test = bdata.load_prepared(DATASET).splits["test"]
    png = test["image"].iloc[0]
    at.file_uploader(key="playground_image_file").upload("garment.png", png, "image/png").run()
    assert not at.exception and not at.error

    clf = load_for_inference(str(image_runs[kind] / runs.MODEL_DIR))
    rec = predict_images(clf, [Image.open(io.BytesIO(png))])[0]
    assert metric(at, "Prediction") == rec["label"]
    assert not at.warning  # a trained image run is no "untrained base model"
    chart = next(c for c in at.get("plotly_chart") if "Probability of each class" in c.proto.spec)
    bars = json.loads(chart.proto.spec)["data"][0]
    assert sorted(bars["y"]) == sorted(plot_texts(clf.label_names))  # every class has its bar
    method = "attention rollout" if kind == "vit" else "Integrated Gradients"
    captions = [c for im in at.get("image") for c in im.captions]  # the image as the model sees it, the overlay beside it
    assert captions == ["What the model sees", f"{method.lower()}: {rec['label']}"]
    assert any(method.lower() in c.value.lower() for c in at.caption)  # what the map means, and its limits
    code = "\n".join(c.value for c in at.code)
    assert "python -m bmcore predict --model" in code and "--explain garment.png" in code
    assert 'pipeline("image-classification", model=' in code

    # Another class explained: a new overlay, no error.
    other = next(n for n in clf.label_names if n != rec["label"])
    at.selectbox(key="playground_image_target").select(other).run()
    assert not at.exception and not at.error


def test_a_test_image_shows_its_true_class(image_runs):
    at = open_model(image_runs["resnet"])
    at.radio(key="playground_image_source").set_value("An image from the test split").run()
    assert not at.exception and not at.error
    assert metric(at, "True class") in bdata.load_prepared(DATASET).label_names
    assert any(c.value.startswith("No calibrated probabilities: no temperature was saved with this model, as the "
                                  "validation split has 32 examples") for c in at.caption)  # 8 images of 4 classes


@pytest.mark.parametrize(("name", "data", "words"), [
    ("notes.png", b"this is a text file, not a picture", "not"),
    ("empty.png", b"", "empty"),
])
def test_a_bad_upload_is_one_error(image_runs, name, data, words):
    at = open_model(image_runs["resnet"])
    at.file_uploader(key="playground_image_file").upload(name, data, "image/png").run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value and words in at.error[0].value.lower()


def test_a_huge_image_is_refused(image_runs, monkeypatch):
    monkeypatch.setenv("BMCORE_MAX_IMAGE_PIXELS", "1000000")  # the pixel limit, checked from the header
    buf = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buf, format="PNG")
    at = open_model(image_runs["resnet"])
    at.file_uploader(key="playground_image_file").upload("huge.png", buf.getvalue(), "image/png").run()
    assert not at.exception
    assert len(at.error) == 1 and "2,000x2,000 pixels" in at.error[0].value and "huge.png" in at.error[0].value


def test_batch_zip_gives_a_table_of_predictions(image_runs):
    at = open_model(image_runs["vit"])
    test = bdata.load_prepared(DATASET).splits["test"].head(6)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (png, label) in enumerate(zip(test["image"], test["label"], strict=True)):
            zf.writestr(f"{label.replace('/', '-')}/{i}.png", png)
        zf.writestr("readme.txt", "left out: not an image")
    at.file_uploader(key="playground_image_batch").upload("batch.zip", buf.getvalue(), "application/zip").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert len(table) == 6 and set(table.columns) == {"image", "folder", "label", "confidence"}
    assert table["confidence"].between(0, 1).all()
    at.file_uploader(key="playground_image_batch").upload("bad.zip", b"not a zip", "application/zip").run()
    assert not at.exception and len(at.error) == 1 and "zip" in at.error[0].value
