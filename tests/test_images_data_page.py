"""The Data page on image sources through AppTest: built-in Fashion-MNIST, an uploaded zip of class folders with a
duplicate across splits, and zips the engine refuses (an unsafe path, a corrupt, empty or non-image file)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from PIL import Image
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore import images as bimg
from bmcore.images import fashion_mnist

TIMEOUT = 180
CLASSES = {0: "T-shirt", 1: "Trouser", 8: "$Bag$"}  # "$Bag$": a class name that Markdown would typeset as a formula


def open_page(kind: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["data_kept"] = {"data_source_kind": kind}
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table(at: AppTest, first_column: str):
    return next(d.value for d in at.dataframe if list(d.value.columns)[:1] == [first_column])


@pytest.fixture(scope="module")
def pngs() -> dict[str, list[bytes]]:
    """20 real Fashion-MNIST test images of each of three classes, as PNG files."""
    folder = bimg.FASHION_MNIST_DIR
    pixels = bimg.read_idx(folder / bimg.FASHION_MNIST_FILES["test"][0], 0x803)
    labels = bimg.read_idx(folder / bimg.FASHION_MNIST_FILES["test"][1], 0x801)
    return {name: [bimg.gray_png(p) for p in pixels[np.flatnonzero(labels == k)[:20]]] for k, name in CLASSES.items()}


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def clothes_zip(pngs) -> bytes:
    """train/ (15 per class) and test/ (5 per class), plus one train image copied into test: leakage."""
    files = {f"clothes/{'train' if i < 15 else 'test'}/{name}/{i:02d}.png": png
             for name, images in pngs.items() for i, png in enumerate(images)}
    files["clothes/test/Trouser/copy-of-03.png"] = pngs["Trouser"][3]
    for i in range(20):  # the bags in colour and twice as wide: two sizes and two modes
        bag = Image.open(io.BytesIO(pngs["$Bag$"][i])).convert("RGB").resize((56, 28))
        files[f"clothes/{'train' if i < 15 else 'test'}/$Bag$/{i:02d}.png"] = bimg.encode_png(bag)
    return zip_of(files)


@pytest.mark.skipif(not (bimg.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.slow
def test_fashion_mnist_shows_stats_samples_and_saves():
    at = open_page("Built-in: Fashion-MNIST")
    assert not at.exception and not at.error
    assert metrics(at) == {"Images": "70,000", "Classes": "10", "Train": "53,333", "Validation": "6,667",
                           "Test": "10,000", "Duplicate groups": "0"}
    assert any("its own train (60,000) and test (10,000) splits" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 1  # images per class; one size: tables instead of a one-bar chart
    assert any(m.value == "**Every image is 28x28 pixels**" for m in at.markdown)
    grid = at.get("image")
    assert len(grid) == 10  # one row of thumbnails per class
    assert [len(g.proto.imgs) for g in grid] == [8] * 10
    names = [m.value for m in at.markdown]
    assert all(n in names for n in ("T-shirt/top", "Ankle boot"))
    # text-only parts are gone: no token lengths, tokenizer or column pickers
    keys = {w.key for w in at.text_input} | {w.key for w in at.number_input} | {w.key for w in at.selectbox}
    assert "data_tokenizer" not in keys and "data_max_seq_length" not in keys
    assert not any(k.startswith(("data_text_", "data_label_")) for k in keys if k)
    assert any("label-quality check above finds images whose label looks wrong, outliers" in c.value for c in at.caption)
    assert at.code[0].value == "python -m bmcore data prepare builtin:fashion-mnist --name fashion-mnist"

    at.button(key="data_save").click().run()
    assert not at.exception and not at.error
    saved = bdata.load_prepared("fashion-mnist")
    assert saved.modality == "image" and saved.stats["rows_total"] == 70000 and len(saved.label_names) == 10
    at.run()
    assert at.selectbox(key="quality_dataset").options == ["fashion-mnist"]  # the label check takes images too


def test_uploaded_zip_leakage_is_dropped_and_saved(clothes_zip):
    at = open_page("Upload a file")
    at.file_uploader(key="data_upload").upload("clothes.zip", clothes_zip, "application/zip").run()
    assert not at.exception and not at.error
    m = metrics(at)
    assert (m["Images"], m["Classes"], m["Test"], m["Duplicate groups"]) == ("61", "3", "16", "1")
    assert any(w.value.startswith("images shared across splits (leakage") for w in at.warning)
    modes = table(at, "mode")
    assert dict(zip(modes["mode"], modes["images"], strict=True)) == {"L": 41, "RGB": 20}
    sizes = table(at, "width")
    assert sorted(zip(sizes["width"], sizes["height"], sizes["images"], strict=True)) == [(28, 28, 41), (56, 28, 20)]
    assert len(at.get("plotly_chart")) == 2  # images per class, aspect ratios
    grid = at.get("image")
    assert len(grid) == 3
    assert "\\$Bag\\$" in [m.value for m in at.markdown]  # a class name is text, not a formula
    key = bdata.source_fingerprint("clothes.zip", clothes_zip)[:8]
    assert at.text_input(key=f"data_name_{key}").value == "clothes"
    assert at.code[0].value == "python -m bmcore data prepare clothes.zip --name clothes"

    at.button(key="data_drop_duplicates").click().run()
    assert not at.exception and not at.error
    assert not any("leakage" in w.value for w in at.warning)
    assert metrics(at)["Images"] == "60" and metrics(at)["Test"] == "16"  # test keeps its rows
    assert any(s.value.startswith("Dropped 1 duplicate rows") for s in at.success)
    assert at.code[0].value.endswith("--drop-duplicates")
    at.button(key="data_save").click().run()
    assert not at.exception and not at.error
    saved = bdata.load_prepared("clothes")
    assert saved.modality == "image" and saved.stats["rows_total"] == 60
    assert saved.stats["leaked_groups"] == 0 and not any(saved.stats["leakage"].values())
    assert sorted(saved.label_names) == sorted(CLASSES.values())


@pytest.mark.parametrize(("entry", "content", "message"), [
    ("../evil.png", None, "evil.zip has an entry with an unsafe path ('../evil.png': absolute or with '..'); "
                          "zip the class folders themselves"),
    ("Bag/broken.png", "half", "is truncated: not a readable image"),
    ("Bag/empty.png", b"", "Bag/empty.png is empty (0 bytes), not an image"),
    ("Bag/notes.png", b"just some text, not a picture", "Bag/notes.png is not an image"),
])
def test_bad_zip_is_one_error_and_nothing_saved(pngs, entry, content, message):
    files = {f"{name}/{i}.png": png for name, images in pngs.items() for i, png in enumerate(images[:5])}
    good = pngs["Trouser"][0]
    files[entry] = good if content is None else good[:len(good) // 2] if content == "half" else content
    at = open_page("Upload a file")
    at.file_uploader(key="data_upload").upload("evil.zip", zip_of(files), "application/zip").run()
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value.replace("\\", "")
    assert "Traceback" not in at.error[0].value and "\n" not in at.error[0].value
    assert not at.metric and not [b for b in at.button if b.key == "data_save"]
    assert not bdata.list_prepared()


def test_local_image_folder(clothes_zip, tmp_path):
    with zipfile.ZipFile(io.BytesIO(clothes_zip)) as zf:
        zf.extractall(tmp_path)
    folder = str(tmp_path / "clothes")
    at = open_page("Local file or folder")
    at.text_input(key="data_path").input(folder).run()
    assert not at.exception and not at.error
    assert metrics(at)["Images"] == "61" and len(at.get("image")) == 3
    assert at.code[0].value == f"python -m bmcore data prepare {folder} --name clothes"


def test_uploaded_parquet_with_image_bytes(pngs):
    rows = [{"picture": png, "class": name} for name, images in pngs.items() for png in images]
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf, index=False)
    at = open_page("Upload a file")
    at.file_uploader(key="data_upload").upload("shop.parquet", buf.getvalue(), "application/octet-stream").run()
    assert not at.exception and not at.error
    assert any(i.value == "shop.parquet: images from column 'picture', classes from 'class'" for i in at.info)
    m = metrics(at)
    assert (m["Images"], m["Classes"], m["Duplicate groups"]) == ("60", "3", "0")
    assert len(at.get("image")) == 3


def test_fashion_mnist_without_the_debian_package(tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_DIR", tmp_path)
    st.cache_data.clear()  # another test may have read the real files
    at = open_page("Built-in: Fashion-MNIST")
    assert not at.exception
    assert [e.value.replace("\\", "") for e in at.error] == [
        f"builtin:fashion-mnist needs the Debian package dataset-fashion-mnist ({tmp_path}/train-images-idx3-ubyte.gz "
        "is missing): apt-get install dataset-fashion-mnist"]
    assert not at.metric and not bdata.list_prepared()
