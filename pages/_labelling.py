"""The Data page's "Label texts" section: start or open a labelling project, label its texts one at a time (keyboard
shortcuts) or a batch in a table, retrain the few-shot model that picks what to label next, follow the learning
curve, save the labels as a dataset; and the simulation that shows whether the picking helps.

Layout only: a label is written by :mod:`bmcore.labelling.project` the moment it is given, the step and the simulation
run as background jobs (:mod:`bmcore.jobs`), and what is shown is worked out in :mod:`bmcore.report.labelling`.
Session state keeps the open project's name, the rows skipped and the undo stack (row ids and labels).
"""

import pandas as pd
import streamlit as st

from bmcore import jobs, limits, runs
from bmcore.data import list_prepared, source_fingerprint, suggest_name
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.fewshot import NAME_EXAMPLES
from bmcore.labelling.export import export_dataset
from bmcore.labelling.project import Project, create_project, give_label, give_labels, labels, list_projects, load_project
from bmcore.labelling.simulate import SIMULATE_JOB, read_simulation
from bmcore.labelling.sources import file_columns, read_labelling_texts
from bmcore.labelling.step import (LOOP_BATCH, LOOP_MAX_STEPS, LOOP_MIN_STEPS, LOOP_MODEL, STEP_JOB, STEPS_PER_ROW,
                                   STRATEGIES, read_curve, read_picks)
from bmcore.report import labelling as rl
from bmcore.report.few_shot import few_shot_offered
from pages._ui import job_outcome, keep, show_job, start_job

INTRO = ("**Active learning**: the model picks the texts it is least sure of, among typical ones and spread over the "
         "data, in the hope that each label teaches it more than one drawn at random. **Few-shot training** (SetFit) "
         "retrains it on your labels and your class names after each batch, and it picks the next batch. Measured "
         "on emotion and AG News (3 seeds, 200 labels), its picks were no better than random ones: within about two "
         "points, more often behind than ahead. The simulation below tells which pays on your data, and the random "
         "strategy is one click away.")
FILE_TYPES = ["csv", "tsv", "txt", "json", "jsonl", "ndjson", "parquet", "pq", "xlsx", "xls"]
NEW = "(new project)"  # never a project's name: names hold no brackets or spaces
DETECT = "(detect)"
MODES = ("One at a time", "A batch in a table")
OPEN = "label_open"  # hand-over: the project to open on the next run
SKIPPED = "label_skipped_rows"  # {project: [rows skipped in this session]}
UNDO = "label_undo_stack"  # {project: [(row, its label before, None if none)]}, the labels given in this session
UNDO_DEPTH = 200
NAMES_HELP = (f"Each class name that is a word, not a code, also becomes {NAME_EXAMPLES} examples 'This sentence is "
              "NAME' of its class: the model starts from what the names mean. It helps most with the fewest labels.")
TRAIN_STEPS_HELP = (f"Steps of 16 pairs of labelled texts: the few-shot model trains {STEPS_PER_ROW} a labelled text, "
                    f"at least {LOOP_MIN_STEPS} and at most this many ({LOOP_MAX_STEPS} by default). On a CPU a step "
                    "takes 1 to 5 s with builtin:minilm, on a GPU a fraction of that.")
ERROR = "label_error"  # a label refused in a button's callback, shown on the next run
EXPORTED = "label_exported"  # the last export's result, with the project it came from
SETTINGS = {"label_mode": MODES[0], "label_strategy": STRATEGIES[0], "label_batch": LOOP_BATCH,
            "label_max_steps": LOOP_MAX_STEPS, "label_model": LOOP_MODEL, "label_names": True}


@st.cache_data(show_spinner="Reading the file...", max_entries=4)
def _columns(name: str, fingerprint: str, _data: bytes) -> list[str]:
    return file_columns(name, _data)


@st.cache_data(show_spinner="Reading the texts...", max_entries=8)
def _texts(name: str, fingerprint: str, _data: bytes, text_column: str | None, label_column: str | None):
    return read_labelling_texts(name, _data, text_column, label_column)


def _session(key: str, project: str) -> list:
    return st.session_state.setdefault(key, {}).setdefault(project, [])


def _give(project: str, row: int, label: str | None, before: str | None) -> None:
    """on_click of a class button: the label is saved before the next text is drawn."""
    try:
        give_label(project, row, label)
    except (BmcoreError, OSError) as exc:
        st.session_state[ERROR] = str(exc)
        return
    stack = _session(UNDO, project)
    stack.append((row, before))
    del stack[:-UNDO_DEPTH]


def _skip(project: str, row: int) -> None:
    _session(SKIPPED, project).append(row)


def _undo(project: str) -> None:
    """Give the last labelled row back the label it had before (none: cleared); it comes up to label again."""
    stack = _session(UNDO, project)
    if not stack:
        return
    row, before = stack.pop()
    try:
        give_label(project, row, before)
    except (BmcoreError, OSError) as exc:
        st.session_state[ERROR] = str(exc)


