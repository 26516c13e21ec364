"""Image runs (issue 16) leave the studio: ONNX export with its parity check, the model card of an image classifier,
the zip that transformers' image-classification pipeline loads and that agrees with bmcore predict, and
``predict --explain`` writing heat maps as PNG files. Tiny ResNet and ViT runs trained on real Fashion-MNIST images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _images import DATASET, copy_workspace
from conftest import ROOT
from PIL import Image

from bmcore import data as bdata
from bmcore import runs
from bmcore.export.bundle import export_zip
from bmcore.export.card import model_card
from bmcore.export.onnx import PARITY_ATOL, export_onnx, read_onnx_export


@pytest.fixture
def image_runs(image_workspace: Path, workspace: Path) -> dict[str, Path]:
    return copy_workspace(image_workspace, workspace)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bmcore", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=os.environ.copy())


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_onnx_export_of_an_image_model_passes_parity(image_runs, kind):
    import onnxruntime as ort

    run_dir = image_runs[kind]
    result = export_onnx(run_dir)
    assert result.passed, result.parity
    p = result.parity
    assert p["n"] == p["split_size"] == 32 and p["label_agreement"] == 1.0 and p["max_abs_diff"] <= PARITY_ATOL
    assert (result.path.parent / "preprocessor_config.json").is_file() and (result.path.parent / "config.json").is_file()
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixel_values"]
    # Any batch size runs (the batch axis is dynamic), on the saved processor's pixels.
    from bmcore.modalities.image import decode, pixel_values
    from bmcore.vision import load_image_processor

    test = bdata.load_prepared(DATASET).splits["test"]
    x = pixel_values(load_image_processor(str(run_dir / runs.MODEL_DIR)), [decode(b) for b in test["image"].head(5)])
    assert session.run(["logits"], {"pixel_values": x.numpy()})[0].shape == (5, 4)
    assert read_onnx_export(run_dir).passed


def test_model_card_describes_an_image_classifier(image_runs):
    card = model_card(image_runs["resnet"])
    assert "pipeline_tag: image-classification" in card and "image-classification" in card
    assert "An image classifier with 4 classes" in card and "`Sneaker`" in card
    assert "Image size: 32x32 pixels" in card and "random resized crop and horizontal flip" in card
    assert "| baseline: logistic regression on 16x16 grayscale pixels |" in card and "TF-IDF" not in card
    ev = json.loads((image_runs["resnet"] / runs.EVAL_FILE).read_text())
    assert f"| this model | {ev['test']['accuracy']:.4f} |" in card
    assert 'pipeline("image-classification", model="path/to/this/folder")' in card
    assert "max_seq_length" not in card.split("## Use it")[1]
    out = cli("export", str(image_runs["resnet"]), "--format", "card")  # the CLI writes the same card into model/
    assert out.returncode == 0, out.stderr[-2000:]
    assert (image_runs["resnet"] / runs.MODEL_DIR / "README.md").read_text(encoding="utf-8") == card


@pytest.mark.slow
def test_zip_loads_in_the_pipeline_and_agrees_with_predict(image_runs, tmp_path):
    from transformers import pipeline

    run_dir = image_runs["vit"]
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(export_zip(run_dir)) as zf:
        zf.extractall(folder)
    assert (folder / "README.md").read_text().startswith("---")
    test = bdata.load_prepared(DATASET).splits["test"]
    files = [tmp_path / f"test {k}.png" for k in range(3)]
    for k, f in enumerate(files):
        f.write_bytes(test["image"].iloc[k])
    out = cli("predict", "--model", str(folder), "--precision", "fp32", *map(str, files))
    assert out.returncode == 0, out.stderr[-2000:]
    pipe = pipeline("image-classification", model=str(folder), top_k=None)
    for f, line in zip(files, out.stdout.splitlines(), strict=True):
        rec, theirs = json.loads(line), {d["label"]: d["score"] for d in pipe(Image.open(f))}
        assert rec["scores"] == pytest.approx(theirs, abs=1e-4) and rec["label"] == max(theirs, key=theirs.get)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_predict_explain_writes_a_heat_map_png(image_runs, kind, tmp_path):
    test = bdata.load_prepared(DATASET).splits["test"]
    image = tmp_path / "a shirt.png"
    image.write_bytes(test["image"].iloc[0])
    out = cli("predict", "--model", str(image_runs[kind]), "--precision", "fp32", "--explain", str(image))
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout)
    assert rec["heatmap"] == str(tmp_path / "a shirt.heatmap.png") and rec["target"] == rec["label"]
    assert rec["method"] == ("rollout" if kind == "vit" else "gradcam")  # each model's default
    heat = Image.open(rec["heatmap"])
    assert heat.format == "PNG" and heat.mode == "RGB" and heat.size == (320, 320)
    assert np.asarray(heat).std() > 0  # not a blank picture
    if kind == "vit":
        return  # the flags below are the CLI's, the same for every image model: checked once (each call is a process)
    # --out DIR, a chosen class and method; a text flag that makes no sense for images is refused in one line.
    out = cli("predict", "--model", str(image_runs[kind]), "--explain", "--target", "Bag", "--out", str(tmp_path / "maps"),
              "--method", "integrated_gradients", str(image))
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout)
    assert rec["target"] == "Bag" and Path(rec["heatmap"]) == tmp_path / "maps" / "a shirt.heatmap.png"
    assert rec["method"] == "integrated_gradients"
    assert Path(rec["heatmap"]).is_file()
    bad = cli("predict", "--model", str(image_runs[kind]), "--pair", "x", str(image))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_overlay_blends_the_heat_map_over_the_image():
    from bmcore.explain_images import HEAT_COLOURS, OVERLAY_FLOOR, overlay_image

    grey = np.array([200, 200, 200])
    heat = np.zeros((32, 32))
    heat[:, 16:] = 1.0
    out = np.asarray(overlay_image(Image.new("RGB", (28, 28), (200, 200, 200)), heat, side=64, alpha=1.0))
    assert out.shape == (64, 64, 3)
    assert (out[:, 32:] == HEAT_COLOURS[-1]).all()  # the hottest pixels: the colour alone at alpha 1
    cold = np.round(grey * (1 - OVERLAY_FLOOR) + HEAT_COLOURS[0] * OVERLAY_FLOOR)
    assert (out[:, :32] == cold).all()  # the coldest: mostly the image
    off = np.asarray(overlay_image(Image.new("L", (10, 10), 200), np.ones((4, 4)), side=8, alpha=0.0))
    assert (off == grey).all()  # alpha 0: the image as the model sees it, grayscale as RGB
