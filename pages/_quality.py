"""Label quality on the Data and Evaluate pages: find likely wrong labels, review them, save a new version.

Layout only: the scoring runs as a ``label-quality`` background job (:mod:`bmcore.jobs`), the result is read from the
dataset's folder (:mod:`bmcore.quality`), and session state keeps only the review decisions (row ids and actions).
"""

import shlex

import pandas as pd
import streamlit as st

from bmcore import jobs, runs
from bmcore import quality as bq
from bmcore.data import list_prepared, load_prepared
from bmcore.display import csv_frame, md
from bmcore.errors import BmcoreError
from bmcore.images.codec import THUMB_PX
from bmcore.report import quality as rq
from pages._ui import job_outcome, show_job

SHOWN = 200  # flagged rows per page of the review table (lowest quality first)
PREVIEW = 80  # characters of text in the row picker
GALLERY = 48  # flagged images shown as thumbnails per page of flags (each one also when picked for review)
ENCODER_NAMES = {"builtin:minilm": "MiniLM embeddings + TF-IDF", "tfidf": "TF-IDF only (fast)"}
DECISIONS = "quality_decisions"  # session state: {dataset: {"split:row": (action, new_label)}}
COLUMNS = {
    "flag": st.column_config.NumberColumn("flag", width="small", help="rank: 1 = the most doubtful label"),
    "text": st.column_config.TextColumn("text", width=360, help="Double-click a cell to read all of it."),
    "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="%.2f",
                                                  width="small", help="probability of the suggested label"),
    "quality": st.column_config.NumberColumn("quality", format="%.3f", width="small",
                                             help="probability of the given label, out of fold: low means doubtful"),
    "issues": st.column_config.TextColumn("issues", help="label issue, outlier (far from every other image), near "
                                          "duplicate (almost the same image as another)"),
    "sha256": None,  # an image's hash: how the thumbnails are matched to the flags, not for reading
}


def start_scoring(dataset: str, encoder: str | None, key: str) -> None:
    """The button that starts (or restarts) the label-quality job for ``dataset``."""
    label = "Find label issues" if bq.load_quality(dataset) is None else "Score again"
    if st.button(label, key=key, type="primary", icon=":material/fact_check:"):
        try:
            jobs.start("label-quality", {"dataset": dataset, "encoder": encoder,
                                         "precision": st.session_state.get("precision", "auto")}, key=dataset)
        except (BmcoreError, OSError) as exc:
            st.error(md(exc))
        else:
            st.rerun()


def scoring_job(dataset: str, key: str) -> bool:
    """Draw a running job for ``dataset`` (True), or how the last one ended (False)."""
    job = jobs.latest("label-quality", dataset)
    if job is not None and jobs.read(job)["state"] in runs.ACTIVE:
        show_job(job, key)
        return True
    job_outcome(job, "The last label-quality check")
    return False


def _pick_label(row: pd.Series, decisions: dict) -> str:
    text = str(row["text"]).replace("\n", " ")
    text = text if len(text) <= PREVIEW else text[:PREVIEW - 1] + "…"
    done = decisions.get(rq.decision_key(row))
    issues = f"{row['issues']} · " if row.get("issues") else ""
    return (f"[{done[0]}] " if done else "") + f"{rq.row_name(row)} · {issues}{row['given']} → {row['suggested']} · {text}"


def _thumbnails(dataset: str, rows: pd.DataFrame, **kwargs) -> None:
    """Flagged images (rows with a ``sha256``, the image's hash) as thumbnails, captioned as text; nothing for texts."""
    if "sha256" not in rows or rows.empty:
        return
    try:
        thumbs, captions = rq.flag_gallery(dataset, rows, **kwargs)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    st.image(thumbs, caption=[md(c) for c in captions], width=kwargs.get("size", THUMB_PX))