def choose_project() -> str | None:
    """The project picker; a new project's form when "(new project)" is chosen (then None)."""
    if OPEN in st.session_state:
        st.session_state["label_project"] = st.session_state.pop(OPEN)
    keep("label_project")
    names = [p["name"] for p in list_projects()]
    if st.session_state.get("label_project") not in (*names, NEW):
        st.session_state.pop("label_project", None)
    chosen = st.selectbox("Labelling project", [*names, NEW], key="label_project",
                          help="Projects live in the workspace's labelling/ folder, with every label as it was given.")
    if chosen == NEW:
        new_project()
        return None
    return chosen


def new_project() -> None:
    """Upload texts, choose their columns, name the classes and the project, start it."""
    upload = st.file_uploader("Texts to label: CSV, TSV, JSON, JSONL, Parquet, Excel, or .txt (one text per line)",
                              type=FILE_TYPES, key="label_upload", max_upload_size=max(1, int(limits.current().max_upload_mb)))
    if upload is None:
        st.caption("A label column may bring labels for some rows; you label the rest here.")
        return
    data = upload.getvalue()
    fingerprint = source_fingerprint(upload.name, data)
    try:
        columns = _columns(upload.name, fingerprint, data)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    text_column = label_column = None
    if columns:
        c1, c2 = st.columns(2)
        text_column = c1.selectbox("Text column", [DETECT, *columns], key=f"label_text_column_{fingerprint[:8]}")
        label_column = c2.selectbox("Label column (labels for some rows; optional)", [DETECT, *columns],
                                    key=f"label_label_column_{fingerprint[:8]}")
        text_column, label_column = (None if c == DETECT else c for c in (text_column, label_column))
    try:
        frame, notes = _texts(upload.name, fingerprint, data, text_column, label_column)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    given = int(frame["given"].notna().sum())
    st.caption(md(f"{len(frame):,} texts, {given:,} with a label. " + "; ".join(notes)))
    st.dataframe(frame.head(50), hide_index=True, height=200)
    c1, c2 = st.columns([2, 1])
    classes = c1.text_input("Classes, separated by commas (keys 1 to 9 label them in this order)", key="label_classes",
                            placeholder="World, Sports, Business, Sci/Tech",
                            help="Leave empty to take the classes from the label column.").strip()
    name = c2.text_input("Project name", suggest_name(upload.name, fingerprint), key=f"label_name_{fingerprint[:8]}").strip()
    if st.button("Start labelling", type="primary", key="label_create", icon=":material/label:"):
        try:
            create_project(name, upload.name, text_column, label_column, classes or None, data=data)
        except (BmcoreError, OSError) as exc:
            st.error(md(exc))
        else:
            st.session_state[OPEN] = name
            st.rerun()
    st.caption("The same from a terminal:")
    st.code(rl.new_command(name or "NAME", upload.name, [c.strip() for c in classes.split(",") if c.strip()] or ["A", "B"],
                           text_column, label_column), language="bash")


def label_one(project: Project, given: dict[int, str], batch: dict) -> None:
    """The next text, a button per class (keys 1 to 9), Skip and Undo; each click saves at once."""
    name, undo = project.name, _session(UNDO, project.name)
    if not batch["rows"]:
        st.success("Every text is labelled or skipped.")
        return
    row = batch["rows"][0]
    texts = project.texts.set_index("row")
    st.caption(f"Row {row} (the file's row {int(texts.at[row, 'file_row']):,}) · {len(given):,} of {project.rows:,} "
               "texts labelled")
    with st.container(border=True):
        st.text(str(texts.at[row, "text"]))
    if batch["suggested"]:
        st.caption(f"The model suggests {md(batch['suggested'][0])}, {max(batch['probs'][0]):.0%} sure.")
    buttons = st.container(horizontal=True)
    for i, cls in enumerate(project.classes):
        buttons.button(md(cls), key=f"label_class_{i}", shortcut=str(i + 1) if i < 9 else None, on_click=_give,
                       args=(name, row, cls, given.get(row)))
    buttons.button("Skip", key="label_skip", shortcut="S", icon=":material/skip_next:", on_click=_skip, args=(name, row))
    buttons.button("Undo", key="label_undo", shortcut="U", icon=":material/undo:", disabled=not undo, on_click=_undo,
                   args=(name,), help="Take back the last label you gave here; its text comes up again.")
    st.caption("Keys: " + ", ".join(f"{i + 1} {md(c)}" for i, c in enumerate(project.classes[:9]))
               + ", S skip, U undo. Each label is saved the moment you give it: the same from a terminal:")
    st.code(rl.label_commands(name, row=row)["give"], language="bash")


