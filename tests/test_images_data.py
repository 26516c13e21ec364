"""Image data (bmcore.images, and bmcore.data on image sources): every source shape, each bad-image case, stats and
the CLI, on real Fashion-MNIST images and PNG/JPEG files written from them."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bmcore import data as bdata
from bmcore import images
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError
from bmcore.report import images as rimg

FM = images.FASHION_MNIST_DIR
needs_fashion = pytest.mark.skipif(not (FM / "t10k-images-idx3-ubyte.gz").is_file(),
                                   reason="apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def fm_test() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's 10,000 test images and labels (the real pixels everything below is written from)."""
    if not (FM / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("apt-get install dataset-fashion-mnist")
    return images.read_idx(FM / "t10k-images-idx3-ubyte.gz", 0x803), images.read_idx(FM / "t10k-labels-idx1-ubyte.gz", 0x801)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _class_images(fm_test, classes=(0, 1, 8), per_class=12, start=0):
    """``{class name: [28x28 arrays]}`` of real Fashion-MNIST images."""
    pixels, labels = fm_test
    out = {}
    for c in classes:
        idx = np.flatnonzero(labels == c)[start:start + per_class]
        out[images.FASHION_MNIST_CLASSES[c].replace("/", "-")] = [pixels[i] for i in idx]
    return out


def _write_folder(root: Path, by_class: dict[str, list[np.ndarray]], fmt: str = "PNG") -> None:
    for name, arrays in by_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(arrays):
            ext = "png" if fmt == "PNG" else "jpg"
            (root / name / f"{i:03d}.{ext}").write_bytes(_encode(Image.fromarray(a, "L"), fmt))


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- sources --------------------------------------------------------------------------------


@needs_fashion
def test_builtin_fashion_mnist_reads_its_own_splits_and_pixels(fm_test):
    raw = bdata.load_source("builtin:fashion-mnist")
    assert raw.modality == "image"
    assert {s: len(df) for s, df in raw.frames.items()} == {"train": 60000, "test": 10000}
    test = raw.frames["test"]
    assert list(test.columns) == ["image", "label", "sha256", "path"]
    assert set(test["label"]) == set(images.FASHION_MNIST_CLASSES)
    pixels, labels = fm_test
    for i in (0, 4321, 9999):  # the PNG written by hand decodes to the idx pixels, and hashes as decode_image's
        img = images.decode_image(test["image"].iloc[i])
        assert img.mode == "L" and img.size == (28, 28)
        assert np.array_equal(np.asarray(img), pixels[i])
        assert test["label"].iloc[i] == images.FASHION_MNIST_CLASSES[labels[i]]
        assert test["sha256"].iloc[i] == images.pixel_hash(img)
    ds = bdata.prepare(raw, name="fashion")
    assert ds.modality == "image" and ds.columns.text == ["image"] and ds.columns.label == "label"
    assert len(ds.splits["test"]) == 10000 and len(ds.splits["train"]) + len(ds.splits["validation"]) == 60000
    assert ds.label_names == sorted(images.FASHION_MNIST_CLASSES)  # ordered as text labels are
    assert set(ds.splits["validation"]["label"]) == set(images.FASHION_MNIST_CLASSES)


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(BmcoreError, match="apt-get install dataset-fashion-mnist"):
        images.read_fashion_mnist(tmp_path)


def test_image_folder_is_split_stratified_and_saved_by_name(fm_test, tmp_path):
    root = tmp_path / "clothes"
    by_class = _class_images(fm_test, per_class=20)
    _write_folder(root, by_class)
    (root / "README.txt").write_text("not an image")
    (root / "Bag" / ".DS_Store").write_bytes(b"\0\0")
    assert images.is_image_source(str(root))
    raw = bdata.load_source(str(root))
    assert raw.modality == "image" and not raw.has_splits
    assert any("1 files that are not images" in n for n in raw.notes)
    ds = bdata.prepare(raw, name="clothes")
    assert ds.label_names == sorted(by_class)
    assert {s: len(df) for s, df in ds.splits.items()} == {"train": 48, "validation": 6, "test": 6}
    for split in bdata.SPLITS:
        assert set(ds.splits[split]["label"]) == set(by_class)  # stratified: every class in every split
    first = ds.splits["train"].iloc[0]
    cls, _, _ = first["path"].partition("/")
    assert cls == first["label"] and first["path"].endswith(".png")
    before = bdata.source_fingerprint(str(root))
    (root / "Bag" / "000.png").write_bytes((root / "Bag" / "001.png").read_bytes())
    assert bdata.source_fingerprint(str(root)) != before  # a change inside a class folder is seen (page caches)
    bdata.save_prepared(ds)
    back = bdata.load_prepared("clothes")
    assert back.modality == "image" and back.label_names == ds.label_names
    assert back.splits["test"]["image"].tolist() == ds.splits["test"]["image"].tolist()
    assert json.loads((bdata.dataset_dir("clothes") / "dataset.json").read_text())["modality"] == "image"


def test_split_folders_under_a_wrapping_folder_are_the_splits(fm_test, tmp_path):
    root = tmp_path / "upload"
    _write_folder(root / "data" / "train", _class_images(fm_test, per_class=10), fmt="JPEG")
    _write_folder(root / "data" / "val", _class_images(fm_test, per_class=3, start=10))
    _write_folder(root / "data" / "test", _class_images(fm_test, per_class=3, start=13))
    ds = bdata.prepare(bdata.load_source(str(root)), name="x")
    assert {s: len(df) for s, df in ds.splits.items()} == {"train": 30, "validation": 9, "test": 9}
    assert ds.splits["validation"]["path"].str.startswith("data/val/").all()
    assert images.decode_image(ds.splits["train"]["image"].iloc[0]).mode == "L"  # a grayscale JPEG stays "L"


def test_uploaded_zip_is_read_in_memory_and_nothing_is_written(fm_test, tmp_path, workspace):
    entries = {}
    for split, start in (("train", 0), ("test", 10)):
        for name, arrays in _class_images(fm_test, per_class=8 if split == "train" else 3, start=start).items():
            for i, a in enumerate(arrays):
                entries[f"{split}/{name}/{i}.png"] = _encode(Image.fromarray(a, "L"), "PNG")
    entries["__MACOSX/train/._junk.png"] = b"resource fork"
    data = _zip(entries)
    before = _files(tmp_path)
    ds = bdata.prepare(bdata.load_source("clothes.zip", data=data), name="clothes")
    assert {s: len(df) for s, df in ds.splits.items()} == {"train": 21, "validation": 3, "test": 9}
    assert _files(tmp_path) - before <= {str(workspace.relative_to(tmp_path))}  # nothing extracted anywhere
    assert bdata.suggest_name("clothes.zip") == "clothes"
    (tmp_path / "local.zip").write_bytes(data)  # the same zip as a local path
    assert len(bdata.load_source(str(tmp_path / "local.zip")).frames["train"]) == 24


def test_csv_with_relative_image_paths_and_a_label_column(fm_test, tmp_path):
    by_class = _class_images(fm_test, per_class=10)
    _write_folder(tmp_path / "imgs", by_class)
    rows = [{"file": f"imgs/{c}/{i:03d}.png", "label": c} for c in by_class for i in range(10)]
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    raw = bdata.load_source(str(tmp_path / "index.csv"))
    assert raw.modality == "image" and len(raw.frames["all"]) == 30
    assert raw.frames["all"]["path"].iloc[0] == "imgs/T-shirt-top/000.png"
    ds = bdata.prepare(raw, name="csv")
    assert ds.label_names == sorted(by_class)
    for bad in ("../outside.png", str(tmp_path / "imgs" / "Bag" / "000.png")):
        pd.DataFrame([{"file": bad, "label": "x"}, *rows]).to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(BmcoreError, match="absolute or has '..'"):
            bdata.load_source(str(tmp_path / "bad.csv"))
    outside = tmp_path.parent / f"{tmp_path.name}-outside.png"
    outside.write_bytes(_encode(Image.fromarray(fm_test[0][0], "L"), "PNG"))
    os.symlink(outside, tmp_path / "imgs" / "link.png")
    pd.DataFrame([{"file": "imgs/link.png", "label": "x"}, *rows]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(BmcoreError, match="leads outside the file's folder"):
        bdata.load_source(str(tmp_path / "bad.csv"))
    with pytest.raises(BmcoreError, match="uploaded table cannot reach"):
        bdata.load_source("index.csv", data=(tmp_path / "index.csv").read_bytes())


def test_parquet_with_image_bytes_and_hugging_face_image_structs(fm_test, tmp_path):
    by_class = _class_images(fm_test, per_class=10)
    pngs = [(_encode(Image.fromarray(a, "L"), "PNG"), c) for c, arrays in by_class.items() for a in arrays]
    pd.DataFrame({"img": [p for p, _ in pngs], "category": [c for _, c in pngs]}).to_parquet(tmp_path / "b.parquet")
    raw = bdata.load_source(str(tmp_path / "b.parquet"))
    assert raw.modality == "image" and len(raw.frames["all"]) == 30
    assert set(raw.frames["all"]["label"]) == set(by_class)
    hf = pd.DataFrame({"image": [{"bytes": p, "path": None} for p, _ in pngs], "label": [c for _, c in pngs]})
    hf.to_parquet(tmp_path / "hf.parquet")
    uploaded = bdata.load_source("hf.parquet", data=(tmp_path / "hf.parquet").read_bytes())
    assert uploaded.modality == "image" and uploaded.frames["all"]["sha256"].tolist() == raw.frames["all"]["sha256"].tolist()


# --- bad images -----------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no pixel data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


@pytest.fixture()
def shirt(fm_test) -> Image.Image:
    return Image.fromarray(fm_test[0][1], "L")


def test_refused_files_name_the_file_in_one_line(shirt):
    jpeg = _encode(shirt.convert("RGB").resize((200, 200)), "JPEG")
    cases = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "empty.png": (b"", "empty"),
        "notes.png": (b"these are my notes, not a picture\n" * 3, "not an image"),
        "bomb.png": (_png_header_only(100_000, 100_000), "10,000,000,000 pixels, more than the limit"),
        "big.png": (_png_header_only(10_000, 10_000), "10,000x10,000 pixels, more than the limit of 89,478,485"),
    }
    for name, (data, what) in cases.items():
        with pytest.raises(BmcoreError, match=what) as err:
            images.decode_image(data, name)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_the_pixel_cap_is_checked_from_the_header(monkeypatch, shirt):
    monkeypatch.setenv("BMCORE_MAX_IMAGE_PIXELS", "400")
    with pytest.raises(BmcoreError, match="28x28 pixels, more than the limit of 400"):
        images.decode_image(_encode(shirt, "PNG"), "shirt.png")
    monkeypatch.setenv("BMCORE_MAX_IMAGE_PIXELS", "784")
    assert images.decode_image(_encode(shirt, "PNG"), "shirt.png").size == (28, 28)


def test_modes_are_converted_with_a_notice(shirt, tmp_path):
    rgb = Image.merge("RGB", (shirt, shirt.point(lambda v: 255 - v), shirt))
    cmyk = _encode(rgb.convert("CMYK"), "JPEG", quality=95)
    i16 = Image.frombytes("I;16", shirt.size, (np.asarray(shirt).astype("<u2") * 257).tobytes())
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = pal.getpixel((0, 0))  # the background colour is transparent
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)
    la = shirt.convert("LA")
    cases = {"cmyk.jpg": (cmyk, "RGB"), "deep.png": (_encode(i16, "PNG"), "L"),
             "pal.png": (_encode(pal, "PNG", transparency=pal.info["transparency"]), "RGB"),
             "clear.png": (_encode(rgba, "PNG"), "RGB"), "la.png": (_encode(la, "PNG"), "L"),
             "gray.png": (_encode(shirt, "PNG"), "L")}
    for name, (data, mode) in cases.items():
        img, conversion, _ = images.decode_one(data, name)
        assert img.mode == mode, name
        assert (conversion is None) == (name == "gray.png"), name
    deep = np.asarray(images.decode_image(cases["deep.png"][0]))
    assert np.array_equal(deep, np.asarray(shirt))  # 16-bit scaled back to the 8-bit pixels exactly
    assert np.asarray(images.decode_image(cases["clear.png"][0])).min() == 255  # fully transparent: white
    corner = images.decode_image(cases["pal.png"][0]).getpixel((0, 0))
    assert corner == (255, 255, 255)
    cyan = np.asarray(images.decode_image(cmyk)).astype(int)
    assert np.abs(cyan - np.asarray(rgb).astype(int)).mean() < 12  # CMYK JPEG back to about the same colours
    root = tmp_path / "mixed"
    for i, (name, (data, _)) in enumerate(cases.items()):
        (root / ("a" if i % 2 else "b")).mkdir(parents=True, exist_ok=True)
        (root / ("a" if i % 2 else "b") / name).write_bytes(data)
    notes = bdata.load_source(str(root)).notes
    for words in ("CMYK images converted to RGB", "16-bit grayscale images converted to 8-bit",
                  "palette images with transparency", "RGBA images converted", "grayscale images with transparency"):
        assert any(words in n for n in notes), words


