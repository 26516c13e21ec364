"""The Data page's Label quality section on an image dataset (AppTest): the flagged images as thumbnails with their
issue types, the planted photo among them; relabel one, drop one, save a new version that holds the change."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from _quality_images import NAME, PLANTED, copy_scored
from test_quality_page import button, open_data_page

from bmcore import data as bdata
from bmcore import quality as bq
from bmcore.report import quality as rq


def test_review_flagged_images_relabel_one_drop_one_save_a_version(tmp_path_factory: pytest.TempPathFactory,
                                                                  workspace: Path):
    moved = copy_scored(tmp_path_factory, workspace)
    result = bq.load_quality(NAME)
    flags = rq.flags_frame(result)
    names = [PurePosixPath(t).name for t in flags["text"]]
    at = open_data_page()
    assert NAME in at.selectbox(key="quality_dataset").options  # image datasets are offered now
    at.selectbox(key="quality_dataset").set_value(NAME).run()
    assert not at.exception and not at.error
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Look mislabeled"] == f"{result.summary['flagged']:,}" and "Near duplicates" in tiles
    assert tiles["Outliers"] == f"{result.summary['outliers']:,}"
    # Every flag of the page as a thumbnail, captioned (as text) flag number, file name, issues, given → suggested;
    # the picked flag once more, larger.
    gallery, picked = at.image[-2], at.image[-1]
    assert len(gallery.value) == min(len(flags), 48) and all(gallery.value)
    assert gallery.captions[0].startswith(f"1\\. {names[0]}: {flags['issues'].iloc[0]}")
    assert any(PLANTED in c and "outlier" in c for c in gallery.captions)
    assert picked.captions == gallery.captions[:1]
    # Relabel a flipped image to its suggestion, drop the planted photo.
    flip = next(i for i, n in enumerate(names) if n in moved and "label issue" in flags["issues"].iloc[i])
    photo = names.index(PLANTED)
    for i, action in ((flip, "relabel"), (photo, "drop")):
        row = flags.iloc[i]
        at.selectbox(key=f"quality_row_{NAME}_1").set_value(i).run()
        assert at.image[-1].captions[0].startswith(f"{i + 1}\\. {names[i]}")
        at.radio(key=f"quality_action_{NAME}_{rq.decision_key(row)}").set_value(action).run()
        button(at, "quality_record").click().run()
        assert not at.exception
    assert any(m.value.startswith("**2** decisions: 0 keep, 1 relabel, 1 drop") for m in at.markdown)
    button(at, "quality_save").click().run()
    assert not at.exception and any(f"{NAME}-v2" in s.value for s in at.success)
    new = bdata.load_prepared(f"{NAME}-v2")
    assert new.modality == "image" and new.version["relabelled"] == 1 and new.version["dropped"] == 1
    paths = {PurePosixPath(p).name: (s, lab) for s in bdata.SPLITS
             for p, lab in zip(new.splits[s]["path"], new.splits[s]["label"], strict=True)}
    assert PLANTED not in paths and paths[names[flip]][1] == flags["suggested"].iloc[flip]
    assert f"{NAME}-v2" in at.selectbox(key="quality_dataset").options