def label_table(project: Project, given: dict[int, str], batch: dict) -> None:
    """The texts to label as a table with a class column to fill; Save gives every label filled."""
    frame = rl.batch_frame(project, batch, given)
    if frame.empty:
        st.success("Every text is labelled or skipped.")
        return
    edited = st.data_editor(
        frame, hide_index=True, key=f"label_table_{project.name}_{len(given)}", disabled=["row", "text", "suggested",
                                                                                        "confidence"],
        column_config={"label": st.column_config.SelectboxColumn("label", options=project.classes, width="small"),
                       "text": st.column_config.TextColumn("text", width="large"),
                       "confidence": st.column_config.NumberColumn("confidence", format="%.2f", width="small")})
    chosen = {int(r): str(v) for r, v in zip(edited["row"], edited["label"], strict=True) if isinstance(v, str) and v}
    if st.button(f"Save {len(chosen)} labels", key="label_table_save", type="primary", disabled=not chosen,
                 icon=":material/save:"):
        try:
            give_labels(project.name, chosen)
        except (BmcoreError, OSError) as exc:
            st.error(md(exc))
        else:
            _session(UNDO, project.name).extend((r, given.get(r)) for r in chosen)
            st.rerun()
    st.caption("Pick a class in the label column of the rows you know; rows left empty stay unlabelled.")


def show_labelling_area(project: Project, given: dict[int, str], picks: dict | None) -> None:
    skipped = _session(SKIPPED, project.name)
    batch = rl.next_batch(project, picks, given, skipped)
    st.caption(md(rl.picks_note(picks, batch)))
    if error := st.session_state.pop(ERROR, None):
        st.error(md(error))
    mode = st.radio("Label", MODES, key="label_mode", horizontal=True, label_visibility="collapsed")
    (label_one if mode == MODES[0] else label_table)(project, given, batch)
    if skipped and st.button(f"Bring back the {len(skipped)} skipped texts", key="label_unskip"):
        skipped.clear()
        st.rerun()


def show_step(name: str) -> None:
    """The step's settings and its button (or the job running it), with its command."""
    st.subheader("Retrain and pick the next batch")
    c1, c2, c3, c4 = st.columns([1.3, 1, 1, 2.5])
    strategy = c1.radio("Strategy", STRATEGIES, key="label_strategy", horizontal=True,
                        help="uncertainty: the texts the model is least sure of among typical ones (unsure texts in "
                             "crowded parts of the data, not loners), spread over the data (clusters of their "
                             "embeddings); random: texts drawn at random, to compare.")
    batch = int(c2.number_input("Batch size", 1, 1000, key="label_batch", help="texts to pick"))
    steps = int(c3.number_input("Training steps, at most", 1, 100_000, key="label_max_steps",
                                help=TRAIN_STEPS_HELP))
    model = c4.text_input("Model", key="label_model", help="builtin:minilm (a sentence-transformers model, the family "
                          "SetFit was built on), or the path of a local save_pretrained folder").strip() or LOOP_MODEL
    names = st.checkbox("Learn from the class names", key="label_names", help=NAMES_HELP)
    job = jobs.latest(STEP_JOB, name)
    if job is not None and jobs.read(job)["state"] in runs.ACTIVE:
        show_job(job, "label_step")
    else:
        job_outcome(job, "The last retrain")
        if st.button("Retrain and pick the next batch", type="primary", key="label_step_start",
                     icon=":material/model_training:"):
            start_job(STEP_JOB, {"project": name, "strategy": strategy, "batch": batch, "max_steps": steps,
                                 "model": model, "label_names": names}, key=name)
        st.caption("It runs in the background: keep labelling meanwhile. The same from a terminal:")
    st.code(rl.label_commands(name, strategy=strategy, batch=batch, model=model, max_steps=steps,
                              label_names=names)["step"],
            language="bash", wrap_lines=True)


def show_progress(project: Project, given: dict[int, str], curve: list[dict]) -> None:
    """Labelled texts per class beside the learning curve."""
    st.subheader("Progress")
    left, right = st.columns([1, 2])
    left.metric("Labelled", f"{len(given):,} of {project.rows:,}")
    counts = rl.counts_frame({c: sum(1 for v in given.values() if v == c) for c in project.classes})
    left.dataframe(counts, hide_index=True, column_config={"labelled": st.column_config.ProgressColumn(
        "labelled", format="%d", min_value=0, max_value=max(1, int(counts["labelled"].max())))})
    figure = rl.curve_figure(curve)
    if figure is None:
        right.info("The learning curve starts at the first retrain that holds out labelled rows of two classes or "
                   "more.", icon=":material/show_chart:")
    else:
        right.plotly_chart(figure, key="label_curve_chart")
    right.caption(rl.HELD_OUT_NOTE)
    if curve:
        with right.expander("Every step"):
            st.dataframe(rl.curve_frame(curve), hide_index=True)