def _flag_page(dataset: str, flagged: pd.DataFrame) -> pd.DataFrame:
    """The flags of the page chosen (SHOWN at a time), with a line saying which of how many these are."""
    pages = -(-len(flagged) // SHOWN)
    c1, c2 = st.columns([1, 4], vertical_alignment="bottom") if pages > 1 else (None, st)
    page = int(c1.number_input("Page", 1, pages, 1, key=f"quality_page_{dataset}")) if c1 else 1
    start = (page - 1) * SHOWN
    shown = flagged.iloc[start:start + SHOWN].reset_index(drop=True)
    c2.caption(f"Flags {start + 1:,} to {start + len(shown):,} of {len(flagged):,}, lowest quality first"
               + (f"; {pages} pages of {SHOWN}." if pages > 1 else "."))
    return shown


def _bulk(shown: pd.DataFrame, selected: list[int], decisions: dict) -> None:
    """Keep or drop the rows selected in the table, or else every row shown that has no decision yet."""
    rows = shown.iloc[selected] if selected else shown[[rq.decision_key(r) not in decisions for _, r in shown.iterrows()]]
    what = f"the {len(rows):,} selected" if selected else f"all {len(rows):,} undecided rows shown"
    b1, b2 = st.columns(2)
    for col, action in ((b1, "keep"), (b2, "drop")):
        if col.button(f"{action.capitalize()} {what}", key=f"quality_bulk_{action}", disabled=rows.empty,
                      help="Select rows in the table (click their left edge) to decide for those only."):
            decisions.update({rq.decision_key(r): (action, "") for _, r in rows.iterrows()})
            st.rerun()


def review(dataset: str, names: list[str], result: bq.QualityResult) -> None:
    """Per row keep, relabel or drop (or many at once); the decisions so far; saving them as a new version."""
    flagged = rq.flags_frame(result)
    if flagged.empty:
        st.success("No row looks mislabeled.")
        return
    shown = _flag_page(dataset, flagged)
    event = st.dataframe(shown, hide_index=True, column_config=COLUMNS,
                         key=f"quality_flagged_table_{dataset}_{len(flagged)}_{shown['flag'].iloc[0]}", height=320,
                         on_select="rerun", selection_mode="multi-row")
    if "sha256" in shown:
        st.caption(f"The first {min(GALLERY, len(shown))} flagged images of this page: flag number, file name, issues, "
                   "given → suggested label. Pick any flag below to see it and decide.")
        _thumbnails(dataset, shown.head(GALLERY))
    st.download_button(f"All {len(flagged):,} flagged rows (CSV)", csv_frame(flagged).to_csv(index=False),
                       file_name=f"flags-{dataset}.csv", mime="text/csv", key="quality_flags_download",
                       icon=":material/download:")
    decisions: dict = st.session_state.setdefault(DECISIONS, {}).setdefault(dataset, {})
    _bulk(shown, list(event.selection.rows), decisions)
    c1, c2, c3, c4 = st.columns([3, 1.2, 1.2, 0.8], vertical_alignment="bottom")
    pick = c1.selectbox("Row to review", range(len(shown)), key=f"quality_row_{dataset}_{shown['flag'].iloc[0]}",
                        format_func=lambda i: _pick_label(shown.iloc[i], decisions))
    row = shown.iloc[pick]
    _thumbnails(dataset, shown.iloc[[pick]], size=2 * THUMB_PX)
    done = decisions.get(rq.decision_key(row))
    # One key per row: a widget shared by every row would carry the last row's choice over to this one.
    own = f"{dataset}_{rq.decision_key(row)}"
    action = c2.radio("Decision", bq.ACTIONS, key=f"quality_action_{own}", horizontal=True,
                      index=bq.ACTIONS.index(done[0]) if done else 0)
    label = done[1] if done and done[1] in names else row["suggested"]
    new_label = c3.selectbox("New label", names, key=f"quality_new_label_{own}", index=names.index(label)
                             if label in names else 0, disabled=action != "relabel")
    if c4.button("Record", key="quality_record", icon=":material/check:"):
        decisions[rq.decision_key(row)] = (action, new_label)
        st.rerun()
    if not decisions:
        st.caption("Pick a row, choose keep, relabel or drop, and record it. Rows you do not review are kept.")
        return
    changes = rq.changes_frame(decisions)
    st.markdown(f"**{len(changes)}** decisions: " + ", ".join(f"{(changes['action'] == a).sum()} {a}" for a in bq.ACTIONS))
    st.dataframe(changes, hide_index=True, key="quality_changes_table")
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    name = c1.text_input("New version's name", bq.next_version_name(dataset), key=f"quality_version_name_{dataset}").strip()
    c2.download_button("Changes (CSV)", csv_frame(changes).to_csv(index=False), file_name=f"changes-{dataset}.csv",
                       mime="text/csv", key="quality_download", icon=":material/download:")
    st.caption(md(f"The original {dataset!r} stays as it is; runs record the version they trained on. The same "
                  "from a terminal, with the CSV:"))
    st.code(shlex.join(["python", "-m", "bmcore", "data", "prepare", dataset, "--name", name or "NAME",
                        "--apply-changes", f"changes-{dataset}.csv"]), language="bash")
    b1, b2 = st.columns(2)
    if b1.button("Save as a new version", key="quality_save", type="primary", icon=":material/save:"):
        try:
            new = bq.save_version(load_prepared(dataset), changes, name or None, next_free=True)
        except (BmcoreError, OSError) as exc:
            st.error(md(exc))
        else:
            st.session_state[DECISIONS].pop(dataset, None)
            st.session_state["quality_saved"] = new.name
            st.rerun()
    if b2.button("Clear the decisions", key="quality_clear"):
        st.session_state[DECISIONS].pop(dataset, None)
        st.rerun()


def show_label_quality() -> None:
    """The Data page's "Label quality" section, for any prepared dataset in the workspace."""
    prepared = {d["name"]: d for d in list_prepared() if bq.supports(d)}
    names = list(prepared)
    with st.expander("Label quality: find the labels that are wrong", icon=":material/fact_check:",
                     expanded=bool(st.session_state.get("quality_open"))):
        st.markdown("Most datasets carry some wrong labels. This check scores every row with **confident learning** "
                    "(cleanlab): a fast model that never saw the row, trained by k-fold cross-validation, says how "
                    "likely its label is; rows whose label it doubts beyond the estimated noise rate are flagged, "
                    "with the label it suggests. For images, **outliers** (a placeholder, a broken or an unrelated picture among "
                    "the photos) and **near duplicates** are flagged too. Review them, then save a **new version** of "
                    "the dataset.")
        saved = st.session_state.pop("quality_saved", None)
        if saved:
            st.success(md(f"Saved the reviewed dataset as {saved!r}: choose it on the Train page."))
        if not names:
            st.caption("No prepared single-label datasets yet: save one below first (the check does not work on "
                       "multi-label datasets).")
            return
        c1, c2 = st.columns(2)
        dataset = c1.selectbox("Prepared dataset", names, key="quality_dataset")
        encoders = bq.quality_encoders(prepared[dataset])
        encoder = c2.radio("Features", encoders, key="quality_encoder", horizontal=True,
                           format_func=lambda e: ENCODER_NAMES.get(e, f"{e} features")) if len(encoders) > 1 else encoders[0]
        st.caption(f"Out-of-fold probabilities from {bq.describe_model(encoder)} ({bq.DEFAULT_FOLDS} folds).")
        if scoring_job(dataset, "quality"):
            return
        result = bq.load_quality(dataset)
        start_scoring(dataset, encoder, "quality_start")
        if result is None:
            st.info(md(f"{dataset!r} has not been checked yet (or was prepared again since)."))
            return
        s = result.summary
        for col, (label, value, hint) in zip(st.columns(4), rq.summary_tiles(s), strict=True):
            col.metric(label, value, help=hint)
        st.caption(md(f"Scored {s['created']} with {s['encoder']} in {s['seconds']} s."))
        st.dataframe(rq.class_summary_frame(result), hide_index=True, key="quality_class_table")
        review(dataset, list(prepared[dataset].get("label_names", [])), result)
        if len(result.conflicts):
            st.markdown("**Near-duplicates with different labels**")
            st.dataframe(result.conflicts.head(SHOWN), hide_index=True, key="quality_conflicts_table")
        outliers = result.scores[result.scores["outlier"]].sort_values("outlier_score", ascending=False)
        if len(outliers):
            st.markdown("**Outliers for their class** (far from every other row with the same label)")
            st.dataframe(outliers[["split", "row", "text", "given", "outlier_score"]].head(SHOWN), hide_index=True,
                         column_config=COLUMNS, key="quality_outliers_table")


def show_gold_check(predictions: pd.DataFrame, dataset: str, split: str) -> None:
    """The Evaluate page's "model mistakes or label mistakes?": errors whose gold label itself looks wrong."""
    st.subheader("Model mistakes or label mistakes?")
    st.markdown("Some errors are the test label's fault. The label-quality check (see the Data page) flags rows whose "
                "gold label looks wrong; among the errors below they are marked, with the label it suggests.")
    if scoring_job(dataset, "evaluate_quality"):
        return
    result = bq.load_quality(dataset)
    if result is None:
        st.caption(md(f"{dataset!r} has not been checked for label errors yet."))
        start_scoring(dataset, None, "evaluate_quality_start")
        return
    try:
        marked = rq.mark_predictions(predictions, result, split)
    except BmcoreError as exc:
        st.warning(md(exc))
        return
    errors = marked[~marked["correct"].astype(bool)]
    suspect = errors[errors["gold_suspect"]]
    st.markdown(f"**{len(suspect):,}** of {len(errors):,} errors have a gold label that looks wrong"
                + (f"; in {int((suspect['pred'] == suspect['suggested']).sum()):,} the model agrees with the "
                   "suggested label." if len(suspect) else "."))
    cols = [c for c in ("text", "gold", "pred", "suggested", "gold_suspect", "confidence") if c in errors]
    st.dataframe(errors.sort_values("gold_suspect", ascending=False, kind="stable")[cols].head(1000), hide_index=True,
                 column_config=COLUMNS, key="evaluate_gold_table")
