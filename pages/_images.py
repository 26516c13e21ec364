"""The Data page's image parts: the source's notices, sizes and channels, duplicates and a grid of sample images.

Layout only: every number and table comes from :mod:`bmcore.images`; class names and file names are data, shown as text.
"""

from pathlib import PurePosixPath

import plotly.express as px
import streamlit as st

from bmcore import images as bimg
from bmcore.display import md
from bmcore.images.codec import THUMB_PX
from bmcore.report import images as rimg

SAMPLES_PER_CLASS = 8
INTRO = ("An **image classification** dataset is one folder per class, named after the class, holding that class's "
         "images (`cat/1.png`, `dog/2.jpg`), optionally under `train/`, `validation/` and `test/`. Upload it as a "
         "`.zip`, give its folder, or a CSV/Parquet with an image column (paths or bytes) and a label column.")


def show_source(raw) -> None:
    """What was read: images per folder, and the reader's notes (conversions, files left out) as notices."""
    st.caption("Images per split of the source: " + ", ".join(f"{s} {len(df):,}" for s, df in raw.frames.items()))
    for note in raw.notes:
        st.info(md(note), icon=":material/info:")
    st.caption("Once saved, the label-quality check above finds images whose label looks wrong, outliers (a "
               "placeholder or an unrelated picture) and near duplicates.")


def show_sizes(ds, tile, side) -> None:
    """Sizes, aspect ratios and channels: a histogram in ``side`` (the column beside the class balance), tables below;
    the duplicate count in ``tile`` (the last of the page's metric tiles)."""
    stats = ds.stats
    tile.metric("Duplicate groups", f"{stats['duplicate_groups']:,}", help="sets of images with the same pixels")
    sizes = stats["image_sizes"]
    if sizes["distinct_sizes"] > 1:
        side.plotly_chart(px.histogram(rimg.size_frame(ds), x="aspect", color="split", barmode="overlay", opacity=0.6,
                                       nbins=40, title="Aspect ratio (width / height)"), key="data_aspect_chart")
        where = st.columns(3)
    else:  # one size: a chart would be a single bar, so the tables go beside the class balance
        side.markdown(f"**Every image is {int(sizes['width']['median'])}x{int(sizes['height']['median'])} pixels**")
        where = [side] * 3
    where[0].caption("Most common sizes (pixels)")
    where[0].dataframe(rimg.common_sizes_frame(stats), hide_index=True, key="data_sizes_table")
    where[1].caption("Modes and channels (L: grayscale, RGB: colour)")
    where[1].dataframe(rimg.modes_frame(stats), hide_index=True, key="data_modes_table")
    where[2].caption("Width, height and aspect ratio (width / height)")
    where[2].dataframe([{"": k, **v} for k, v in sizes.items() if isinstance(v, dict)], hide_index=True,
                       key="data_size_summary")

def show_duplicates(ds) -> None:
    """Exact duplicates (the same pixels) within and across splits, one row per group."""
    dups = bimg.duplicates_frame(ds)
    if len(dups):
        with st.expander(f"Exact duplicate images: {len(dups):,} groups, {int(dups['across_splits'].sum()):,} across splits"):
            st.dataframe(dups.drop(columns="sha256"), hide_index=True, key="data_duplicates_table")


def show_samples(ds, split: str = "train") -> None:
    """A grid of sample images: one row per class, its name as text beside its images."""
    st.subheader("Sample images")
    st.caption(md(f"{SAMPLES_PER_CLASS} random {split} images per class, enlarged or reduced to {THUMB_PX} pixels."))
    samples = rimg.sample_images(ds, SAMPLES_PER_CLASS, split)
    for label, group in samples.groupby("label", sort=False):
        name, grid = st.columns([1, 5], vertical_alignment="center")
        name.markdown(md(label))
        grid.image([bimg.thumbnail(b, THUMB_PX) for b in group["image"]],
                   caption=[md(PurePosixPath(p).name) for p in group["path"]], width=THUMB_PX)