def test_exif_rotation_is_applied(fm_test):
    tall = Image.fromarray(np.repeat(fm_test[0][2], 2, axis=0), "L").convert("RGB")  # 28 wide, 56 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img, _, turned = images.decode_one(_encode(tall, "JPEG", exif=exif.tobytes()), "phone.jpg")
    assert turned and img.size == (56, 28)
    assert images.decode_image(_encode(tall, "JPEG"), "plain.jpg").size == (28, 56)


def test_a_bad_file_in_a_folder_stops_the_read_naming_it(fm_test, tmp_path):
    root = tmp_path / "photos"
    _write_folder(root, _class_images(fm_test, per_class=4))
    (root / "Bag" / "broken.png").write_text("not really a png")
    with pytest.raises(BmcoreError, match=r"Bag/broken.png is not an image"):
        bdata.load_source(str(root))
    assert cli_main(["data", "inspect", str(root)]) == 2


def test_unsafe_zips_are_refused_before_anything_is_decoded(shirt, monkeypatch):
    png = _encode(shirt, "PNG")
    ok = {"Bag/1.png": png, "Coat/1.png": png}
    for bad in ("../evil/x.png", "/etc/x.png", "Bag/../../x.png", "C:/x.png"):
        with pytest.raises(BmcoreError, match="unsafe path"):
            images.read_image_zip(_zip({**ok, bad: png}), "up.zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Bag/1.png", png)
        link = zipfile.ZipInfo("Bag/2.png")
        link.external_attr = (0o120777 << 16)  # a symbolic link entry, pointing at /etc/passwd
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(BmcoreError, match="symbolic link"):
        images.read_image_zip(buf.getvalue(), "up.zip")
    bomb = _zip({**ok, "Bag/zeros.png": b"\0" * (3 * 1024 * 1024)})
    assert len(bomb) < 100_000
    monkeypatch.setenv("BMCORE_MAX_UNPACKED_MB", "2")
    with pytest.raises(BmcoreError, match="unpacks to 3 MB, more than the limit of 2 MB"):
        images.read_image_zip(bomb, "bomb.zip")
    with pytest.raises(BmcoreError, match="not a readable zip"):
        images.read_image_zip(b"PK but not really", "fake.zip")


