"""Train: pick a prepared dataset and a model, set hyperparameters, start a background run, watch it live."""

import shlex
from pathlib import Path

import plotly.express as px
import streamlit as st

from bmcore import jobs, queue, runs
from bmcore.config import BEST_METRICS, CLASS_WEIGHTS, DEFAULT_EPOCHS, INTERVALS, TrainConfig, config_fields
from bmcore.data import list_prepared
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.estimate import estimate_key, format_duration
from bmcore.evaluate import missed_classes, missed_classes_note
from bmcore.models import (
    DEFAULT_MODEL,
    PRECISIONS,
    hub_offline,
    hub_reachable,
)
from bmcore.workspace import check_name, runs_dir
from pages._ui import job_outcome, require_frame, run_controls, show_job

require_frame("pages/train.py")

HELP = {f.name: f.metadata["help"] for f in config_fields()}
D = TrainConfig()  # the defaults
MODEL_KINDS = ("Built-in MiniLM", "A finished run", "Local folder", "Hugging Face Hub")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt")
BADGES = {"queued": ("gray", ":material/schedule:"), "running": ("blue", ":material/play_arrow:"),
          "completed": ("green", ":material/check_circle:"), "failed": ("red", ":material/error:"),
          "cancelled": ("orange", ":material/stop_circle:")}
POLL_S = 2  # seconds between live refreshes while a run is queued or running
LOSSES = ("training loss", "validation loss")
SCORES = ("validation accuracy", "validation macro F1")
COLORS = ("#4F46E5", "#F59E0B")  # two clearly different hues: the theme's default palette is all blues


def start(config: TrainConfig, name: str) -> None:
    try:
        st.session_state["train_run"] = runs.start_run(config, name or None).name
    except (BmcoreError, OSError) as exc:
        st.session_state["train_start_error"] = str(exc)


def show_estimate(config: TrainConfig, meta: dict) -> None:
    # Keyed by the settings that change the cost, so editing the learning rate does not re-probe.
    key = estimate_key(config, meta.get("created"))
    job = jobs.latest("estimate", key)
    info = jobs.read(job) if job is not None else None
    if info is not None and info["state"] in runs.ACTIVE:
        show_job(job, "train_estimate")
        return
    if info is not None and info["state"] == runs.COMPLETED and info["result"]:
        est = info["result"]
        likely = ""
        if est.get("low_seconds") is not None:
            likely = f" (likely {format_duration(est['low_seconds'])} to {format_duration(est['high_seconds'])})"
        st.markdown(f"About **{format_duration(est['estimated_seconds'])}**{likely} on this machine: "
                    f"{est['total_steps']:,} steps at {est['seconds_per_step']:.2f} s each ({est['samples_per_s']:.1f} "
                    f"samples/s in {est['precision']}), plus {est['evaluations']} evaluation(s) and the final test scoring.")
        timed = f"{est.get('probe_steps', '?')} steps timed over {est.get('probe_seconds', 0):.0f} s, {info.get('ended', '')}"
        if est.get("busy"):
            st.warning(f"The machine was busy while timing (load {est['load']} on {est['cores']} cores), so this errs "
                       f"long; time it again when it is idle. {timed}.")
        else:
            st.caption(f"{timed}. Once the run starts, its progress bar gives the time left from its own measured speed.")
    else:
        job_outcome(job, "The last timing")
    if info is None or st.button("Time it again", key="train_estimate_again", icon=":material/refresh:"):
        try:
            jobs.start("estimate", {"config": config.to_dict()}, key)
        except (BmcoreError, OSError) as exc:
            st.error(md(exc))
        else:
            st.rerun()


def pick() -> None:
    st.session_state["train_run"] = st.session_state["train_pick"]


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def show_charts(run_dir: Path) -> None:
    frame = runs.metrics_frame(run_dir)
    if frame.empty:
        st.caption("The curves appear after the first logging step.")
        return
    c1, c2 = st.columns(2)
    loss = frame[frame["metric"].isin(LOSSES)]
    c1.plotly_chart(px.line(loss, x="step", y="value", color="metric", markers=True, title="Loss",
                            color_discrete_sequence=COLORS,
                            labels={"value": "loss", "metric": ""}), key="train_loss_chart")
    scores = frame[frame["metric"].isin(SCORES)]
    if scores.empty:
        c2.caption("Validation accuracy and macro F1 appear after the first evaluation.")
    else:
        c2.plotly_chart(px.line(scores, x="step", y="value", color="metric", markers=True, range_y=(0, 1.02),
                                color_discrete_sequence=COLORS,
                                title="Validation scores", labels={"value": "score", "metric": ""}),
                        key="train_scores_chart")


