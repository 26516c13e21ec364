"""Label quality: confident learning on out-of-fold probabilities finds flipped labels; conflicts and class outliers;
the result is stored with the dataset; reviewed changes make a new version and never touch the original."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import jobs, runs
from bmcore import quality as bq
from bmcore.cli import main as cli_main
from bmcore.errors import BmcoreError
from bmcore.report import data as rdata
from bmcore.report import quality as rq
from bmcore.workspace import datasets_dir

NAME = "sms"
FLIP_SHARE = 0.05


def flip(df: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``df`` with ``share`` of its binary labels swapped at random (fixed seed), and the swapped positions."""
    names = sorted(df["label"].unique())
    assert len(names) == 2
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(df), int(round(share * len(df))), replace=False))
    out = df.copy().reset_index(drop=True)
    out.loc[rows, "label"] = out.loc[rows, "label"].map({names[0]: names[1], names[1]: names[0]})
    return out, rows


def detection(scores: pd.DataFrame, split: str, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of the flagged rows of ``split`` against the rows known to be flipped."""
    part = scores[scores["split"] == split]
    flagged = set(part.loc[part["issue"], "row"].tolist())
    hit = len(flagged & set(truth.tolist()))
    return hit / max(len(flagged), 1), hit / len(truth)


@pytest.fixture
def noisy_sms(workspace: Path, shared_data: Path) -> np.ndarray:
    """1,500 SMS messages with 5% of the train labels flipped, a conflicting duplicate and a nonsense outlier."""
    df = pd.read_csv(shared_data / "sms_spam" / "all.csv").sample(1500, random_state=0).reset_index(drop=True)
    train, flipped = flip(df.iloc[:1200], FLIP_SHARE, seed=0)
    twin = train[~train.index.isin(flipped)].iloc[[0]].assign(label=lambda f: np.where(f["label"] == "ham", "spam", "ham"))
    odd = pd.DataFrame({"text": ["qwzx vbnm plkj yhgt rfde wsaq"], "label": ["ham"]})
    train = pd.concat([train, twin, odd], ignore_index=True)
    raw = bdata.RawData("sms", {"train": train, "validation": df.iloc[1200:1350], "test": df.iloc[1350:]})
    bdata.save_prepared(bdata.prepare(raw, NAME, columns=bdata.Columns(["text"], "label")))
    return flipped


def test_tfidf_scores_find_flipped_labels_conflicts_and_outliers(noisy_sms: np.ndarray):
    result = bq.run_quality(NAME, encoder="tfidf", seed=0)
    scores = result.scores
    assert len(scores) == 1202 + 300 and set(scores["split"]) == set(bdata.SPLITS)
    assert {"row", "text", "given", "suggested", "quality", "issue", "confidence", "outlier", "conflict"} <= set(scores)
    precision, recall = detection(scores, "train", noisy_sms)
    assert precision >= 0.6 and recall >= 0.6, (precision, recall)
    flagged = result.flagged("train")
    assert flagged["quality"].is_monotonic_increasing and (flagged["suggested"] != flagged["given"]).all()
    # The planted duplicate with the other label is a conflict; the nonsense row lies far from its class.
    conflict = result.conflicts[(result.conflicts["similarity"] == 1.0)]
    assert {int(conflict["row_a"].iloc[0]), int(conflict["row_b"].iloc[0])} & {1200}
    odd = scores[(scores["split"] == "train") & (scores["row"] == 1201)].iloc[0]
    assert odd["outlier"] and odd["outlier_score"] == scores["outlier_score"].max()
    summary = result.summary
    assert summary["per_class"]["spam"]["rows"] + summary["per_class"]["ham"]["rows"] == len(scores)
    assert summary["flagged"] == int(scores["issue"].sum()) and summary["encoder"] == "tfidf"
    table = rq.class_summary_frame(result)
    assert table["look mislabeled"].sum() == summary["flagged"]
    # Stored with the dataset; a dataset prepared again under the same name reads as not scored.
    back = bq.load_quality(NAME)
    assert back is not None and back.summary == summary
    pd.testing.assert_frame_equal(back.scores, scores)
    ds = bdata.load_prepared(NAME)
    ds.splits["train"] = ds.splits["train"].iloc[:-1]
    bdata.save_prepared(ds)
    assert bq.load_quality(NAME) is None


def test_embeddings_are_pooled_per_text_whatever_the_batch(tiny_model: Path):
    texts = ["a short one", "a much longer sentence that needs more tokens than the others do", "mid length text"]
    full = bq.embed_texts(str(tiny_model), texts, batch_size=2, precision="fp32")
    assert full.shape == (3, 32) and np.allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)
    alone = bq.embed_texts(str(tiny_model), texts[2:], precision="fp32")
    assert np.allclose(full[2], alone[0], atol=1e-5)


def test_label_quality_job_runs_in_the_background_and_cancels(noisy_sms: np.ndarray):
    job = jobs.start("label-quality", {"dataset": NAME, "encoder": "tfidf"}, NAME)
    info = jobs.wait(job, timeout=300)
    assert info["state"] == runs.COMPLETED, info
    assert info["result"]["dataset"] == NAME and info["result"]["flagged"] > 0 and info["fraction"] == 1.0
    assert bq.load_quality(NAME).summary["flagged"] == info["result"]["flagged"]
    before = (bq.quality_dir(NAME) / bq.SUMMARY_FILE).read_text()
    job = jobs.start("label-quality", {"dataset": NAME, "encoder": "builtin:minilm"}, NAME)
    runs.wait_for(job, states=(runs.RUNNING,), timeout=300)
    jobs.cancel(job)
    assert jobs.wait(job, timeout=300)["state"] == runs.CANCELLED
    assert (bq.quality_dir(NAME) / bq.SUMMARY_FILE).read_text() == before  # nothing half-written


def test_reviewed_changes_make_a_new_version_and_leave_the_original(noisy_sms: np.ndarray):
    original = bdata.load_prepared(NAME)
    folder = bdata.dataset_dir(NAME)
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    changes = pd.DataFrame({"split": ["train", "train", "train", "test"], "row": ["0", "1", "2", "3"],
                            "action": ["relabel", "drop", "keep", "drop"], "new_label": ["spam", "", "", ""]})
    new = bq.save_version(original, changes)
    assert new.name == "sms-v2" and bq.next_version_name("sms") == "sms-v3" and bq.next_version_name("sms-v2") == "sms-v3"
    back = bdata.load_prepared("sms-v2")
    assert back.version == {"number": 2, "parent": NAME, "parent_hash": original.content_hash(), "relabelled": 1,
                            "dropped": 2, "kept": 1}
    assert len(back.splits["train"]) == len(original.splits["train"]) - 1
    assert len(back.splits["test"]) == len(original.splits["test"]) - 1
    assert back.splits["train"]["label"].iloc[0] == "spam"
    assert back.splits["train"]["text"].iloc[1] == original.splits["train"]["text"].iloc[2]  # row 1 dropped
    # The original is byte-for-byte what it was.
    assert bdata.load_prepared(NAME).content_hash() == original.content_hash()
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} == stamp
    table = rdata.prepared_frame().set_index("name")
    assert table.loc["sms-v2", "version"] == "v2 of sms (1 relabelled, 2 dropped)" and table.loc[NAME, "version"] == ""
    with pytest.raises(BmcoreError, match="already exists"):
        bq.save_version(original, changes, "sms-v2")


@pytest.mark.parametrize(("change", "message"), [
    ({"row": "99999"}, "outside the train split"),
    ({"row": "x"}, "not a row number"),
    ({"action": "delete"}, "unknown action"),
    ({"new_label": "maybe"}, "not one of the dataset's labels"),
    ({"split": "dev"}, "unknown split"),
    ({"text": "not this text"}, "another text"),
])
def test_bad_changes_are_refused_in_one_line(noisy_sms: np.ndarray, change: dict, message: str):
    ds = bdata.load_prepared(NAME)
    row = {"split": "train", "row": "0", "action": "relabel", "new_label": "spam", **change}
    with pytest.raises(BmcoreError, match=message):
        bq.check_changes(ds, pd.DataFrame([row]))
    with pytest.raises(BmcoreError, match="more than one decision"):
        bq.check_changes(ds, pd.DataFrame([{"row": "1", "action": "drop"}, {"row": "1", "action": "keep"}]))


def test_cli_quality_and_prepare_with_changes(noisy_sms: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "scores.csv"
    assert cli_main(["data", "quality", NAME, "--encoder", "tfidf", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    scores = pd.read_csv(out)
    assert summary["flagged"] == int(scores["issue"].sum()) > 0 and len(scores) == summary["rows"]
    flagged = scores[scores["issue"] & (scores["split"] == "train")].sort_values("quality").head(2)
    changes = pd.DataFrame({"split": "train", "row": flagged["row"].to_numpy(), "action": ["relabel", "drop"],
                            "new_label": [flagged["suggested"].iloc[0], ""]})
    changes.to_csv(tmp_path / "changes.csv", index=False)
    assert cli_main(["data", "prepare", NAME, "--name", "sms-clean", "--apply-changes", str(tmp_path / "changes.csv")]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["name"] == "sms-clean" and made["version"]["relabelled"] == 1 and made["version"]["dropped"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("split,row,action,new_label\ntrain,0,relabel,nope\n")
    assert cli_main(["data", "prepare", NAME, "--name", "sms-v9", "--apply-changes", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not one of the dataset's labels" in err and not bdata.is_prepared("sms-v9")
    assert cli_main(["data", "quality", "nothing-here"]) == 2


def test_evaluation_rows_are_marked_where_the_gold_label_looks_wrong(noisy_sms: np.ndarray):
    result = bq.run_quality(NAME, encoder="tfidf")
    test = bdata.load_prepared(NAME).splits["test"]
    predictions = pd.DataFrame({"text": test["text"], "gold": test["label"], "pred": test["label"]})
    marked = rq.mark_predictions(predictions, result, "test")
    part = result.scores[result.scores["split"] == "test"]
    assert marked["gold_suspect"].tolist() == part["issue"].tolist()
    assert marked["suggested"].tolist() == part["suggested"].tolist()
    assert not rq.mark_predictions(predictions, None, "test")["gold_suspect"].any()
    with pytest.raises(BmcoreError, match="score the dataset again"):
        rq.mark_predictions(predictions.iloc[:5], result, "test")


def _save_in_race(original: bdata.PreparedDataset, drop: int, i: int, start, results: dict) -> None:
    """One of the racing saves: it drops row ``drop`` of train (so the version on disk tells whose it is); save 0
    asks for the next version, the others give the name the page showed as its default, read before the race."""
    changes = pd.DataFrame({"split": ["train"], "row": [str(drop)], "action": ["drop"], "new_label": [""]})
    name = bq.next_version_name(NAME)
    start.wait()
    try:
        results[i] = bq.save_version(original, changes, name if i else None, next_free=True)
    except Exception as exc:  # noqa: BLE001 - any failure is the bug this test is about
        results[i] = exc


def test_concurrent_new_versions_each_get_their_own_name(noisy_sms: np.ndarray):
    """Item 4: saves racing for the same default name (12 trials of 3) never replace one another or fail: each takes
    a free version number, atomically, and says which; every version holds exactly its own changes."""
    import threading

    original = bdata.load_prepared(NAME)
    made: list[str] = []
    for trial in range(12):
        start = threading.Barrier(3)
        results: dict[int, object] = {}

        threads = [threading.Thread(target=_save_in_race, args=(original, trial * 3 + i, i, start, results))
                   for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(r, bdata.PreparedDataset) for r in results.values()), results
        names = [r.name for r in results.values()]
        assert len(set(names)) == 3, names
        for i, r in results.items():
            back = bdata.load_prepared(r.name)
            dropped = trial * 3 + i
            assert len(back.splits["train"]) == len(original.splits["train"]) - 1
            assert back.splits["train"]["text"].iloc[dropped] == original.splits["train"]["text"].iloc[dropped + 1]
            assert back.version["number"] == int(r.name.rsplit("-v", 1)[1])
        made += names
    assert sorted(made, key=lambda n: int(n.rsplit("-v", 1)[1])) == [f"sms-v{n}" for n in range(2, 38)]
    assert not [p for p in datasets_dir().iterdir() if p.name.startswith(".")]  # no temporary folder left
    with pytest.raises(BmcoreError, match="'sms-v5' already exists"):
        bq.save_version(original, pd.DataFrame({"row": ["0"], "action": ["drop"]}), "sms-v5")  # an explicit name
    bdata.save_prepared(replace(original, name="mine"), overwrite=False)
    with pytest.raises(bdata.DatasetExists, match="'mine' already exists"):
        bdata.save_prepared(replace(original, name="mine"), overwrite=False)


def test_flags_are_numbered_by_the_row_of_the_uploaded_file(workspace: Path, shared_data: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture):
    """Item 17: a flag names its row in the file the user gave (the prepared rows keep it through the shuffle);
    the flag table downloads formula-safe; --out into a missing folder says so before scoring."""
    from bmcore.display import csv_frame

    df = pd.read_csv(shared_data / "sms_spam" / "all.csv").sample(600, random_state=1).reset_index(drop=True)
    df, flipped = flip(df, 0.1, seed=1)
    df.loc[flipped[0], "text"] = "=HYPERLINK(\"x\") " + df.loc[flipped[0], "text"]
    path = tmp_path / "upload.csv"
    df.to_csv(path, index=False)
    bdata.save_prepared(bdata.prepare(bdata.load_source(str(path)), "upload", seed=0))
    result = bq.run_quality("upload", encoder="tfidf")
    flags = rq.flags_frame(result)
    assert len(flags) == result.summary["flagged"] and flags["flag"].tolist() == list(range(1, len(flags) + 1))
    for _, f in flags.iterrows():  # file row N is line N + 1 of the CSV (after the header)
        assert df.loc[f[bdata.FILE_ROW] - 1, "text"] == f["text"]
    hits = set(flags[bdata.FILE_ROW] - 1) & set(flipped.tolist())
    assert len(hits) >= len(flipped) // 2  # the flipped rows are found under their own file rows
    assert rq.row_name(flags.iloc[0]) == f"file row {flags.iloc[0][bdata.FILE_ROW]:,} ({flags.iloc[0]['split']})"
    written = csv_frame(flags).to_csv(index=False)
    assert "\n'=HYPERLINK" in written or ",'=HYPERLINK" in written or "\"'=HYPERLINK" in written
    assert cli_main(["data", "quality", "upload", "--encoder", "tfidf", "--out", str(tmp_path / "no" / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: cannot write --out {tmp_path / 'no' / 'x.csv'}: folder {tmp_path / 'no'} does not exist"
