"""Evaluate: score a model on a locked split next to a baseline; the results sections its task names (confusions,
errors, curves and calibration for a classifier; correlation, a scatter and the error by range for a score), comparison."""

from pathlib import Path

import streamlit as st

from bmcore import evaluate as ev
from bmcore import evaluation_files as evf
from bmcore import jobs, report, run_list, runs
from bmcore.data import dataset_dir, list_prepared
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.modalities import get_modality
from bmcore.report import evaluation as rev
from bmcore.tasks import get_task
from pages import _scoring as upload_ui
from pages._evaluation import Scored, load, split_images
from pages._export import show_export
from pages._sections import DRAWERS
from pages._ui import job_outcome, keep, show_job, start_job

SOURCES = ("A finished run", "Local model folder")
DATA_KINDS = ("A prepared dataset", "Upload a file")


def fail(exc: Exception | str) -> None:
    st.error(md(exc))
    st.stop()


def on_run_change() -> None:
    # A new run: default to its own dataset and the test split, where its results already exist.
    run = completed.get(st.session_state.get("evaluate_run"))
    if run is not None and run.dataset in dataset_names:
        st.session_state["evaluate_dataset"] = run.dataset
    st.session_state["evaluate_split"] = "test"


# --- page ---------------------------------------------------------------------------------

st.title("Evaluate")
st.markdown(
    "Evaluation scores a trained model on the **test split**, which was locked away during training, so the score is "
    "honest. Every result sits next to a **baseline**, a simple model (for texts, TF-IDF word counts with a linear model) "
    "trained on the same data in seconds: if the transformer does not beat it clearly, fine-tuning was not worth it. What "
    "the results show depends on what the model predicts (a class, a set of labels or a score); each part explains its "
    "numbers."
)

datasets = list_prepared()
dataset_names = [d["name"] for d in datasets]
# Pretraining (mlm) runs have no classifier to score; fine-tunes from them are listed with their base model.
completed = {r.name: r for r in run_list.finished_runs(classifiers=True)}
if not dataset_names:
    st.info("No prepared datasets in the workspace yet: prepare one on the Data page, then train a model.")
    st.page_link("pages/data.py", label="Go to the Data page", icon=":material/table_chart:")
    st.stop()

st.subheader("Model and data")
keep("evaluate_source", "evaluate_run", "evaluate_model_path", "evaluate_dataset", "evaluate_split", "evaluate_cm_norm",
     "evaluate_data_kind",
     "evaluate_cell_gold", "evaluate_cell_pred", "evaluate_lcell_label", "evaluate_lcell_cell")  # across page visits
c1, c2, c3 = st.columns([1.4, 1, 0.6])
source = c1.radio("Model", SOURCES, key="evaluate_source", horizontal=True)
this_run: str | None = None
run_dataset: str | None = None
model_dir = ""
# Every input is drawn before any st.stop(): a widget skipped for one run loses its state, and the browser can then
# show a different choice from the one the page uses.
if source == SOURCES[0]:
    if completed:
        this_run = c1.selectbox("Finished run", list(completed), key="evaluate_run", on_change=on_run_change)
        model_dir = str(Path(completed[this_run].path) / runs.MODEL_DIR)
        run_dataset = completed[this_run].dataset
    else:
        c1.info("No finished runs yet: train one on the Train page, or give a local model folder.")
else:
    model_dir = c1.text_input("Path to a fine-tuned model folder (save_pretrained, safetensors)",
                              key="evaluate_model_path").strip()
uploaded = None
if c2.radio("Data", DATA_KINDS, key="evaluate_data_kind", horizontal=True) == DATA_KINDS[0]:
    if st.session_state.get("evaluate_dataset") not in dataset_names:
        st.session_state["evaluate_dataset"] = run_dataset if run_dataset in dataset_names else dataset_names[0]
    dataset = c2.selectbox("Prepared dataset", dataset_names, key="evaluate_dataset")
    meta = datasets[dataset_names.index(dataset)]
    sizes = meta.get("splits", {})
    split_options = rev.split_choices(sizes)
    if st.session_state.get("evaluate_split") not in split_options:
        st.session_state["evaluate_split"] = rev.default_split(split_options)
    split = c3.selectbox("Split", split_options, key="evaluate_split",
                         help="test is the honest score. validation was used to pick the best checkpoint and fit the temperature.")
    c2.caption(f"{len(meta.get('label_names', []))} {report.label_unit(meta.get('problem_type'))} · " + report.split_sizes(sizes))