def show_result(run_dir: Path, state: str, status: dict) -> None:
    if state == runs.FAILED:
        st.error(md(status.get("error") or "the run failed"))
        st.code(status.get("log_tail") or runs.log_tail(run_dir) or "(train.log is empty)", language="text")
    elif state == runs.CANCELLED:
        saved = (run_dir / runs.MODEL_DIR).is_dir()
        st.info("Cancelled. " + ("The model as it stood is saved in model/; resume to continue from the last checkpoint."
                                 if saved else "It stopped before training began."))
    elif state == runs.COMPLETED:
        try:
            result = runs.read_json(run_dir / runs.EVAL_FILE)
        except BmcoreError as exc:
            st.error(md(exc))
            return
        test, val = result.get("test", {}), result.get("validation", {})
        m = st.columns(4)
        m[0].metric("Test accuracy", fmt(test.get("accuracy"), ".3f"))
        m[1].metric("Test macro F1", fmt(test.get("macro_f1"), ".3f"))
        m[2].metric("Validation accuracy", fmt(val.get("accuracy"), ".3f"))
        m[3].metric("Validation macro F1", fmt(val.get("macro_f1"), ".3f"))
        if note := missed_classes_note(missed_classes(test.get("confusion_matrix") or [], test.get("labels") or [])):
            st.warning(md(note), icon=":material/warning:")
        model_dir = run_dir / runs.MODEL_DIR
        st.markdown(f"The best model is a standard Hugging Face folder: {md(model_dir)}. "
                    "Score it in depth on the Evaluate page, or use it from Python:")
        st.code(f'from transformers import pipeline\n\nclassifier = pipeline("text-classification", model={str(model_dir)!r})\n'
                'print(classifier("The match went to extra time."))', language="python")


def show_run(run_dir: Path) -> None:
    """The live or finished view of one run."""
    try:
        p = runs.progress(run_dir)
    except BmcoreError as exc:  # a damaged status.json: say so; the table above still lists every run
        st.markdown(f"#### {md(run_dir.name)}")
        st.error(md(exc))
        return
    status, last = p["status"], p["last"]
    state = status["state"]
    color, icon = BADGES[state]
    st.markdown(f"#### {md(run_dir.name)}")
    st.badge(state, icon=icon, color=color)
    if state == runs.QUEUED:
        st.caption("Waiting for the device: another job is using it. This one starts by itself when it ends."
                   if queue.device_busy() else "Starting...")
    elif state == runs.RUNNING and status.get("phase") and status["phase"] != "training":
        st.caption(f"Running: {status['phase']}...")
    if p["total_steps"]:
        eta = ""
        if state == runs.RUNNING:
            eta = f" · about {format_duration(p['eta_s'])} left" if p["eta_s"] else " · measuring the speed..."
        st.progress(p["fraction"], text=f"step {p['step']} of {p['total_steps']}{eta}")
    m = st.columns(5)
    m[0].metric("Epoch", fmt(last.get("epoch"), ".2f"))
    m[1].metric("Learning rate", fmt(last.get("learning_rate"), ".2e"))
    m[2].metric("Samples/s", fmt(last.get("samples_per_s"), ".1f"))
    m[3].metric("Tokens/s", fmt(last.get("tokens_per_s"), ",.0f"))
    m[4].metric("Precision", status.get("precision") or "-")
    show_charts(run_dir)
    run_controls(run_dir, state, "train")
    show_result(run_dir, state, status)


def show_runs() -> None:
    """The runs table and the selected run's view; polls while any run is queued or running."""
    active = any(r.state in runs.ACTIVE for r in runs.list_runs())

    @st.fragment(run_every=POLL_S if active else None)
    def live() -> None:
        rows = runs.list_runs()
        draw(rows)
        if active and not any(r.state in runs.ACTIVE for r in rows):
            # The last active run ended: one full rerun turns polling off. Drawn first, so that the page is
            # current even where a rerun asked from a timed fragment run is dropped (seen in the browser).
            st.rerun()

    def draw(rows: list) -> None:
        st.subheader("Runs")
        if not rows:
            st.caption("No runs in the workspace yet.")
            return
        st.dataframe(runs.runs_frame(rows), hide_index=True, key="train_runs_table",
                     column_config={"test accuracy": st.column_config.NumberColumn(format="%.3f"),
                                    "duration (s)": st.column_config.NumberColumn(format="%.0f")})
        names = [r.name for r in rows]
        if st.session_state.get("train_run") not in names:
            st.session_state["train_run"] = names[0]
        st.session_state["train_pick"] = st.session_state["train_run"]
        st.selectbox("Open a run", names, key="train_pick", on_change=pick)
        show_run(Path(rows[names.index(st.session_state["train_run"])].path))

    live()


