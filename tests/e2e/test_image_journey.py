"""The image journey in a real browser: upload a zip of Fashion-MNIST class folders on the Data page, train the tiny
ResNet on it from the Train page, read the Evaluate page (tiles, a confusion cell's thumbnails, the error gallery)
and upload an image in the Playground. Screenshots in test-artifacts/e2e-images/ (look at them)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _server import choose, fill, go, idle, need_chromium, open_app, shot, train_to_the_end, upload
from conftest import ROOT

from bmcore import images as bimg

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not (bimg.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                                  reason="Debian's dataset-fashion-mnist is not installed")]

ARTIFACTS = ROOT / "test-artifacts" / "e2e-images"
CLASSES = {1: "Trouser", 7: "Sneaker", 8: "Bag"}


def garments_zip(path: Path) -> tuple[Path, bytes]:
    """A zip of class folders (train/ 40 and test/ 12 real Fashion-MNIST images a class); and one more image."""
    folder = bimg.FASHION_MNIST_DIR
    pixels = bimg.read_idx(folder / bimg.FASHION_MNIST_FILES["test"][0], 0x803)
    labels = bimg.read_idx(folder / bimg.FASHION_MNIST_FILES["test"][1], 0x801)
    with zipfile.ZipFile(path, "w") as zf:
        for k, name in CLASSES.items():
            for i, p in enumerate(pixels[np.flatnonzero(labels == k)[:52]]):
                zf.writestr(f"garments/{'train' if i < 40 else 'test'}/{name}/{i:02d}.png", bimg.gray_png(p))
    return path, bimg.gray_png(pixels[np.flatnonzero(labels == 7)[60]])


def test_image_journey(workspace: Path, tiny_resnet: Path, tmp_path: Path) -> None:
    need_chromium()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    zipped, sneaker = garments_zip(tmp_path / "garments.zip")
    (tmp_path / "sneaker.png").write_bytes(sneaker)

    with open_app(workspace) as page:

        # 1. Data: the zip is read as an image dataset, with its stats and a sample grid; saved by name.
        upload(page, zipped)
        body = page.inner_text("body")
        assert "156" in body and "Trouser" in body and "Every image is 28x28 pixels" in body
        page.locator('[data-testid="stImage"]').nth(2).wait_for()  # the sample grid (drawn last: wait, not count)
        fill(page, "Name", "garments")
        page.get_by_role("button", name="Save").click()
        idle(page)
        page.get_by_text("Saved 'garments'").wait_for()
        shot(page, ARTIFACTS, "1-data-images")

        # 2. Train: image settings instead of text ones; a short run of the tiny ResNet.
        go(page, "Train")
        choose(page, "Prepared dataset", "garments")
        page.get_by_text("Local folder", exact=True).click()
        idle(page)
        fill(page, "Path to a save_pretrained folder (safetensors weights)", str(tiny_resnet))
        page.get_by_text("steps", exact=True).first.click()
        idle(page)
        fill(page, "Steps", "30")
        body = page.inner_text("body")
        assert page.get_by_label("max_seq_length (tokens)", exact=True).count() == 0 and "image_size (pixels" in body
        shot(page, ARTIFACTS, "2-train-settings")
        train_to_the_end(page, workspace)
        shot(page, ARTIFACTS, "3-train-finished")

        # 3. Evaluate: the tiles, the pixel baseline, thumbnails in the error gallery.
        go(page, "Evaluate")
        page.get_by_role("heading", name="How good is it?").first.wait_for()
        idle(page, timeout=180)
        body = page.inner_text("body")
        assert "Accuracy" in body and "pixel" in body.lower()
        assert page.locator('[data-testid="stImage"]').count() >= 1  # thumbnails of images
        shot(page, ARTIFACTS, "4-evaluate-images")

        # 4. Playground: upload an image; every class's probability and the explanation over the image.
        go(page, "Playground")
        idle(page, timeout=180)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(tmp_path / "sneaker.png"))
        idle(page, timeout=180)
        page.locator(".js-plotly-plot").first.wait_for()
        body = page.inner_text("body")
        assert "Prediction" in body and all(name in body for name in CLASSES.values())
        assert page.locator('[data-testid="stImage"]').count() >= 2  # the model's view and the heat map over it
        shot(page, ARTIFACTS, "5-playground-image")