else:
    uploaded = upload_ui.upload_box(c2)
if not model_dir:
    if source == SOURCES[0]:
        st.page_link("pages/train.py", label="Go to the Train page", icon=":material/model_training:")
    else:
        st.info("Give the path of a model folder.")
    st.stop()
if st.session_state.get("evaluate_data_kind") == DATA_KINDS[1] and uploaded is None:
    st.info("Upload a file to score every image or row in it.")
    st.stop()

baseline_train: str | None = None
try:
    if uploaded is None:
        ev.check_labels(ev.model_label_names(model_dir), list(meta.get("label_names", [])))
        out_dir = evf.evaluation_dir(model_dir, dataset, split, run_dataset)
        data_folder, shown_data = dataset_dir(dataset), dataset
    else:  # an upload is scored whole; its evaluation folder also holds the rows read from it
        up = upload_ui.target(uploaded, model_dir, run_dataset)
        out_dir, dataset, split, shown_data = up.out_dir, up.key, up.split, up.name
        data_folder, meta = out_dir, upload_ui.meta(up)
        baseline_train = run_dataset if run_dataset in dataset_names else None  # the run's train split, if kept
        sizes = meta.get("splits", {})
except BmcoreError as exc:
    fail(exc)

st.caption("The same evaluation from a terminal (with this workspace in BMCORE_WORKSPACE):")
st.code(rev.evaluate_command(model_dir, shown_data, split, out_dir, baseline_train), language="bash")

if not evf.is_fresh(out_dir, model_dir, None if uploaded is not None else data_folder):
    if uploaded is not None:  # read (and refused in one line) before anything is written
        try:
            ds, split = upload_ui.read(uploaded.name, dataset, model_dir, uploaded.getvalue())
        except BmcoreError as exc:
            fail(exc)
        sizes = {split: len(ds.splits[split])}
    # Scoring runs as a background job on the device queue: the page only draws its progress.
    job = jobs.latest("evaluate", str(out_dir))
    if job is not None and jobs.read(job)["state"] in runs.ACTIVE:
        show_job(job, "evaluate")
        st.stop()
    st.info(rev.scoring_note(shown_data, split, sizes))
    job_outcome(job, "The last scoring")
    if st.button("Evaluate", type="primary", key="evaluate_start", icon=":material/play_arrow:"):
        try:
            params = (upload_ui.job_params(up, ds, model_dir, baseline_train) if uploaded is not None else
                      {"model_dir": model_dir, "dataset": dataset, "split": split, "out_dir": str(out_dir),
                       "precision": st.session_state.get("precision", "auto")})
        except (BmcoreError, OSError) as exc:
            fail(exc)
        start_job("evaluate", params, str(out_dir))
    st.stop()

mtime = evf.evaluation_mtime(out_dir)
try:
    modality = get_modality(meta.get("modality"))
    images = split_images(str(data_folder), split, meta.get("created")) if modality.thumbnails else None
    scored = Scored(load(str(out_dir), mtime), out_dir, mtime, model_dir, dataset, split, this_run, completed, images)
    # The task names its results sections, the modality leaves out those its inputs have no view for.
    sections = modality.evaluate_sections(get_task(scored.result.problem_type, modality.name).evaluate_sections)
except BmcoreError as exc:
    fail(exc)
if modality.evaluate_note:
    st.caption(modality.evaluate_note)
for key in sections if uploaded is None else upload_ui.sections(sections):
    DRAWERS[key](scored)
if this_run is not None:
    show_export(Path(completed[this_run].path))