st.title("Train")
st.markdown(
    "**Fine-tuning** starts from a pretrained encoder, a model that already reads language (default `builtin:minilm`), "
    "puts a new **classification head** for your labels on top, and trains both on the train split, scoring the "
    "validation split as it goes to keep the best checkpoint. An **epoch** is one pass over the training data; the "
    "**learning rate** sets the size of each update; the **batch size** is how many examples one step learns from; "
    "**max_seq_length** is how many tokens of each text the model reads (longer texts are cut). Training runs in the "
    "background: you can close the browser and come back."
)
# The settings come first on screen, but the runs are drawn first in code, so a stop() in the settings never hides them.
settings, runs_area = st.container(), st.container()
with runs_area:
    show_runs()

with settings:
    datasets = list_prepared()
    if not datasets:
        st.info("No prepared datasets in the workspace yet: prepare one on the Data page first.")
        st.page_link("pages/data.py", label="Go to the Data page", icon=":material/table_chart:")
        st.stop()

    st.subheader("Data and model")
    c1, c2 = st.columns(2)
    names = [d["name"] for d in datasets]
    dataset = c1.selectbox("Prepared dataset", names, key="train_dataset")
    meta = datasets[names.index(dataset)]
    labels, splits = meta.get("label_names", []), meta.get("splits", {})
    c1.caption(md(f"{len(labels)} classes ({', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''}) · ")
               + " / ".join(f"{splits.get(s, 0):,} {s}" for s in ("train", "validation", "test")))

    kind = c2.radio("Model", MODEL_KINDS, key="train_model_kind", horizontal=True)
    if kind == MODEL_KINDS[0]:
        model = DEFAULT_MODEL
        c2.caption("MiniLM-L6 (22.7M parameters, 6 layers), bundled: works offline.")
    elif kind == MODEL_KINDS[1]:
        finished = [str(Path(r.path) / runs.MODEL_DIR) for r in runs.list_runs()
                    if r.state == runs.COMPLETED and (Path(r.path) / runs.MODEL_DIR).is_dir()]
        model = c2.selectbox("Finished run", finished, key="train_model_run", format_func=lambda p: Path(p).parent.name,
                             help="Fine-tune a model you trained before, e.g. on new data (a new head if the labels differ).")
        if not finished:
            c2.caption("No finished runs yet.")
    elif kind == MODEL_KINDS[2]:
        model = c2.text_input("Path to a save_pretrained folder (safetensors weights)", key="train_model_path").strip()
    else:
        if hub_offline() or not hub_reachable():
            c2.warning("Offline: the Hugging Face Hub cannot be reached, so only models already in the local "
                       "Hugging Face cache load. Use builtin:minilm or a local folder otherwise.")
        model = c2.text_input("Hub model id", key="train_model_hub", placeholder="distilbert-base-uncased").strip()
    if not model:
        st.info("Choose a model.")
        st.stop()

    st.subheader("Hyperparameters")
    c = st.columns(4)
    by_steps = c[0].radio("Train for", ("epochs", "steps"), key="train_length", horizontal=True) == "steps"
    if by_steps:
        max_steps = c[0].number_input("Steps", 0, 10**7, 500, step=50, key="train_max_steps", help=HELP["max_steps"])
    else:
        epochs = c[0].number_input("Epochs", 0.0, 1000.0, DEFAULT_EPOCHS, step=1.0, key="train_epochs",
                                   help=HELP["num_train_epochs"])
    lr = c[1].number_input("Learning rate", 0.0, 1.0, D.learning_rate, step=1e-5, format="%.1e", key="train_lr",
                           help=HELP["learning_rate"])
    batch = c[2].number_input("Batch size", 1, 4096, D.per_device_train_batch_size, key="train_batch_size",
                              help=HELP["per_device_train_batch_size"])
    seq_len = c[3].number_input("max_seq_length (tokens)", 8, 8192, D.max_seq_length, step=32, key="train_max_seq_length",
                                help=HELP["max_seq_length"])

    with st.expander("Advanced"):
        c = st.columns(4)
        warmup = c[0].number_input("Warm-up", 0.0, 10**6 * 1.0, D.warmup_steps, step=0.01, key="train_warmup",
                                   help=HELP["warmup_steps"])
        decay = c[1].number_input("Weight decay", 0.0, 10.0, D.weight_decay, step=0.01, format="%.3f", key="train_decay",
                                  help=HELP["weight_decay"])
        accum = c[2].number_input("Gradient accumulation steps", 1, 1024, D.gradient_accumulation_steps, key="train_accum",
                                  help=HELP["gradient_accumulation_steps"])
        precision = c[3].selectbox("Precision", PRECISIONS, key="train_precision", help=HELP["precision"],
                                   index=PRECISIONS.index(st.session_state.get("precision", "auto")))
        c = st.columns(4)
        strategy = c[0].radio("Evaluate every", INTERVALS, key="train_eval_strategy", horizontal=True,
                              help=HELP["eval_strategy"])
        eval_steps = (c[0].number_input("Eval steps", 1, 10**6, 100, key="train_eval_steps", help=HELP["eval_steps"])
                      if strategy == "steps" else None)
        patience = c[1].number_input("Early-stopping patience", 0, 1000, D.early_stopping_patience, key="train_patience",
                                     help=HELP["early_stopping_patience"])
        best = c[2].selectbox("Best model by", BEST_METRICS, key="train_best_metric", help=HELP["metric_for_best_model"])
        weights = c[3].selectbox("Class weights", CLASS_WEIGHTS, CLASS_WEIGHTS.index(D.class_weights), key="train_class_weights",
                                 help=HELP["class_weights"])
        c = st.columns(4)
        scheduler = c[0].selectbox("Learning-rate schedule", SCHEDULERS, key="train_scheduler", help=HELP["lr_scheduler_type"])
        seed = c[1].number_input("Seed", 0, 2**31 - 1, D.seed, key="train_seed", help=HELP["seed"])
        logging_steps = c[2].number_input("Logging steps", 1, 10**6, D.logging_steps, key="train_logging_steps",
                                          help=HELP["logging_steps"])
        freeze = c[3].checkbox("Freeze the embeddings", D.freeze_embeddings, key="train_freeze", help=HELP["freeze_embeddings"])
        c = st.columns(4)
        growth = c[0].number_input("Batch growth for short texts", 1, 64, D.batch_growth, key="train_batch_growth",
                                   help=HELP["batch_growth"])
        dropout = c[1].number_input("Hidden dropout", 0.0, 0.9, D.hidden_dropout, step=0.05, key="train_hidden_dropout",
                                    help=HELP["hidden_dropout"])

    name = st.text_input("Run name (optional)", key="train_name", help="A folder name in the workspace's runs/; "
                         "leave empty for dataset-model-time.").strip()
    try:
        config = TrainConfig(
            model_name_or_path=model, dataset=dataset, max_seq_length=int(seq_len),
            num_train_epochs=None if by_steps else float(epochs), max_steps=int(max_steps) if by_steps else None,
            learning_rate=float(lr), per_device_train_batch_size=int(batch), gradient_accumulation_steps=int(accum),
            warmup_steps=float(warmup), weight_decay=float(decay), lr_scheduler_type=scheduler, precision=precision,
            seed=int(seed), eval_strategy=strategy, eval_steps=int(eval_steps) if eval_steps else None,
            logging_steps=int(logging_steps), early_stopping_patience=int(patience), metric_for_best_model=best,
            class_weights=weights, freeze_embeddings=freeze, batch_growth=int(growth),
            hidden_dropout=float(dropout))
        precision_notice = runs.preflight(config)  # the checks the CLI makes: model, max_seq_length, training size
        if name:
            check_name(name, "run name")
    except (ValueError, OSError) as exc:
        st.error(md(exc))
        st.stop()
    if precision_notice:
        st.info(md(precision_notice))

    st.subheader("Estimated duration")
    if st.toggle("Time a few training steps on this machine", key="train_estimate",
                 help="Loads the model and times a few steps on real batches of this dataset, in the background on "
                      "the device queue, then extrapolates to the whole run, evaluations included."):
        show_estimate(config, meta)

    st.subheader("Command line")
    run_name = name or runs.new_run_name(config)
    out = runs_dir() / run_name
    if out.is_relative_to(Path.cwd()):
        out = out.relative_to(Path.cwd())
    args = ["--data", dataset, "--model", model, *config.cli_args(), "--out", str(out)]
    st.caption("The same run from a terminal (it needs this workspace, set with BMCORE_WORKSPACE):")
    st.code(shlex.join(["python", "-m", "bmcore", "train", *args]), language="bash")
    st.caption("On a machine with several GPUs, one process per GPU (only rank 0 writes the run folder):")
    st.code(shlex.join(["torchrun", "--nproc_per_node", "2", "-m", "bmcore", "train", *args]), language="bash")

    if any(r.state in runs.ACTIVE for r in runs.list_runs()):
        st.caption("Another run is using the device: a new one waits in the queue and starts by itself.")
    # Not an on_click callback: its args would be the settings of the previous script run, so a value typed and
    # committed by the click itself (blur) would be lost. This run already holds every committed value.
    if st.button("Start training", type="primary", key="train_start", icon=":material/play_arrow:"):
        start(config, name)
        st.rerun()  # list and open the new run at once
    if error := st.session_state.pop("train_start_error", None):
        st.error(md(error))