# --- stats ----------------------------------------------------------------------------------


def test_stats_count_duplicates_within_and_across_splits(fm_test, tmp_path):
    root = tmp_path / "leaky"
    _write_folder(root / "train", _class_images(fm_test, per_class=10))
    _write_folder(root / "test", _class_images(fm_test, per_class=3, start=10))
    train_bag = root / "train" / "Bag" / "000.png"
    same = Image.open(train_bag)
    same.save(root / "test" / "Bag" / "copy.bmp")  # the same pixels in another format, in test: leakage
    same.save(root / "train" / "Bag" / "again.png", compress_level=9)  # within train
    same.save(root / "test" / "Trouser" / "mislabelled.png")  # and once more, with another label
    ds = bdata.prepare(bdata.load_source(str(root)), name="leaky", seed=1)
    stats = bdata.compute_stats(ds)
    assert stats["modality"] == "image" and stats["modes"] == {"L": len(pd.concat(ds.splits.values()))}
    assert stats["image_sizes"]["width"] == {"min": 28.0, "median": 28.0, "max": 28.0}
    assert stats["common_sizes"] == [{"width": 28, "height": 28, "images": sum(stats["rows"].values())}]
    assert stats["channels"] == {"L": 1}
    where = {s: set(df["path"]) for s, df in ds.splits.items()}
    in_train = sum(p in where[s] for p in ("train/Bag/000.png", "train/Bag/again.png") for s in ("train", "validation"))
    assert in_train == 2  # both train copies stay in train or validation
    assert stats["leakage"]["train-test"] + stats["leakage"]["validation-test"] >= 1
    assert stats["duplicate_groups"] == 1 and stats["leaked_groups"] == 1 and stats["conflicting_labels"] == 1
    dups = images.duplicates_frame(ds)
    row = dups.iloc[0]
    assert row["copies"] == 4 and row["across_splits"] and row["conflicting_labels"]
    assert "test:test/Bag/copy.bmp" in row["paths"] and "test:test/Trouser/mislabelled.png" in row["paths"]
    assert any("leak" in w or "test" in w for w in bdata.warnings_for(stats))
    dropped = bdata.drop_duplicates(ds)
    assert sum(dropped.values()) == 3  # the train/validation copies and the repeat in test
    assert images.duplicates_frame(ds).empty


