"""Issue 27's browser journey, a small image zip from upload to Playground: the Data page reads a zip of 90 real images
in three class folders (Fashion-MNIST garments, with a real photo planted among the bags and a few labels flipped),
label quality flags the photo and the review drops it into a new version; the built-in EfficientNet-Lite0 trains on
it; the Evaluate page scores a separate zip whole; the Playground explains a new image with Grad-CAM, drawn over it.
Screenshots in test-artifacts/e2e-small-images/ (look at them)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from _server import (
    choose,
    fill,
    go,
    idle,
    need_chromium,
    open_app,
    shot,
    train_to_the_end,
    upload,
    wait_job_result,
)
from conftest import ROOT
from test_quality_journey import pick_row

from bmcore import data as bdata
from bmcore import images as bimg
from bmcore import quality as bq
from bmcore.report import quality as rq

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not (bimg.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                                  reason="Debian's dataset-fashion-mnist is not installed")]

ARTIFACTS = ROOT / "test-artifacts" / "e2e-small-images"
CLASSES = {1: "Trouser", 7: "Sneaker", 8: "Bag"}
PHOTO = "china.jpg"  # scikit-learn's real photo of a temple, planted among the bags: an outlier
PER_CLASS, EVAL_PER_CLASS, FLIPS = 30, 15, 3


def fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = bimg.FASHION_MNIST_DIR
    return (bimg.read_idx(folder / bimg.FASHION_MNIST_FILES[split][0], 0x803),
            bimg.read_idx(folder / bimg.FASHION_MNIST_FILES[split][1], 0x801))


def zips(tmp: Path) -> tuple[Path, Path, Path]:
    """The training zip (30 train-split images a class, 3 of them in a wrong class folder, the photo among the bags),
    a separate zip to evaluate (15 test-split images a class) and one new sneaker image for the Playground."""
    import io

    from PIL import Image
    from sklearn.datasets import load_sample_images

    pixels, labels = fashion("train")
    names = list(CLASSES.values())
    flipped = set(np.random.default_rng(0).choice(len(names) * PER_CLASS, FLIPS, replace=False).tolist())
    with zipfile.ZipFile(tmp / "garments.zip", "w") as zf:
        for c, (k, name) in enumerate(CLASSES.items()):
            for i, j in enumerate(np.flatnonzero(labels == k)[:PER_CLASS]):
                folder = names[(c + 1) % len(names)] if c * PER_CLASS + i in flipped else name
                zf.writestr(f"garments/{folder}/{j}.png", bimg.gray_png(pixels[j]))
        photo = io.BytesIO()
        Image.fromarray(load_sample_images().images[0]).resize((160, 120)).save(photo, "JPEG", quality=90)
        zf.writestr(f"garments/Bag/{PHOTO}", photo.getvalue())
    pixels, labels = fashion("test")
    with zipfile.ZipFile(tmp / "new-garments.zip", "w") as zf:
        for k, name in CLASSES.items():
            for j in np.flatnonzero(labels == k)[:EVAL_PER_CLASS]:
                zf.writestr(f"{name}/{j}.png", bimg.gray_png(pixels[j]))
    sneaker = tmp / "sneaker.png"
    sneaker.write_bytes(bimg.gray_png(pixels[np.flatnonzero(labels == 7)[EVAL_PER_CLASS + 5]]))
    return tmp / "garments.zip", tmp / "new-garments.zip", sneaker


def test_small_image_zip_quality_train_evaluate_and_grad_cam(workspace: Path, tmp_path: Path) -> None:
    need_chromium()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    train_zip, eval_zip, sneaker = zips(tmp_path)
    with open_app(workspace) as page:

        # 1. Data: the zip is an image dataset; saved by name.
        upload(page, train_zip)
        fill(page, "Name", "garments")
        page.get_by_role("button", name="Save").click()
        idle(page)
        page.get_by_text("Saved 'garments'").wait_for()
        shot(page, ARTIFACTS, "1-data")

        # 2. Label quality on the images: the planted photo is flagged (an outlier); drop it, save a new version.
        page.get_by_text("Label quality: find the labels that are wrong").click()
        idle(page)
        choose(page, "Prepared dataset", "garments")
        page.get_by_role("button", name="Find label issues").click()
        wait_job_result(page, "Look mislabeled", workspace)
        idle(page)
        flags = rq.flags_frame(bq.load_quality("garments"))
        files = [PurePosixPath(t).name for t in flags["text"]]
        assert PHOTO in files, files
        photo = files.index(PHOTO)
        assert "outlier" in flags["issues"].iloc[photo]
        pick_row(page, photo)
        page.get_by_text("drop", exact=True).first.click()
        idle(page)
        page.get_by_role("button", name="Record").click()
        idle(page)
        page.get_by_text("1 decisions: 0 keep, 0 relabel, 1 drop").wait_for()
        shot(page, ARTIFACTS, "2-quality-flagged-images")
        page.get_by_role("button", name="Save as a new version").click()
        page.get_by_text("Saved the reviewed dataset as 'garments-v2'").wait_for()
        v2 = bdata.load_prepared("garments-v2")
        assert v2.modality == "image" and v2.version["dropped"] == 1
        assert all(PurePosixPath(p).name != PHOTO for s in bdata.SPLITS for p in v2.splits[s]["path"])

        # 3. Train the built-in EfficientNet-Lite0 (the image default) on the reviewed version, by steps.
        go(page, "Train")
        choose(page, "Prepared dataset", "garments-v2")
        page.get_by_text("steps", exact=True).first.click()
        idle(page)
        fill(page, "Steps", "20")
        assert "builtin:efficientnet-lite0" in page.inner_text("body")
        train_to_the_end(page, workspace)
        shot(page, ARTIFACTS, "3-trained")

        # 4. Evaluate: a separate zip of new images, scored whole as a background job.
        go(page, "Evaluate")
        idle(page, timeout=180)
        page.get_by_text("Upload a file", exact=True).last.click()
        idle(page)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').last.set_input_files(str(eval_zip))
        idle(page, timeout=180)
        page.get_by_role("button", name="Evaluate").click()
        wait_job_result(page, "Baseline accuracy", workspace)
        idle(page, timeout=180)
        body = page.inner_text("body")
        assert f"{EVAL_PER_CLASS * len(CLASSES)} examples of" in body and "all examples" not in body
        # The zip has no train split: the pixel baseline is trained on the run's own dataset, and says so.
        assert "--baseline-train garments-v2" in body and "no train split" not in body
        # Thumbnails: the error browser shows the mistakes; a model that makes none on these few images (it happens, at
        # 96 px in fp32) shows them all.
        page.get_by_text("All examples", exact=True).first.click()
        idle(page)
        assert page.locator('[data-testid="stImage"]').count() >= 1
        shot(page, ARTIFACTS, "4-evaluate-new-zip")

        # 5. Playground: a new image, its prediction, and Grad-CAM's region drawn over it (the method named).
        go(page, "Playground")
        idle(page, timeout=180)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(sneaker))
        idle(page, timeout=180)
        page.get_by_text("Grad-CAM").first.wait_for()
        assert page.locator('[data-testid="stImage"]').count() >= 2  # the model's view and the map over it
        assert all(name in page.inner_text("body") for name in CLASSES.values())
        shot(page, ARTIFACTS, "5-playground-grad-cam")
