"""Train: pick a prepared dataset and a model, set hyperparameters, start a background run, watch it live; or search
models and settings within a time budget (the Search tab, pages/_search.py)."""

from pathlib import Path

import streamlit as st

from bmcore import jobs, launch, report, run_list, runs
from bmcore.config import BEST_METRICS, CLASS_WEIGHTS, INTERVALS, MAX_SEQ_LENGTH_RANGE, TrainConfig, config_fields
from bmcore.data import list_prepared
from bmcore.device import PRECISIONS
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.estimate import estimate_key
from bmcore.modalities import DEFAULT_MODALITY, get_modality
from bmcore.modalities.image import CROP_SCALE, SMALL_SET_PER_CLASS
from bmcore.models import DEFAULT_MODEL, hub_offline, hub_reachable
from bmcore.report.few_shot import FEW_SHOT_EXPLAINED, few_shot_offered, few_shot_suggestion
from bmcore.tasks import get_task
from bmcore.workspace import check_name
from pages import _charts as charts
from pages._runs_view import RunsView, show_runs, start_button
from pages._search import show_search
from pages._ui import job_outcome, keep, require_frame, show_job, show_tiles, start_job, tracking_inputs

require_frame("pages/train.py")

HELP = {f.name: f.metadata["help"] for f in config_fields()}
D = TrainConfig()  # the defaults
TASK_WIDGETS = ("train_lr", "train_head_lr", "train_batch_growth", "train_class_weights", "train_epochs",
                "train_best_metric")  # settings a task may start from its own defaults
MODEL_KINDS = ("Built-in model", "A finished run", "Local folder", "Hugging Face Hub")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt")


def show_estimate(config: TrainConfig, meta: dict) -> None:
    # Keyed by the settings that change the cost, so editing the learning rate does not re-probe.
    key = estimate_key(config, meta.get("created"))
    job = jobs.latest("estimate", key)
    info = jobs.read(job) if job is not None else None
    if info is not None and info["state"] in runs.ACTIVE:
        show_job(job, "train_estimate")
        return
    if info is not None and info["state"] == runs.COMPLETED and info["result"]:
        try:
            text, (busy, note) = report.estimate_text(info["result"]), report.estimate_note(info["result"], info.get("ended", ""))
        except BmcoreError as exc:  # a damaged result.json: one line, and Time it again below
            st.error(md(exc))
        else:
            st.markdown(text)
            (st.warning if busy else st.caption)(note)
    else:
        job_outcome(job, "The last timing")
    if info is None or st.button("Time it again", key="train_estimate_again", icon=":material/refresh:"):
        start_job("estimate", {"config": config.to_dict()}, key)


def show_outcome(run_dir: Path, state: str) -> None:
    if note := report.run_overfitting_note(run_dir):  # live too: outcome is drawn in every state
        st.warning(md(note), icon=":material/trending_up:")
    if state == runs.CANCELLED:
        saved = (run_dir / runs.MODEL_DIR).is_dir()
        st.info("Cancelled. " + ("The model as it stood is saved in model/; resume to continue from the last checkpoint."
                                 if saved else "It stopped before training began."))
    elif state == runs.COMPLETED:
        try:
            result = runs.read_eval(run_dir)
        except BmcoreError as exc:
            st.error(md(exc))
            return
        show_tiles(report.result_tiles(result))
        if note := report.missed_note(result.get("problem_type"), result.get("test")):
            st.warning(md(note), icon=":material/warning:")
        model_dir = run_dir / runs.MODEL_DIR
        st.markdown(f"The best model is a standard Hugging Face folder: {md(model_dir)}. "
                    "Score it in depth on the Evaluate page, or use it from Python:")
        st.code(report.pipeline_snippet(model_dir, result.get("problem_type")), language="python")


RUNS = RunsView(page="train", title="Runs", no_runs="No runs in the workspace yet.", tiles=report.train_tiles,
                curves=report.train_curves_frame, figures=charts.train_curves,
                no_curves="The curves appear after the first logging step.", right_key="train_scores_chart",
                no_right="Validation accuracy and macro F1 appear after the first evaluation.", outcome=show_outcome,
                table=True)


