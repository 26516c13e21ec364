"""Choices the Data page offers on real data: dropping duplicates, a separate test file, default names, counting tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError
from bmcore.modalities.text import token_lengths
from bmcore.models import CountingTokenizer, load_counting_tokenizer, load_tokenizer
from bmcore.report import data as rdata


@pytest.fixture(scope="module")
def sms(shared_data: Path) -> pd.DataFrame:
    """The SMS spam collection: 5,574 messages, hundreds of them repeated (the same promotions sent many times)."""
    return pd.read_csv(shared_data / "sms_spam" / "all.csv", dtype=str, keep_default_na=False)


def test_drop_duplicates_removes_what_the_stats_warn_about(sms):
    ds = bdata.prepare(bdata.RawData("sms", {"all": sms}), seed=0)
    before = bdata.compute_stats(ds)
    assert before["duplicates_within"]["train"] > 100 and before["leakage"]["train-test"] > 10
    test_before = ds.splits["test"].copy()

    dropped = bdata.drop_duplicates(ds)
    after = bdata.compute_stats(ds)
    assert after["duplicates_within"] == {"train": 0, "validation": 0, "test": 0}
    assert after["leakage"] == {"train-validation": 0, "train-test": 0, "validation-test": 0}
    assert not any("duplicate" in w or "leakage" in w for w in bdata.warnings_for(after))
    assert {s: before["rows"][s] - after["rows"][s] for s in bdata.SPLITS} == dropped
    # test loses only its own repeats: every test text stays, once
    keys = test_before["text"].str.strip().str.lower()
    assert dropped["test"] == before["duplicates_within"]["test"]
    assert set(ds.splits["test"]["text"].str.strip().str.lower()) == set(keys)
    assert ds.notes[-1].startswith(f"dropped {sum(dropped.values())} duplicate rows: ")
    assert bdata.drop_duplicates(ds) == {"train": 0, "validation": 0, "test": 0}  # nothing left to drop


def test_a_separate_test_file_becomes_the_test_split(shared_data):
    train = bdata.load_source(str(shared_data / "emotion" / "val.csv"))  # 2,000 rows to train on
    test = bdata.load_source(str(shared_data / "emotion" / "test.csv"))
    ds = bdata.prepare(bdata.with_test_file(train, test), seed=3)
    assert len(ds.splits["test"]) == 2000
    assert sorted(ds.splits["test"]["text"]) == sorted(test.frames["all"]["text"])
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 2000  # validation is carved from the train file
    assert any("separate file" in n for n in ds.notes)
    with pytest.raises(BmcoreError, match="has a test split of its own"):
        bdata.with_test_file(bdata.load_source(str(shared_data / "emotion")), test)


def test_generic_file_names_get_a_telling_default():
    assert bdata.suggest_name("/data/trec/train.csv") == "trec-train"
    assert bdata.suggest_name("train.csv", "3f9a1c0d22") == "train-3f9a1c"  # an upload: no folder to name it by
    assert bdata.suggest_name("Data.JSONL", "ab12cd") == "Data-ab12cd"
    assert bdata.suggest_name("questions.csv", "3f9a1c0d22") == "questions"  # a telling name is kept
    assert bdata.suggest_name("builtin:bbc-news") == "bbc-news"


def test_cli_prepare_with_a_test_file_and_dropped_duplicates(sms, shared_data, tmp_path, capsys):
    sms.iloc[:4000].to_csv(tmp_path / "train.csv", index=False)
    sms.iloc[3500:].to_csv(tmp_path / "test.csv", index=False)  # 500 rows in both files
    assert cli_main(["data", "prepare", str(tmp_path / "train.csv"), "--test-file", str(tmp_path / "test.csv"),
                     "--drop-duplicates", "--name", "sms", "--max-seq-length", "64"]) == 0
    out = json.loads(capsys.readouterr().out)
    saved = bdata.load_prepared("sms")
    assert out["splits"]["test"] == len(saved.splits["test"]) == sms.iloc[3500:]["text"].str.strip().str.lower().nunique()
    assert saved.stats["leakage"] == {"train-validation": 0, "train-test": 0, "validation-test": 0}
    assert saved.stats["rows"]["train"] + saved.stats["rows"]["validation"] < 3500  # the shared rows and repeats left
    assert cli_main(["data", "inspect", "sms", "--test-file", str(tmp_path / "test.csv")]) == 2
    assert "prepared dataset" in capsys.readouterr().err
    assert rdata.prepare_command("train.csv", "sms", test_file="test.csv", drop_duplicates=True) == (
        "python -m bmcore data prepare train.csv --name sms --test-file test.csv --drop-duplicates")


@pytest.mark.slow
def test_counting_tokenizer_counts_as_the_training_tokenizer(tiny_model):
    raw = bdata.load_source("builtin:bbc-news").frames["all"]
    texts, titles = raw["text"].tolist(), raw["title"].tolist()
    counting, full = load_counting_tokenizer("builtin:minilm"), load_tokenizer("builtin:minilm")
    assert isinstance(counting, CountingTokenizer)
    assert (token_lengths(texts, counting) == token_lengths(texts, full)).all()
    assert (token_lengths(texts, counting, titles) == token_lengths(texts, full, titles)).all()
    assert not isinstance(load_counting_tokenizer(str(tiny_model)), CountingTokenizer)  # other models: transformers