def show_export(name: str) -> None:
    """Save the labelled rows as a prepared dataset, then open the Train page on it."""
    st.subheader("Save as a dataset")
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    dataset = c1.text_input("Dataset name", name, key=f"label_dataset_name_{name}",
                            help="Taken already: saved as NAME-v2, NAME-v3... beside it.").strip()
    if c2.button("Save as a dataset", key="label_export", type="primary", icon=":material/save:"):
        try:
            st.session_state[EXPORTED] = {**export_dataset(name, dataset or None), "project": name}
        except (BmcoreError, OSError) as exc:
            st.error(md(exc))
    saved = st.session_state.get(EXPORTED)
    if saved and saved["project"] == name:
        splits = ", ".join(f"{s} {n}" for s, n in saved["splits"].items())
        st.success(md(f"Saved {saved['labels']} labelled texts as the dataset {saved['name']!r} ({splits})."))
        for note in saved.get("notes", []):
            st.caption(md(note))
        if st.button("Train on it", key="label_train", icon=":material/model_training:"):
            st.session_state["train_dataset"] = saved["name"]
            st.switch_page("pages/train.py")
    st.caption("Prepared as the Data page prepares a file (stratified train, validation and test splits); a class "
               "with fewer than 3 labels is left out. The same from a terminal:")
    st.code(rl.label_commands(name, dataset=dataset or None)["export"], language="bash")


def show_simulation() -> None:
    """Start the simulation on a labelled dataset; its curves once it has run."""
    with st.expander("Does the picking help? Simulate the loop on a labelled dataset", icon=":material/science:"):
        st.caption("The simulation hides a labelled dataset's labels and reveals them as each strategy asks, retraining "
                   "after every step, and scores each model on the test split: uncertainty against random, over "
                   "several seeds. Each round trains a few-shot model: minutes on a GPU, hours on a CPU at the "
                   "defaults (budget 200, step 20, 3 seeds).")
        datasets = [d["name"] for d in list_prepared() if few_shot_offered(d)]
        if not datasets:
            st.caption("No single-label text dataset in the workspace yet.")
            return
        with st.form("label_simulate_form", border=False):
            c = st.columns(6)
            dataset = c[0].selectbox("Dataset", datasets, key="label_sim_dataset")
            budget = int(c[1].number_input("Budget (labels)", 1, 100_000, 200, key="label_sim_budget"))
            step = int(c[2].number_input("Labels per step", 1, 10_000, 20, key="label_sim_step"))
            seeds = int(c[3].number_input("Seeds", 1, 20, 3, key="label_sim_seeds"))
            steps = int(c[4].number_input("Training steps, at most", 1, 100_000, LOOP_MAX_STEPS,
                                          key="label_sim_max_steps", help=TRAIN_STEPS_HELP))
            model = c[5].text_input("Model", LOOP_MODEL, key="label_sim_model").strip() or LOOP_MODEL
            names = st.checkbox("Learn from the class names", True, key="label_sim_names", help=NAMES_HELP)
            start = st.form_submit_button("Run the simulation", icon=":material/play_arrow:")
        settings = {"budget": budget, "step": step, "seeds": seeds, "model": model, "max_steps": steps,
                    "label_names": names}
        st.code(rl.simulate_command(dataset, **settings), language="bash", wrap_lines=True)
        job = jobs.latest(SIMULATE_JOB, dataset)
        if job is not None and jobs.read(job)["state"] in runs.ACTIVE:
            show_job(job, "label_simulate")
        else:
            job_outcome(job, "The last simulation")
            if start:
                start_job(SIMULATE_JOB, {"dataset": dataset, **settings}, key=dataset)
        show_simulation_result(dataset)


def show_simulation_result(dataset: str) -> None:
    try:
        saved = read_simulation(dataset)
    except BmcoreError as exc:
        st.error(md(exc))
        return
    if saved is None:
        return
    frame, summary = saved
    st.plotly_chart(rl.simulation_figure(frame, f"{dataset}: accuracy against labels given"),
                    key="label_simulation_chart")
    st.dataframe(pd.DataFrame(rl.simulation_summary(frame)), hide_index=True)
    st.caption(md(rl.simulation_caption(summary)))


def show_labelling() -> None:
    """The Data page's "Label texts" section."""
    st.markdown(INTRO)
    keep(*SETTINGS)
    for key, default in SETTINGS.items():
        st.session_state.setdefault(key, default)
    name = choose_project()
    if name is not None:
        try:
            project, given, picks, curve = load_project(name), labels(name), read_picks(name), read_curve(name)
        except BmcoreError as exc:
            st.error(md(exc))
        else:
            show_labelling_area(project, given, picks)
            show_step(name)
            show_progress(project, given, curve)
            show_export(name)
    show_simulation()