st.title("Train")
train_tab, search_tab = st.tabs(["Train", "Search"])
with search_tab:  # drawn first: a st.stop() in the Train tab's settings never hides it
    show_search()
train_tab.markdown(
    "**Fine-tuning** starts from a pretrained model, one that already reads language (default `builtin:minilm`) or "
    "sees images (`builtin:efficientnet-lite0`), puts a new **classification head** for your labels on top, and trains "
    "both on the train split, scoring the validation split as it goes to keep the best checkpoint. An **epoch** is one "
    "pass over the training data; the **learning rate** sets the size of each update; the **batch size** is how many "
    "examples one step learns from; for text, **max_seq_length** is how many tokens of each text the model reads "
    "(longer texts are cut). Training runs in the background: you can close the browser and come back."
)
# The settings come first on screen, but the runs are drawn first in code, so a stop() in the settings never hides them.
settings, runs_area = train_tab.container(), train_tab.container()
with runs_area:
    show_runs(RUNS)

with settings:
    keep("train_estimate")  # the estimate stays on after a visit to another page
    datasets = list_prepared()
    if not datasets:
        st.info("No prepared datasets in the workspace yet: prepare one on the Data page first.")
        st.page_link("pages/data.py", label="Go to the Data page", icon=":material/table_chart:")
        st.stop()

    st.subheader("Data and model")
    c1, c2 = st.columns(2)
    names = [d["name"] for d in datasets]
    modalities = {d["name"]: d.get("modality") or DEFAULT_MODALITY for d in datasets}
    dataset = c1.selectbox("Prepared dataset", names, key="train_dataset")
    meta = datasets[names.index(dataset)]
    modality = get_modality(meta.get("modality"))
    settings_shown = modality.train_settings  # the settings only these inputs have
    task = get_task(meta.get("problem_type"), meta.get("modality"))
    D = TrainConfig(**task.defaults)  # this kind of problem's defaults (e.g. multi-label)
    kind_key = f"{meta.get('problem_type')}/{meta.get('modality', 'text')}"
    if st.session_state.get("train_defaults_for") != kind_key:  # another kind: its defaults in the widgets
        st.session_state["train_defaults_for"] = kind_key
        for key in TASK_WIDGETS:
            st.session_state.pop(key, None)
    labels, splits = meta.get("label_names", []), meta.get("splits", {})
    c1.caption(report.label_summary(labels, unit=report.label_unit(meta.get("problem_type"))) + report.split_sizes(splits))
    if explained := report.problem_type_text(meta.get("problem_type")):
        c1.info(explained, icon=":material/label:")

    if modality.train_intro:
        c1.info(modality.train_intro, icon=":material/model_training:")
    kinds = (f"Built-in {modality.builtin_title}", *MODEL_KINDS[1:])
    kind = kinds[MODEL_KINDS.index(c2.radio("Model", MODEL_KINDS, key="train_model_kind", horizontal=True,
                                            format_func=lambda k: kinds[MODEL_KINDS.index(k)]))]
    if kind == kinds[0]:
        model = modality.default_model or DEFAULT_MODEL
        c2.caption(modality.builtin_caption)
    elif kind == MODEL_KINDS[1]:
        # Only runs of this kind of input: an image run's model for image data, a text run's for text.
        finished = [str(Path(r.path) / runs.MODEL_DIR) for r in run_list.finished_runs()
                    if modalities.get(r.dataset, DEFAULT_MODALITY) == modality.name]
        model = c2.selectbox("Finished run", finished, key="train_model_run", format_func=lambda p: Path(p).parent.name,
                             help="Fine-tune a model you trained before, e.g. on new data (a new head if the labels differ).")
        if not finished:
            c2.caption("No finished runs yet.")
    elif kind == MODEL_KINDS[2]:
        model = c2.text_input("Path to a save_pretrained folder (safetensors weights)", key="train_model_path").strip()
    else:
        builtin = modality.default_model or DEFAULT_MODEL
        if hub_offline() or not hub_reachable():
            c2.warning("Offline: the Hugging Face Hub cannot be reached, so only models already in the local "
                       f"Hugging Face cache load. Use {builtin} or a local folder otherwise.")
        model = c2.text_input("Hub model id", key="train_model_hub",
                              placeholder=modality.hub_example or None, help=modality.hub_help or None).strip()
    if not model:
        st.info("Choose a model.")
        st.stop()

    few_shot, label_names = False, True
    if few_shot_offered(meta):
        if suggestion := few_shot_suggestion(meta):
            st.info(suggestion, icon=":material/lightbulb:")
        few_shot = st.toggle("Few-shot training (SetFit)", key="train_few_shot", help=HELP["few_shot"])
        st.caption(FEW_SHOT_EXPLAINED + (" It uses the model, max_seq_length, the learning rate, the seed and, when you "
                                         "train for steps, the steps (of 16 pairs each); the other settings are "
                                         "fine-tuning's."
                                         if few_shot else ""))
        if few_shot:
            label_names = st.checkbox("Learn from the class names too", True, key="train_few_shot_names",
                                      help=HELP["few_shot_label_names"])

    st.subheader("Hyperparameters")
    c = st.columns(4)
    by_steps = c[0].radio("Train for", ("epochs", "steps"), key="train_length", horizontal=True) == "steps"
    if by_steps:
        max_steps = c[0].number_input("Steps", 0, 10**7, 500, step=50, key="train_max_steps", help=HELP["max_steps"])
    else:
        epochs = c[0].number_input("Epochs (0: auto)", 0.0, 1000.0, D.num_train_epochs or 0.0, step=1.0, key="train_epochs",
                                   help=HELP["num_train_epochs"])
    lr = c[1].number_input("Learning rate", 0.0, 1.0, D.learning_rate, step=1e-5, format="%.1e", key="train_lr",
                           help=HELP["learning_rate"])
    batch = c[2].number_input("Batch size", 1, 4096, D.per_device_train_batch_size, key="train_batch_size",
                              help=HELP["per_device_train_batch_size"])
    seq_len, side, augment = D.max_seq_length, 0, D.augment
    if "image_size" in settings_shown:
        side = c[3].number_input("image_size (pixels, 0: auto)", 0, 1024, 0, step=32, key="train_image_size",
                                 help=HELP["image_size"])
    if "augment" in settings_shown:
        augment = st.checkbox("Augment the training images", D.augment, key="train_augment", help=HELP["augment"])
        st.caption("**image_size** is the square side, in pixels, each image is resized to before the model sees it: "
                   "auto takes a ViT's own size (its patch grid fixes it), or for a CNN about twice the images' "
                   f"typical side (three times below {SMALL_SET_PER_CLASS} training images per class, where detail "
                   "pays), at most the model's; the cost of a step grows with its square. **Augmentation** "
                   "shows the model a slightly different version of each training image every epoch (a random crop "
                   f"of {CROP_SCALE[0]:.0%}-100% of it, resized back, and a mirror image), so it learns the object, not "
                   "the exact pixels; validation and test images are never changed. On a small budget it can cost a "
                   "little accuracy (Fashion-MNIST, 6,000 images, 3 epochs: 0.906 without, 0.881 with).")
    if "max_seq_length" in settings_shown:
        seq_len = c[3].number_input("max_seq_length (tokens)", *MAX_SEQ_LENGTH_RANGE, D.max_seq_length, step=32,
                                    key="train_max_seq_length", help=HELP["max_seq_length"])

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
        best_metrics = [m for m in BEST_METRICS if m in (*task.headline, "loss")]  # what this task's runs measure
        best = c[2].selectbox("Best model by", best_metrics, best_metrics.index(D.metric_for_best_model),
                              key="train_best_metric", help=HELP["metric_for_best_model"])
        weights = (c[3].selectbox("Class weights", CLASS_WEIGHTS, CLASS_WEIGHTS.index(D.class_weights),
                                  key="train_class_weights", help=HELP["class_weights"])
                   if task.takes_class_weights else D.class_weights)  # a score has no classes to weigh
        c = st.columns(4)
        scheduler = c[0].selectbox("Learning-rate schedule", SCHEDULERS, key="train_scheduler", help=HELP["lr_scheduler_type"])
        seed = c[1].number_input("Seed", 0, 2**31 - 1, D.seed, key="train_seed", help=HELP["seed"])
        logging_steps = c[2].number_input("Logging steps", 1, 10**6, D.logging_steps, key="train_logging_steps",
                                          help=HELP["logging_steps"])
        freeze, growth = D.freeze_embeddings, D.batch_growth  # text-only settings: hidden for images
        if "freeze_embeddings" in settings_shown:
            freeze = c[3].checkbox("Freeze the embeddings", D.freeze_embeddings, key="train_freeze",
                                   help=HELP["freeze_embeddings"])
        c = st.columns(4)
        if "batch_growth" in settings_shown:
            growth = c[0].number_input("Batch growth for short texts", 1, 64, D.batch_growth, key="train_batch_growth",
                                       help=HELP["batch_growth"])
        dropout = c[1].number_input("Hidden dropout", 0.0, 0.9, D.hidden_dropout, step=0.05, key="train_hidden_dropout",
                                    help=HELP["hidden_dropout"])
        head_lr = c[2].number_input("Head learning rate (0: the learning rate)", 0.0, 0.99, D.head_learning_rate or 0.0,
                                    step=1e-4, format="%.1e", key="train_head_lr", help=HELP["head_learning_rate"])

    st.subheader("Tracking")
    tracked = tracking_inputs("train", dataset)

    name = st.text_input("Run name (optional)", key="train_name", help="A folder name in the workspace's runs/; "
                         "leave empty for dataset-model-time.").strip()
    try:
        config = TrainConfig(
            model_name_or_path=model, dataset=dataset, max_seq_length=int(seq_len),
            num_train_epochs=None if by_steps or not epochs else float(epochs), max_steps=int(max_steps) if by_steps else None,
            learning_rate=float(lr), per_device_train_batch_size=int(batch), gradient_accumulation_steps=int(accum),
            warmup_steps=float(warmup), weight_decay=float(decay), lr_scheduler_type=scheduler, precision=precision,
            seed=int(seed), eval_strategy=strategy, eval_steps=int(eval_steps) if eval_steps else None,
            logging_steps=int(logging_steps), early_stopping_patience=int(patience), metric_for_best_model=best,
            class_weights=weights, freeze_embeddings=freeze, batch_growth=int(growth),
            hidden_dropout=float(dropout), head_learning_rate=float(head_lr) or None,
            image_size=int(side) or None, augment=bool(augment), few_shot=bool(few_shot),
            few_shot_label_names=bool(label_names), **tracked)
        precision_notice = launch.preflight(config)  # the checks the CLI makes: model, max_seq_length, training size
        if name:
            check_name(name, "run name")
    except (ValueError, OSError) as exc:
        st.error(md(exc))
        st.stop()
    if precision_notice:
        st.info(md(precision_notice))
    if steps_note := report.run_schedule_note(config):  # few optimiser steps, said before the run starts
        st.info(md(steps_note), icon=":material/info:")

    st.subheader("Estimated duration")
    if st.toggle("Time a few training steps on this machine", key="train_estimate",
                 help="Loads the model and times a few steps on real batches of this dataset, in the background on "
                      "the device queue, then extrapolates to the whole run, evaluations included."):
        show_estimate(config, meta)

    st.subheader("Command line")
    local, multi_gpu = report.run_commands("train", config, name or runs.new_run_name(config))
    st.caption("The same run from a terminal (it needs this workspace, set with BMCORE_WORKSPACE):")
    st.code(local, language="bash")
    st.caption("On a machine with several GPUs, one process per GPU (only rank 0 writes the run folder):")
    st.code(multi_gpu, language="bash")
    start_button("train", "Start training", lambda: launch.start_run(config, name or None))
