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
    method = "attention rollout" if kind == "vit" else "Grad-CAM"  # each model's default, named
    captions = [c for im in at.get("image") for c in im.captions]  # the image as the model sees it, the overlay beside it
    assert captions == ["What the model sees", f"{method}: {rec['label']}"]
    assert any(c.value.lower().startswith(f"{method.lower()}:") for c in at.caption)  # what the map means, its limits
    picker = at.selectbox(key="playground_image_method")  # the method is a choice, named as people write it
    assert picker.options == [method, "Integrated Gradients"] and picker.format_func(picker.value) == method
    code = "\n".join(c.value for c in at.code)
    assert "python -m bmcore predict --model" in code and "--explain garment.png" in code
    assert 'pipeline("image-classification", model=' in code

    # Another class explained: a new overlay, no error.
    other = next(n for n in clf.label_names if n != rec["label"])
    at.selectbox(key="playground_image_target").select(other).run()
    assert not at.exception and not at.error


def test_a_new_image_explains_its_own_prediction(image_runs):
    # Upload A, pick a class that neither A nor B is predicted as, then upload B: the class explained is B's prediction.
    clf = load_for_inference(str(image_runs["resnet"] / runs.MODEL_DIR))
    pngs = list(bdata.load_prepared(DATASET).splits["test"]["image"])
    labels = [r["label"] for r in predict_images(clf, pngs)]
    a = 0
    b = next(i for i, lab in enumerate(labels) if lab != labels[a])
    other = next(n for n in clf.label_names if n not in (labels[a], labels[b]))
    at = open_model(image_runs["resnet"])
    at.file_uploader(key="playground_image_file").upload("a.png", pngs[a], "image/png").run()
    target = at.selectbox(key="playground_image_target")
    assert target.value == labels[a] and target.format_func(target.value) == f"{labels[a]} (predicted)"
    target.select(other).run()
    assert [c for im in at.get("image") for c in im.captions][1] == f"Grad-CAM: {other}"
    at.file_uploader(key="playground_image_file").upload("b.png", pngs[b], "image/png").run()
    assert not at.exception and not at.error and metric(at, "Prediction") == labels[b]
    target = at.selectbox(key="playground_image_target")
    assert target.value == labels[b] and target.format_func(target.value) == f"{labels[b]} (predicted)"
    assert [c for im in at.get("image") for c in im.captions][1] == f"Grad-CAM: {labels[b]}"

    # Integrated Gradients, chosen: named in the caption and in the command line shown.
    at.selectbox(key="playground_image_method").select("integrated_gradients").run()
    assert not at.exception and not at.error
    assert [c for im in at.get("image") for c in im.captions][1] == f"Integrated Gradients: {labels[b]}"
    assert "--explain --method integrated_gradients b.png" in "\n".join(c.value for c in at.code)


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