def test_sample_grid_and_size_tables(fm_test, tmp_path):
    root = tmp_path / "sizes"
    by_class = _class_images(fm_test, per_class=12)
    _write_folder(root, by_class)
    wide = Image.fromarray(fm_test[0][0], "L").resize((56, 28))
    wide.save(root / "Bag" / "wide.png")
    ds = bdata.prepare(bdata.load_source(str(root)), name="sizes")
    grid = rimg.sample_images(ds, per_class=3)
    assert list(grid.columns) == ["label", "image", "path"]
    assert grid["label"].tolist() == [n for n in ds.label_names for _ in range(3)]
    assert all(images.decode_image(b).size in {(28, 28), (56, 28)} for b in grid["image"])
    stats = bdata.compute_stats(ds)
    assert stats["image_sizes"]["aspect"]["max"] == 2.0 and stats["image_sizes"]["distinct_sizes"] == 2
    table = rimg.common_sizes_frame(stats)
    assert table.iloc[0].tolist() == [28, 28, 36] and table.iloc[1].tolist() == [56, 28, 1]
    sizes = rimg.size_frame(ds)
    assert len(sizes) == 37 and set(sizes.columns) == {"split", "label", "width", "height", "mode", "aspect"}


# --- CLI ------------------------------------------------------------------------------------


