"""bmcore.data on real data: every source format, column detection, splits, stats, saving, and malformed files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from bmcore import data as bdata
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError
from bmcore.models import load_tokenizer
from bmcore.report import data as rdata
from bmcore.workspace import datasets_dir

BBC_COUNTS = {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}


@pytest.fixture(scope="module")
def sms(shared_data: Path) -> pd.DataFrame:
    """The SMS spam collection as read by pandas (text, label: ham/spam)."""
    return pd.read_csv(shared_data / "sms_spam" / "all.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def emotion_rows(shared_data: Path) -> pd.DataFrame:
    """300 real rows of the emotion validation split (6 classes)."""
    return pd.read_csv(shared_data / "emotion" / "val.csv", dtype=str, keep_default_na=False).head(300)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("builtin:minilm")


# --- source formats -----------------------------------------------------------------------


def _write(df: pd.DataFrame, path: Path) -> Path:
    kind = bdata.FILE_TYPES[path.suffix]
    if kind == "csv":
        df.to_csv(path, index=False)
    elif kind == "tsv":
        df.to_csv(path, index=False, sep="\t")
    elif kind == "json":
        df.to_json(path, orient="records", force_ascii=False)
    elif kind == "jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_excel(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet", ".xlsx"])
def test_every_file_format_reads_the_same_rows(suffix, emotion_rows, tmp_path):
    path = _write(emotion_rows, tmp_path / f"emotion{suffix}")
    raw = bdata.load_source(str(path))
    df = raw.frames["all"]
    assert not raw.has_splits
    assert list(df.columns) == ["text", "label"]
    assert df["text"].tolist() == emotion_rows["text"].tolist()
    assert df["label"].tolist() == emotion_rows["label"].tolist()
    ds = bdata.prepare(raw, use_source_splits=True, seed=1)
    assert ds.label_names == sorted(emotion_rows["label"].unique())
    assert sum(len(ds.splits[s]) for s in bdata.SPLITS) == len(emotion_rows)
    # An upload arrives as a name plus bytes, and reads the same.
    up = bdata.load_source(path.name, data=path.read_bytes())
    assert up.frames["all"]["text"].tolist() == emotion_rows["text"].tolist()


def test_folder_with_split_files_sst2(shared_data):
    raw = bdata.load_source(str(shared_data / "sst2"))
    assert set(raw.frames) == {"train", "validation"}  # dev.csv is the validation split
    dev = pd.read_csv(shared_data / "sst2" / "dev.csv", dtype=str, keep_default_na=False)
    ds = bdata.prepare(raw, seed=3)
    assert ds.label_names == ["negative", "positive"]
    # Scored on the benchmark's dev split, as published results are; validation is carved from train.
    assert ds.splits["test"]["text"].tolist() == dev["text"].tolist()
    n_train = len(raw.frames["train"]) - ds.dropped_empty["train"]
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == n_train
    assert len(ds.splits["validation"]) == pytest.approx(n_train / 9, abs=1)  # 10% of 90%: 0.1 of train+validation
    assert any("validation split is the test split" in n for n in ds.notes)


def test_folder_with_all_three_splits_emotion(shared_data):
    ds = bdata.prepare(bdata.load_source(str(shared_data / "emotion")))
    assert {s: len(ds.splits[s]) for s in bdata.SPLITS} == {"train": 16000, "validation": 2000, "test": 2000}
    assert ds.label_names == ["anger", "fear", "joy", "love", "sadness", "surprise"]


def test_builtin_bbc_news():
    raw = bdata.load_source("builtin:bbc-news")
    df = raw.frames["all"]
    assert len(df) == 2225
    assert df["label"].value_counts().to_dict() == BBC_COUNTS
    assert bdata.detect_columns(df) == bdata.Columns(["text"], "label")  # the body, not the title


# --- columns and labels -------------------------------------------------------------------


def test_detects_columns_under_other_names(emotion_rows):
    df = emotion_rows.rename(columns={"text": "msg", "label": "y_class"}).assign(id=range(len(emotion_rows)))
    assert bdata.detect_columns(df) == bdata.Columns(["msg"], "y_class")
    df = emotion_rows.rename(columns={"text": "review", "label": "sentiment"})
    assert bdata.detect_columns(df) == bdata.Columns(["review"], "sentiment")


def test_detects_text_pairs(emotion_rows, tmp_path):
    n = len(emotion_rows) // 2
    pairs = pd.DataFrame({"premise": emotion_rows["text"][:n].tolist(), "hypothesis": emotion_rows["text"][n:2 * n].tolist(),
                          "label": ["same" if a == b else "different"
                                    for a, b in zip(emotion_rows["label"][:n], emotion_rows["label"][n:2 * n], strict=True)]})
    raw = bdata.load_source(str(_write(pairs, tmp_path / "pairs.csv")))
    cols = bdata.detect_columns(raw.frames["all"])
    assert cols == bdata.Columns(["premise", "hypothesis"], "label")
    ds = bdata.prepare(raw, columns=cols)
    assert ds.is_pair
    assert list(ds.splits["train"].columns) == ["text", "text_pair", "label", bdata.FILE_ROW]
    # Each row keeps its row in the file (from 1, after the header), whatever split it landed in.
    back = pd.concat(ds.splits.values()).set_index(bdata.FILE_ROW).sort_index()
    assert back.index.tolist() == list(range(1, n + 1))
    assert back["text"].tolist() == pairs["premise"].tolist()


def test_integer_labels_are_kept_as_names(shared_data, tmp_path):
    dev = pd.read_csv(shared_data / "sst2" / "dev.csv")
    dev["label"] = (dev["label"] == "positive").astype("int64")
    raw = bdata.load_source(str(_write(dev, tmp_path / "sst2_ids.parquet")))
    ds = bdata.prepare(raw)
    assert ds.label_names == ["0", "1"]
    counts = pd.concat(ds.splits.values())["label"].value_counts().to_dict()
    assert counts == {"1": 444, "0": 428}


def test_user_columns_override_detection(sms):
    raw = bdata.RawData("sms", {"all": sms.rename(columns={"label": "kind"}).assign(category=sms["label"])})
    ds = bdata.prepare(raw, columns=bdata.Columns(["text"], "category"))
    assert ds.label_names == ["ham", "spam"]


# --- splits -------------------------------------------------------------------------------


def test_stratified_splits_are_reproducible_and_keep_proportions(sms):
    raw = bdata.RawData("sms", {"all": sms})
    a = bdata.prepare(raw, use_source_splits=False, ratios=(0.7, 0.15, 0.15), seed=7)
    b = bdata.prepare(raw, use_source_splits=False, ratios=(0.7, 0.15, 0.15), seed=7)
    c = bdata.prepare(raw, use_source_splits=False, ratios=(0.7, 0.15, 0.15), seed=8)
    for s in bdata.SPLITS:
        pd.testing.assert_frame_equal(a.splits[s], b.splits[s])
    assert a.splits["test"]["text"].tolist() != c.splits["test"]["text"].tolist()
    total = sum(len(a.splits[s]) for s in bdata.SPLITS)
    assert total == len(sms)
    spam_share = (sms["label"] == "spam").mean()
    for s, ratio in zip(bdata.SPLITS, (0.7, 0.15, 0.15), strict=True):
        df = a.splits[s]
        assert len(df) / total == pytest.approx(ratio, abs=0.01)
        assert (df["label"] == "spam").mean() == pytest.approx(spam_share, abs=0.005)


def test_bad_ratios_are_refused(sms):
    with pytest.raises(BmcoreError, match="sum to 1"):
        bdata.prepare(bdata.RawData("sms", {"all": sms}), ratios=(0.8, 0.3, 0.1))


# --- stats --------------------------------------------------------------------------------


def _crafted() -> bdata.PreparedDataset:
    train = pd.DataFrame({"text": ["a fine film", "a dull film", "A fine film ", "brilliant", "dreadful", "moving",
                                   "tedious", "rare", "odd", "fine again", "poor again", "solid work"],
                          "label": ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "tiny", "tiny", "pos", "neg", "pos"]})
    validation = pd.DataFrame({"text": ["a dull film", "sharp and funny", "lifeless"], "label": ["neg", "pos", "neg"]})
    test = pd.DataFrame({"text": ["sharp and funny", "clumsy", "warm", "odd one"], "label": ["pos", "neg", "pos", "tiny"]})
    return bdata.PreparedDataset("crafted", "crafted", bdata.Columns(["text"], "label"), ["neg", "pos", "tiny"],
                                 {"train": train, "validation": validation, "test": test}, dropped_empty={"all": 2})


def test_stats_count_rows_duplicates_leakage_and_tiny_classes():
    ds = _crafted()
    stats = bdata.compute_stats(ds)
    assert stats["rows"] == {"train": 12, "validation": 3, "test": 4}
    assert stats["class_counts"]["train"] == {"neg": 4, "pos": 6, "tiny": 2}
    assert stats["class_counts_total"] == {"neg": 7, "pos": 9, "tiny": 3}
    assert stats["duplicates_within"] == {"train": 1, "validation": 0, "test": 0}  # case and spaces ignored
    assert stats["leakage"] == {"train-validation": 1, "train-test": 0, "validation-test": 1}
    assert stats["tiny_classes"] == ["neg", "pos", "tiny"]  # all under 10 train examples
    assert stats["imbalance_ratio"] == 3.0
    assert stats["class_weights"] == {"neg": round(12 / (3 * 4), 4), "pos": round(12 / (3 * 6), 4), "tiny": 2.0}
    assert stats["dropped_empty"] == 2
    warnings = " | ".join(bdata.warnings_for(stats))
    for word in ("duplicate", "leakage", "too small", "imbalance", "dropped"):
        assert word in warnings
    balance = rdata.class_balance_frame(stats)
    assert len(balance) == 9 and balance["count"].sum() == 19
    weights = rdata.class_weights_frame(stats)
    assert weights.set_index("label")["suggested weight"].to_dict() == stats["class_weights"]


def test_class_weights_and_imbalance_on_sms(sms):
    ds = bdata.prepare(bdata.RawData("sms", {"all": sms}), seed=0)
    stats = bdata.compute_stats(ds)
    train = ds.splits["train"]["label"].value_counts()
    assert stats["imbalance_ratio"] == round(train["ham"] / train["spam"], 3)
    assert stats["class_weights"]["spam"] == round(len(ds.splits["train"]) / (2 * train["spam"]), 4)
    assert any("imbalance" in w for w in bdata.warnings_for(stats))


def test_token_lengths_and_truncation_share(shared_data, tok):
    dev = pd.read_csv(shared_data / "sst2" / "dev.csv", dtype=str, keep_default_na=False)
    ds = bdata.prepare(bdata.RawData("sst2-dev", {"all": dev}), seed=0)
    stats = bdata.compute_stats(ds, tok, max_seq_length=24, tokenizer_name="builtin:minilm")
    expected = [len(tok(t)["input_ids"]) for t in dev["text"]]
    share = sum(n > 24 for n in expected) / len(expected)
    assert 0.05 < share < 0.95  # the limit really cuts some and not all
    assert stats["truncated_share"] == round(share, 4)
    lengths = rdata.token_length_frame(ds)
    assert len(lengths) == len(dev)
    assert sorted(lengths["n_tokens"]) == sorted(expected)
    assert set(lengths["split"]) == set(bdata.SPLITS)
    per_class = stats["token_lengths_per_class"]
    assert set(per_class) == {"negative", "positive"}
    assert sum(v["count"] for v in per_class.values()) == len(ds.splits["train"])
    assert stats["tokenizer"] == "builtin:minilm"
    assert any("truncated" in w for w in bdata.warnings_for(stats))


def test_token_length_frame_needs_a_tokenizer(sms):
    ds = bdata.prepare(bdata.RawData("sms", {"all": sms}))
    bdata.compute_stats(ds)
    with pytest.raises(BmcoreError, match="tokenizer"):
        rdata.token_length_frame(ds)


# --- encodings ----------------------------------------------------------------------------


def test_latin1_fallback_is_noted(sms, tmp_path):
    ascii_rows = sms[sms["text"].map(str.isascii)].head(40)
    df = pd.concat([ascii_rows, pd.DataFrame({"text": ["Un café crème à Noël, s'il vous plaît"], "label": ["ham"]})])
    path = tmp_path / "latin1.csv"
    path.write_bytes(df.to_csv(index=False).encode("latin-1"))
    raw = bdata.load_source(str(path))
    assert any("Latin-1" in n for n in raw.notes)
    assert raw.frames["all"]["text"].iloc[-1] == "Un café crème à Noël, s'il vous plaît"


def test_utf8_bom_is_removed(sms, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(sms.head(40).to_csv(index=False).encode("utf-8-sig"))
    raw = bdata.load_source(str(path))
    assert list(raw.frames["all"].columns) == ["text", "label"]
    assert any("byte-order mark" in n for n in raw.notes)
    assert not any("Latin-1" in n for n in raw.notes)


# --- saving -------------------------------------------------------------------------------


def test_save_load_list_round_trip(sms, workspace):
    ds = bdata.prepare(bdata.RawData("sms.csv", {"all": sms}), name="sms", seed=5)
    bdata.compute_stats(ds)
    path = bdata.save_prepared(ds)
    assert path == workspace / "datasets" / "sms"
    assert bdata.is_prepared("sms") and not bdata.is_prepared("other")
    back = bdata.load_prepared("sms")
    assert back.label_names == ["ham", "spam"] and back.columns == ds.columns
    for s in bdata.SPLITS:
        pd.testing.assert_frame_equal(back.splits[s], ds.splits[s])
    assert back.content_hash() == ds.content_hash()
    meta = json.loads((path / "dataset.json").read_text())
    assert meta["content_hash"] == ds.content_hash() and meta["stats"]["rows_total"] == len(sms)
    listed = bdata.list_prepared()
    assert [m["name"] for m in listed] == ["sms"]
    table = rdata.prepared_frame()
    assert table.loc[0, "name"] == "sms" and table.loc[0, "classes"] == 2
    assert bdata.resolve_dataset("sms").content_hash() == ds.content_hash()
    with pytest.raises(BmcoreError, match="already exists"):
        bdata.save_prepared(ds, overwrite=False)
    with pytest.raises(BmcoreError, match="invalid dataset name"):
        ds.name = "../escape"
        bdata.save_prepared(ds)


def test_a_dataset_runs_were_trained_on_is_never_replaced_by_default(sms, workspace):
    """Item 3: the engine itself refuses to save over a dataset a run points to; only an explicit overwrite does."""
    from bmcore import runs
    from bmcore.config import TrainConfig

    ds = bdata.prepare(bdata.RawData("sms.csv", {"all": sms}), name="sms", seed=5)
    bdata.save_prepared(ds)
    bdata.save_prepared(ds)  # no run uses it yet: replacing is allowed
    runs.create_run(TrainConfig(dataset="sms"), "on-sms")
    other = bdata.prepare(bdata.RawData("sms.csv", {"all": sms.head(300)}), name="sms", seed=6)
    with pytest.raises(bdata.DatasetExists, match="'sms' is used by run on-sms .queued.; .*save it under another name"):
        bdata.save_prepared(other)
    assert bdata.load_prepared("sms").content_hash() == ds.content_hash()
    bdata.save_prepared(other, overwrite=True)  # the CLI's --overwrite
    assert bdata.load_prepared("sms").content_hash() == other.content_hash()
    path = workspace.parent / "sms.csv"
    sms.head(200).to_csv(path, index=False)
    assert cli_main(["data", "prepare", str(path), "--name", "sms"]) == 2
    assert cli_main(["data", "prepare", str(path), "--name", "sms", "--overwrite"]) == 0
    assert bdata.load_prepared("sms").stats["rows_total"] == 200
    assert not [p for p in datasets_dir().iterdir() if p.name.startswith(".")]


def test_suggest_name_and_prepare_command():
    assert bdata.suggest_name("builtin:bbc-news") == "bbc-news"
    assert bdata.suggest_name("/data/My Reviews.csv") == "My-Reviews"
    assert bdata.suggest_name("../shared/data/sst2/") == "sst2"
    cmd = rdata.prepare_command("my file.csv", "reviews", text_columns=["body"], label_column="stars",
                                use_source_splits=False, ratios=(0.7, 0.15, 0.15), seed=1, max_seq_length=64)
    assert cmd == ("python -m bmcore data prepare 'my file.csv' --name reviews --text-column body --label-column stars "
                   "--new-splits --ratios 0.7 0.15 0.15 --seed 1 --max-seq-length 64")


# --- command line -------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_inspect_bbc_news():
    out = subprocess.run([sys.executable, "-m", "bmcore", "data", "inspect", "builtin:bbc-news"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["rows_total"] == 2225
    assert stats["num_classes"] == 5
    assert stats["class_counts_total"] == BBC_COUNTS
    assert stats["label_names"] == sorted(BBC_COUNTS)
    assert 0 < stats["truncated_share"] < 1


def test_cli_prepare_saves_by_name(shared_data, workspace, tmp_path, capsys):
    folder = tmp_path / "sst2-small"  # the real dev split and the first 3,000 train rows, to keep the test fast
    folder.mkdir()
    (folder / "dev.csv").write_bytes((shared_data / "sst2" / "dev.csv").read_bytes())
    train = (shared_data / "sst2" / "train.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "train.csv").write_text("".join(train[:3001]), encoding="utf-8")
    assert cli_main(["data", "prepare", str(folder), "--name", "sst2", "--tokenizer", "builtin:minilm",
                     "--max-seq-length", "64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "sst2" and out["splits"]["test"] == 872  # the dev split is scored as the test split
    assert bdata.is_prepared("sst2")


def _zip_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.csv", text)
    return buf.getvalue()


MALFORMED = {
    "empty": (b"", [], "is empty"),
    "header_only": (b"text,label\n", [], "header but no rows"),
    "no_text_column": (b"id,label,score\n" + b"".join(f"{i},{i % 2},{i * 0.5}\n".encode() for i in range(50)), [],
                       "no text-like column"),
    "missing_label": (None, ["--label-column", "category"], "column 'category' is missing"),
    "single_class": ("ham", [], "only one class"),
    "binary": ("zip", [], "binary file"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_get_a_clear_error(case, sms, tmp_path, capsys):
    content, args, message = MALFORMED[case]
    if content is None:
        content = sms.head(100).to_csv(index=False).encode()
    elif content == "ham":
        content = sms[sms["label"] == "ham"].head(100).to_csv(index=False).encode()
    elif content == "zip":
        content = _zip_bytes(sms.head(100).to_csv(index=False))
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content)
    assert cli_main(["data", "inspect", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_error_exit_code_in_a_real_process(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    out = subprocess.run([sys.executable, "-m", "bmcore", "data", "inspect", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: empty.csv is empty" and out.stdout == ""
