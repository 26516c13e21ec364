"""Multi-label data on real GoEmotions rows: the three shapes, detection, stratified splits, stats, saving, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError
from bmcore.problem_types import MULTI_LABEL, SINGLE_LABEL
from bmcore.report import data as rdata

JIGSAW = ["anger", "annoyance", "disapproval", "joy", "neutral"]  # five GoEmotions labels as 0/1 columns


@pytest.fixture(scope="module")
def goemotions(shared_data: Path) -> pd.DataFrame:
    """3,000 real GoEmotions train rows (text, labels: comma-separated names)."""
    return pd.read_csv(shared_data / "goemotions" / "train.csv", dtype=str, keep_default_na=False).head(3000)


def names_of(df: pd.DataFrame) -> list[list[str]]:
    return [v.split(",") for v in df["labels"]]


def write_json_lists(df: pd.DataFrame, path: Path) -> Path:
    """The rows as JSON Lines with real lists: {"text": ..., "labels": ["anger", "joy"]}."""
    path.write_text("".join(json.dumps({"text": t, "labels": ls}) + "\n" for t, ls in zip(df["text"], names_of(df), strict=True)))
    return path


def write_jigsaw(df: pd.DataFrame, path: Path) -> Path:
    """The Jigsaw toxic-comments shape: id, comment_text and one 0/1 column per label."""
    out = pd.DataFrame({"id": [f"c{i:05d}" for i in range(len(df))], "comment_text": df["text"]})
    for name in JIGSAW:
        out[name] = [int(name in ls) for ls in names_of(df)]
    out.to_csv(path, index=False)
    return path


def matrix(ds: bdata.PreparedDataset, split: str) -> np.ndarray:
    return bdata.label_matrix(ds.splits[split]["label"], ds.label_names)


def test_goemotions_folder_is_detected_and_scored_on_its_dev_split(shared_data):
    ds = bdata.prepare(bdata.load_source(str(shared_data / "goemotions")), "goemotions")
    assert ds.problem_type == MULTI_LABEL
    assert ds.columns.label == "labels" and ds.columns.label_delimiter == ","
    assert len(ds.label_names) == 28 and ds.label_names == sorted(ds.label_names)
    assert any(n.startswith("multi-label: column 'labels' holds several labels separated by ','") for n in ds.notes)
    assert len(ds.splits["test"]) == 5426  # the source's dev split
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) == 43410
    assert abs(len(ds.splits["validation"]) / 43410 - 1 / 9) < 0.005
    rank = {n: i for i, n in enumerate(ds.label_names)}
    first = bdata.label_sets(ds.splits["train"]["label"].head(2000))
    assert all(ls and [rank[n] for n in ls] == sorted(rank[n] for n in ls) for ls in first)  # label_names order


def test_encode_decode_and_malformed_values():
    value = bdata.encode_label_set(["anger", "ñandú", "annoyance"])
    assert value == '["anger", "ñandú", "annoyance"]'
    assert bdata.decode_label_set(value) == ["anger", "ñandú", "annoyance"]
    assert bdata.decode_label_set("[]") == []
    for bad in ('["anger", ', '"anger"', '[1, 2]', "anger"):
        with pytest.raises(BmcoreError, match="is not a JSON list of label names") as info:
            bdata.decode_label_set(bad)
        assert "\n" not in str(info.value)
    s = pd.Series(['["a", "b"]', "[]", '["b"]', '["a", "b"]'])
    assert bdata.label_sets(s) == [["a", "b"], [], ["b"], ["a", "b"]]
    assert bdata.label_matrix(s, ["a", "b"]).tolist() == [[1, 1], [0, 0], [0, 1], [1, 1]]


def test_a_json_list_file(goemotions, tmp_path):
    raw = bdata.load_source(str(write_json_lists(goemotions, tmp_path / "emo.jsonl")))
    ds = bdata.prepare(raw, "emo")
    assert ds.columns.label_delimiter == "json"
    assert any("holds JSON lists of labels" in n for n in ds.notes)
    expected = bdata.order_labels({n for ls in names_of(goemotions) for n in ls})
    assert ds.label_names == expected
    got = sorted(tuple(sorted(ls)) for s in bdata.SPLITS for ls in bdata.label_sets(ds.splits[s]["label"]))
    assert got == sorted(tuple(sorted(ls)) for ls in names_of(goemotions))


def test_a_malformed_json_list_is_one_line(goemotions, tmp_path):
    rows = goemotions.head(200).assign(labels=lambda f: [json.dumps(v.split(",")) for v in f["labels"]])
    rows.loc[57, "labels"] = '["anger", "joy"'
    rows.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(BmcoreError) as info:
        bdata.prepare(bdata.load_source(str(tmp_path / "broken.csv")), "broken")
    msg = str(info.value)
    assert "row 58" in msg and "not a JSON list of label names" in msg and "\n" not in msg


def test_zero_one_columns_jigsaw_shape(goemotions, tmp_path):
    ds = bdata.prepare(bdata.load_source(str(write_jigsaw(goemotions, tmp_path / "toxic.csv"))), "toxic")
    assert ds.columns.label_columns == JIGSAW and ds.columns.text == ["comment_text"]
    assert any(n.startswith("multi-label: 5 columns hold only 0/1 values") for n in ds.notes)
    assert ds.label_names == JIGSAW
    rows = sum(len(ds.splits[s]) for s in bdata.SPLITS)
    assert rows == len(goemotions)  # rows with none of the five labels are kept, as []
    none = sum(not any(n in JIGSAW for n in ls) for ls in names_of(goemotions))
    stats = bdata.compute_stats(ds)
    assert sum(stats["no_label_rows"].values()) == none > 0
    assert any(w.startswith(f"{none:,} rows") and "no label" in w for w in bdata.warnings_for(stats))


def test_forced_shapes_and_single_label(goemotions, tmp_path):
    df = goemotions[goemotions.groupby("labels")["labels"].transform("size") >= 3]  # enough rows to split each combination
    cols, notes = bdata.choose_columns(df, single_label=True)
    assert cols.problem_type == SINGLE_LABEL and notes == ["single-label (as chosen): one label per row in column 'labels'"]
    ds = bdata.prepare(bdata.RawData("emo", {"all": df}), "emo", cols)
    assert ds.problem_type == SINGLE_LABEL
    assert set(ds.label_names) == set(df["labels"])  # each combination is a class of its own
    cols, _ = bdata.choose_columns(df, ["text"], "labels", label_delimiter=",")
    assert cols.problem_type == MULTI_LABEL
    assert rdata.prepare_command("emo.csv", "emo", single_label=True).endswith("--name emo --single-label")
    jig = pd.read_csv(write_jigsaw(df, tmp_path / "t.csv"), dtype=str)
    cols, _ = bdata.choose_columns(jig, label_columns=["anger", "joy"])
    assert cols.label_columns == ["anger", "joy"] and cols.text == ["comment_text"]
    with pytest.raises(BmcoreError, match="column 'rage' is missing"):
        bdata.choose_columns(jig, label_columns=["anger", "rage"])
    with pytest.raises(BmcoreError, match="choose one label shape"):
        bdata.choose_columns(jig, label_columns=["anger", "joy"], single_label=True)


def test_commas_inside_single_labels_stay_single(shared_data):
    """A class such as "New York, NY" that only ever occurs whole is one label, not two."""
    news = pd.read_csv(shared_data / "ag_news" / "test.csv", dtype=str).head(2000)
    cities = {"World": "New York, NY", "Sports": "Paris, France", "Business": "Business", "Sci/Tech": "Sci/Tech"}
    news["label"] = news["label"].map(cities)
    cols, note = bdata.detect_label_shape(news, bdata.Columns(["text"], "label"))
    assert cols.problem_type == SINGLE_LABEL
    assert "read as one label per row" in note
    ds = bdata.prepare(bdata.RawData("cities", {"all": news}), "cities")
    assert ds.problem_type == SINGLE_LABEL and "New York, NY" in ds.label_names


def test_existing_single_label_datasets_are_still_single_label(shared_data):
    for source in ("sst2", "ag_news/test.csv", "emotion", "sms_spam/all.csv"):
        raw = bdata.load_source(str(shared_data / source))
        first = next(iter(raw.frames.values()))
        assert bdata.detect_columns(first).problem_type == SINGLE_LABEL, source
    ds = bdata.prepare(bdata.load_source("builtin:bbc-news"), "bbc")
    assert ds.problem_type == SINGLE_LABEL and ds.describe()["problem_type"] == SINGLE_LABEL
    assert not any("label" in n and "multi" in n for n in ds.notes)
    assert "labels_per_row" not in bdata.compute_stats(ds)


def test_stratified_splits_keep_every_label(goemotions):
    ds = bdata.prepare(bdata.RawData("emo", {"all": goemotions}), "emo", seed=7)
    everywhere = matrix(ds, "train").sum(0) + matrix(ds, "validation").sum(0) + matrix(ds, "test").sum(0)
    assert [len(ds.splits[s]) for s in bdata.SPLITS] == pytest.approx([2400, 300, 300], abs=10)
    for j, name in enumerate(ds.label_names):
        per = {s: int(matrix(ds, s)[:, j].sum()) for s in bdata.SPLITS}
        if everywhere[j] >= 3:
            assert min(per.values()) >= 1, (name, per)
        share = per["train"] / everywhere[j]
        assert abs(share - 0.8) <= max(0.05, 1.5 / everywhere[j]), (name, per)


def test_multi_label_stats_match_pandas(goemotions):
    ds = bdata.prepare(bdata.RawData("emo", {"all": goemotions}), "emo", seed=1)
    stats = bdata.compute_stats(ds)
    sets = {s: [json.loads(v) for v in ds.splits[s]["label"]] for s in bdata.SPLITS}
    exploded = pd.Series([n for s in bdata.SPLITS for ls in sets[s] for n in ls])
    assert stats["class_counts_total"] == exploded.value_counts().reindex(ds.label_names, fill_value=0).to_dict()
    assert stats["class_counts"]["test"]["neutral"] == sum("neutral" in ls for ls in sets["test"])
    sizes = pd.Series([len(ls) for s in bdata.SPLITS for ls in sets[s]])
    assert stats["label_cardinality"] == pytest.approx(sizes.mean(), abs=1e-4)
    assert stats["labels_per_row"]["all"]["histogram"] == {str(k): int(v) for k, v in sizes.value_counts().sort_index().items()}
    i, j = ds.label_names.index("anger"), ds.label_names.index("annoyance")
    both = sum({"anger", "annoyance"} <= set(ls) for s in bdata.SPLITS for ls in sets[s])
    assert stats["cooccurrence"][i][j] == stats["cooccurrence"][j][i] == both > 0
    assert stats["cooccurrence"][i][i] == stats["class_counts_total"]["anger"]
    rare = [n for n, c in stats["class_counts_total"].items() if c < bdata.MIN_CLASS_EXAMPLES]
    assert stats["rare_labels"] == rare and rare  # 3,000 rows: grief and the like are rare
    assert any(w.startswith("labels too rare to split") and rare[0] in w for w in bdata.warnings_for(stats))
    assert stats["class_weights"] == {} and rdata.class_weights_frame(stats).empty
    assert not rdata.class_balance_frame(stats).empty and not rdata.labels_per_row_frame(stats).empty
    assert rdata.cooccurrence_frame(stats, ds.label_names).shape == (len(ds.label_names),) * 2


def test_duplicates_test_file_save_and_load(goemotions, tmp_path):
    train = goemotions.iloc[:2500]
    test = goemotions.iloc[2300:]  # 200 rows in both files
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    raw = bdata.with_test_file(bdata.load_source(str(tmp_path / "train.csv")), bdata.load_source(str(tmp_path / "test.csv")))
    ds = bdata.prepare(raw, "emo")
    assert ds.problem_type == MULTI_LABEL and len(ds.splits["test"]) == 700
    dropped = bdata.drop_duplicates(ds)
    assert dropped["train"] + dropped["validation"] >= 200
    stats = bdata.compute_stats(ds)
    assert not any(stats["leakage"].values())
    path = bdata.save_prepared(ds)
    meta = json.loads((path / bdata.DATASET_META).read_text())
    assert meta["problem_type"] == MULTI_LABEL and meta["label_delimiter"] == ","
    back = bdata.load_prepared("emo")
    assert back.problem_type == MULTI_LABEL and back.columns.label_delimiter == ","
    assert back.content_hash() == ds.content_hash() and back.label_names == ds.label_names
    assert [m["name"] for m in bdata.list_prepared()] == ["emo"]
    del meta["problem_type"]  # a dataset.json from before multi-label: single-label
    (path / bdata.DATASET_META).write_text(json.dumps(meta))
    assert bdata.load_prepared("emo").problem_type == SINGLE_LABEL


def test_cli_prepare_and_inspect(goemotions, tmp_path, capsys):
    src = write_jigsaw(goemotions.head(1500), tmp_path / "toxic.csv")
    assert cli_main(["data", "prepare", str(src), "--name", "toxic", "--max-seq-length", "64",
                     "--label-columns", "anger,joy,neutral"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problem_type"] == MULTI_LABEL and out["label_names"] == ["anger", "joy", "neutral"]
    assert bdata.load_prepared("toxic").columns.label_columns == ["anger", "joy", "neutral"]

    assert cli_main(["data", "inspect", str(src), "--max-seq-length", "64"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["label_columns"] == JIGSAW and shown["problem_type"] == MULTI_LABEL
    assert any(n.startswith("multi-label: 5 columns") for n in shown["notes"])
    assert "labels_per_row" in shown and "cooccurrence" in shown

    for args, message in ((["--label-columns", "anger,rage"], "column 'rage' is missing"),
                          (["--label-columns", "anger,comment_text"], "cannot be both text and label"),
                          (["--label-columns", "anger,id"], "label column 'id'"),
                          (["--label-columns", "anger", "--label-delimiter", ","], "choose one label shape")):
        assert cli_main(["data", "inspect", str(src), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)


def test_resolve_dataset_takes_the_train_configs_label_shape(goemotions, tmp_path):
    """What ``python -m bmcore train --data FILE --label-columns a,b`` passes on (TrainConfig.label_columns)."""
    src = str(write_jigsaw(goemotions.head(800), tmp_path / "toxic.csv"))
    ds = bdata.resolve_dataset(src, label_columns="anger,neutral")
    assert ds.problem_type == MULTI_LABEL and ds.label_names == ["anger", "neutral"]
    assert bdata.resolve_dataset(src).columns.label_columns == JIGSAW  # detected without it
    goemotions.head(800).to_csv(tmp_path / "emo.csv", index=False)
    ds = bdata.resolve_dataset(str(tmp_path / "emo.csv"), label_delimiter=",")
    assert ds.columns.label_delimiter == "," and ds.problem_type == MULTI_LABEL