def test_cli_inspects_and_prepares_image_sources(fm_test, tmp_path, capsys):
    root = tmp_path / "clothes"
    _write_folder(root, _class_images(fm_test, per_class=10))
    assert cli_main(["data", "prepare", str(root), "--name", "clothes"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modality"] == "image" and out["splits"] == {"train": 24, "validation": 3, "test": 3}
    assert bdata.load_prepared("clothes").stats["modes"] == {"L": 30}
    zipped = tmp_path / "clothes.zip"
    zipped.write_bytes(_zip({p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.png")}))
    assert cli_main(["data", "inspect", str(zipped)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["modality"] == "image" and shown["rows_total"] == 30 and shown["duplicate_groups"] == 0
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_zip({"../x/1.png": b"x", "a/1.png": b"x"}))
    for argv, what in ((["data", "inspect", str(bad)], "unsafe path"),
                       (["data", "inspect", str(tmp_path / "missing.zip")], "does not exist"),
                       (["data", "prepare", str(root), "--name", "c2", "--label-column", "x"], "image source")):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert what in err and err.count("\n") == 1, err


@pytest.mark.slow
@needs_fashion
def test_cli_prepares_fashion_mnist(capsys):
    assert cli_main(["data", "prepare", "builtin:fashion-mnist", "--name", "fashion"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"]["test"] == 10000 and sum(out["splits"].values()) == 70000
    ds = bdata.load_prepared("fashion")
    assert ds.modality == "image" and ds.stats["image_sizes"]["distinct_sizes"] == 1


def test_fashion_mnist_is_installed_by_every_deployment_route():
    root = Path(__file__).resolve().parents[1]
    assert "dataset-fashion-mnist" in (root / "packages.txt").read_text().split()  # Spaces, Community Cloud
    docker = (root / "Dockerfile").read_text()
    assert "COPY packages.txt ." in docker and "xargs apt-get install -y --no-install-recommends < packages.txt" in docker
    assert "missing+=(dataset-fashion-mnist)" in (root / "scripts" / "test.sh").read_text()


@pytest.mark.slow
def test_image_column_is_linear_in_the_columns():
    """30,000 columns (issue 26): the sort key once called list.index per column, quadratic (over 120 s in `data
    inspect`); now the first rows are read once. The image column is found last, also past empty and numeric ones."""
    import time

    n = 30_000
    wide = pd.DataFrame(np.full((8, n), "7", dtype=object), columns=[f"c{i}" for i in range(n)])
    wide["empty"] = None
    wide["count"] = np.arange(8)
    wide["picture"] = [f"cats/{i}.png" for i in range(8)]
    started = time.perf_counter()
    assert images.image_column(wide) == "picture"
    assert time.perf_counter() - started < 20  # about 2 s on a loaded 2-core machine; the old code took minutes
    assert images.image_column(wide.drop(columns="picture")) is None
    late = pd.DataFrame({"text": ["a b"] * 80, "img": [None] * 60 + ["x.jpg"] * 20})  # empty in the first rows
    assert images.image_column(late) == "img"
    mixed = pd.DataFrame({"img": ["x.jpg"] * 50 + ["not an image"] * 10})  # the first 50 values decide, as before
    assert images.image_column(mixed) == "img"
