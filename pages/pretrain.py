"""Pretrain: continue a model's masked-language-model training on unlabelled text of your domain, then fine-tune from it."""

import shlex
from pathlib import Path

import streamlit as st

from bmcore import report, runs
from bmcore.config import MAX_SEQ_LENGTH_RANGE, PretrainConfig
from bmcore.data import list_prepared
from bmcore.display import md
from bmcore.models import DEFAULT_MODEL, resolve_model
from bmcore.pretrain import check_config, curves_frame, pretrain_run_name, save_upload, start_pretraining, upload_path
from bmcore.workspace import check_name
from pages import _charts as charts
from pages._runs_view import RunsView, show_runs, start_button
from pages._ui import require_frame, tracking_inputs

require_frame("pages/pretrain.py")

D = PretrainConfig(dataset="-")  # the defaults
HELP = {f: D.__dataclass_fields__[f].metadata["help"] for f in D.__dataclass_fields__}
SOURCES = ("Prepared dataset", "Text file")
MODELS = ("Built-in MiniLM", "Local folder")


def start(config: PretrainConfig, name: str, upload: tuple[str, bytes] | None) -> Path:
    # An upload is written to the workspace only now, once it checks out.
    if upload is not None:
        config.dataset = str(save_upload(*upload))
    return start_pretraining(config, name or None)


def finetune_from(run_dir: Path) -> None:
    # Hand the run's model to the Train page, preselected as "A finished run".
    st.session_state["train_model_kind"] = "A finished run"
    st.session_state["train_model_run"] = str(run_dir / runs.MODEL_DIR)
    st.switch_page("pages/train.py")


def show_outcome(run_dir: Path, state: str) -> None:
    if state in (runs.COMPLETED, runs.CANCELLED) and (run_dir / runs.MODEL_DIR).is_dir():
        st.markdown(f"The domain-adapted model is a `save_pretrained` folder, {md(run_dir / runs.MODEL_DIR)}: fine-tune "
                    "from it, then compare with a fine-tune from the base model on the Evaluate page.")
        if st.button("Fine-tune from this", type="primary", key="pretrain_finetune", icon=":material/model_training:"):
            finetune_from(run_dir)
        st.code(f"python -m bmcore train --data DATASET --model {shlex.quote(str(run_dir))}", language="bash")


RUNS = RunsView(page="pretrain", title="Pretraining runs", no_runs="No pretraining runs in the workspace yet.",
                tiles=report.pretrain_tiles, curves=curves_frame, figures=charts.pretrain_curves,
                no_curves="The curves appear after the first evaluation (before the first step).",
                right_key="pretrain_ppl_chart", no_right=None, outcome=show_outcome, task=PretrainConfig.task)

st.title("Pretrain")
st.markdown(
    "**Masked-language-model (MLM) pretraining** is how BERT learnt language: hide about 15% of the words of a text "
    "and train the model to guess them. **Domain-adaptive pretraining** continues that on unlabelled text of *your* "
    "domain (support tickets, clinical notes, tweets) before fine-tuning, so the encoder knows its words and style; it "
    "helps most when the domain reads unlike the web text the checkpoint saw, and costs no labels. **Perplexity** "
    "(exp of the MLM loss on held-out text) measures how well the model guesses: lower is better. Texts are joined "
    "and cut into blocks of max_seq_length tokens."
)
settings, runs_area = st.container(), st.container()
with runs_area:
    show_runs(RUNS)

with settings:
    st.subheader("Unlabelled text and base model")
    c1, c2 = st.columns(2)
    kind = c1.radio("Text", SOURCES, key="pretrain_source", horizontal=True)
    upload = None
    if kind == SOURCES[0]:
        names = [d["name"] for d in list_prepared()]
        data = c1.selectbox("Prepared dataset", names, key="pretrain_dataset", index=0 if names else None,
                            help="Its train texts are used, its validation texts held out for perplexity; labels and "
                                 "the test split are never read.")
        if not names:
            c1.caption("No prepared datasets yet: prepare one on the Data page, or use a text file.")
    else:
        data = c1.text_input("Path to a .txt file", key="pretrain_path",
                             help="One document per line, or per blank-line block; 5% is held out for perplexity.").strip()
        file = c1.file_uploader("...or upload one", type=["txt"], key="pretrain_upload")
        if file is not None:
            upload = (file.name, file.getvalue())
            data = str(upload_path(file.name))
    model_kind = c2.radio("Base model", MODELS, key="pretrain_model_kind", horizontal=True)
    if model_kind == MODELS[0]:
        model = DEFAULT_MODEL
        c2.caption("MiniLM-L6, bundled. It ships without a masked-LM head, so a fresh one is trained on top "
                   "(the first losses are high); the encoder keeps its weights.")
    else:
        model = c2.text_input("Path to a save_pretrained folder (safetensors)", key="pretrain_model_path").strip()
    if not data or not model:
        st.info("Choose the text and the base model.")
        st.stop()

    st.subheader("Settings")
    c = st.columns(6)
    steps = c[0].number_input("Steps", 1, 10**7, D.max_steps, step=50, key="pretrain_max_steps", help=HELP["max_steps"])
    lr = c[1].number_input("Learning rate", 0.0, 1.0, D.learning_rate, step=1e-5, format="%.1e", key="pretrain_lr",
                           help=HELP["learning_rate"])
    prob = c[2].number_input("Mask probability", 0.01, 0.99, D.mlm_probability, step=0.05, key="pretrain_mlm_probability",
                             help=HELP["mlm_probability"])
    seq_len = c[3].number_input("max_seq_length (tokens)", *MAX_SEQ_LENGTH_RANGE, D.max_seq_length, step=32, key="pretrain_max_seq_length",
                                help="Tokens per block.")
    batch = c[4].number_input("Batch size", 1, 4096, D.per_device_train_batch_size, key="pretrain_batch_size",
                              help=HELP["per_device_train_batch_size"])
    eval_steps = c[5].number_input("Eval steps", 1, 10**6, D.eval_steps, key="pretrain_eval_steps", help=HELP["eval_steps"])
    with st.expander("Tracking: report the run to TensorBoard or MLflow"):
        tracked = tracking_inputs("pretrain", data)
    name = st.text_input("Run name (optional)", key="pretrain_name", help="leave empty for pretrain-data-model-time").strip()
    try:
        config = PretrainConfig(model_name_or_path=model, dataset=data, max_steps=int(steps), learning_rate=float(lr),
                                mlm_probability=float(prob), max_seq_length=int(seq_len),
                                per_device_train_batch_size=int(batch), eval_steps=int(eval_steps),
                                precision=st.session_state.get("precision", "auto"), **tracked)
        if upload is None:
            check_config(config)
        else:  # the upload is checked and written on Start; the model can be checked now
            resolve_model(model)
        if name:
            check_name(name, "run name")
    except (ValueError, OSError) as exc:
        st.error(md(exc))
        st.stop()

    st.subheader("Command line")
    st.caption("The same run from a terminal (with this workspace in BMCORE_WORKSPACE):")
    st.code(report.run_commands("pretrain", config, name or pretrain_run_name(config))[0], language="bash")
    start_button("pretrain", "Start pretraining", lambda: start(config, name, upload))
