"""Label quality for images: the built-in model's pooled features, out-of-fold probabilities and cleanlab's Datalab
flag flipped labels, a planted photo among Fashion-MNIST images (an outlier) and near duplicates; the review saves a
new image version; the CLI scores an image dataset."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pandas as pd
import pytest
from _quality_images import COPY, NAME, PLANTED, scored_workspace

from bmcore import data as bdata
from bmcore import quality as bq
from bmcore.cli import main as cli_main
from bmcore.quality import images as bqi
from bmcore.report import quality as rq


def file_names(frame: pd.DataFrame) -> list[str]:
    return [PurePosixPath(str(p)).name for p in frame["text"]]


def test_flipped_labels_and_a_planted_photo_are_flagged(tmp_path_factory: pytest.TempPathFactory, workspace: Path):
    ws, moved = scored_workspace(tmp_path_factory)
    import shutil

    shutil.copytree(ws, workspace, dirs_exist_ok=True)
    result = bq.load_quality(NAME)
    assert result is not None
    scores, summary = result.scores, result.summary
    assert len(scores) == 4 * 60 + 2 and summary["encoder"] == "builtin:efficientnet-lite0"
    assert {"path", "sha256", "issues", "near_duplicate", "review", "review_score"} <= set(scores)
    # The planted photo is the most outlying image, and flagged as an outlier.
    photo = scores[[n == PLANTED for n in file_names(scores)]].iloc[0]
    assert photo["outlier"] and "outlier" in photo["issues"] and photo["outlier_score"] == scores["outlier_score"].max()
    # The JPEG copy of an image, in another class folder, is a near duplicate that names its original.
    copy = scores[[n == COPY for n in file_names(scores)]].iloc[0]
    assert copy["near_duplicate"] and "near duplicate of " in copy["issues"], copy["issues"]
    original = copy["issues"].split("near duplicate of ")[1].split(" and ")[0]
    assert scores.loc[scores["text"] == original, "near_duplicate"].all()
    # Most flipped labels are among the label issues, and most label issues are flips.
    issues = set(file_names(scores[scores["issue"]]))
    # (Over six draws of 9 flips among 300 images, cleanlab found 70% of them, and 90% of its flags were flips.)
    assert len(issues & moved) > len(moved) / 2 and len(issues & moved) >= len(issues) / 2, (issues, moved)
    print(f"found {len(issues & moved)} of {len(moved)} flips among {len(issues)} label issues; "
          f"{summary['seconds']} s ({summary['embed_seconds']} s embedding)")
    # The review lists every flagged image, worst first, with its issue types; flags and summary agree.
    flags = rq.flags_frame(result)
    assert len(flags) == summary["to_review"] == int(scores["review"].sum())
    assert summary["flagged"] == int(scores["issue"].sum()) and summary["outliers"] == int(scores["outlier"].sum())
    assert (flags["issues"] != "").all() and PLANTED in file_names(flags)
    thumbs, captions = rq.flag_gallery(NAME, flags.head(5))
    assert len(thumbs) == 5 and all(t.startswith(b"\x89PNG") for t in thumbs)
    assert captions[0].startswith(f"1. {file_names(flags)[0]}: {flags['issues'].iloc[0]}; {flags['given'].iloc[0]} → ")
    # Relabel a flipped image to its suggestion and drop the photo: a new image version, the original untouched.
    original = bdata.load_prepared(NAME)
    names = file_names(flags)
    flip = flags[[n in moved and "label" in i for n, i in zip(names, flags["issues"], strict=True)]].iloc[0]
    drop = flags[[n == PLANTED for n in names]].iloc[0]
    changes = rq.changes_frame({rq.decision_key(flip): ("relabel", flip["suggested"]), rq.decision_key(drop): ("drop", "")})
    # With the file names the flags table shows: the check that the changes were made for this version.
    new = bq.save_version(original, changes.merge(flags[["split", "row", "text"]], on=["split", "row"]))
    back = bdata.load_prepared(new.name)
    assert back.modality == "image" and back.version["relabelled"] == 1 and back.version["dropped"] == 1
    assert PLANTED not in [PurePosixPath(p).name for s in bdata.SPLITS for p in back.splits[s]["path"]]
    assert bdata.load_prepared(NAME).content_hash() == original.content_hash()


def test_cli_scores_an_image_dataset(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    from _quality_images import class_folder

    folder, _ = class_folder(tmp_path / "small", per_class=12, flips=2)
    bdata.save_prepared(bdata.prepare(bdata.load_source(str(folder)), "small", seed=0))
    out = tmp_path / "scores.csv"
    assert cli_main(["data", "quality", "small", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    scores = pd.read_csv(out)
    assert summary["encoder"] == "builtin:efficientnet-lite0" and summary["rows"] == len(scores) == 4 * 12 + 2
    assert summary["to_review"] == int(scores["review"].sum()) and "issues" in scores
    assert bq.load_quality("small").summary["rows"] == summary["rows"]
    assert cli_main(["data", "quality", "small", "--encoder", "tfidf"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: the encoder 'tfidf' does not read image data; 'small' takes builtin:efficientnet-lite0"


def test_a_handful_of_images_is_checked_and_prints_nothing(capsys: pytest.CaptureFixture):
    """Fewer images than Datalab's 10 neighbours: the checks still run (fewer neighbours), and nothing reaches stdout
    (the CLI's JSON). Synthetic features: the model is tested above."""
    import numpy as np

    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 8)).astype(np.float32)
    features[1] = features[0]
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    issues = bqi.find_image_issues(["a", "b"] * 3, rng.dirichlet([1, 1], size=6), features)
    assert issues["is_near_duplicate_issue"].tolist()[:2] == [True, True]
    assert bqi.issue_names(issues, [f"{i}.png" for i in range(6)])[:2] == ["near duplicate of 1.png", "near duplicate of 0.png"]
    assert capsys.readouterr().out == ""
