"""Pretrain: continue a model's masked-language-model training on unlabelled text of your domain, then fine-tune from it."""

import shlex
from pathlib import Path

import plotly.express as px
import streamlit as st

from bmcore import runs
from bmcore.config import PretrainConfig
from bmcore.data import list_prepared
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.estimate import format_duration
from bmcore.models import DEFAULT_MODEL, resolve_model
from bmcore.pretrain import FRESH_HEAD_NOTICE, check_config, curves_frame, pretrain_run_name, split_documents, start_pretraining
from bmcore.workspace import check_name, inside, runs_dir, workspace_dir
from pages._ui import require_frame, run_controls

require_frame("pages/pretrain.py")

D = PretrainConfig(dataset="-")  # the defaults
HELP = {f: D.__dataclass_fields__[f].metadata["help"] for f in D.__dataclass_fields__}
SOURCES = ("Prepared dataset", "Text file")
MODELS = ("Built-in MiniLM", "Local folder")
BADGES = {"queued": ("gray", ":material/schedule:"), "running": ("blue", ":material/play_arrow:"),
          "completed": ("green", ":material/check_circle:"), "failed": ("red", ":material/error:"),
          "cancelled": ("orange", ":material/stop_circle:")}
POLL_S = 2
UPLOADS = "texts"  # workspace folder for uploaded text files


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def start(config: PretrainConfig, name: str, upload: tuple[str, bytes] | None) -> None:
    # An upload is written to the workspace only now, once it checks out.
    try:
        if upload is not None:
            if not split_documents(upload[1].decode("utf-8", errors="replace")):
                raise BmcoreError(f"{upload[0]} has no text; put one document per line or per blank-line block")
            folder = workspace_dir() / UPLOADS
            folder.mkdir(exist_ok=True)
            path = inside(folder, check_name(Path(upload[0]).name, "file name"))
            path.write_bytes(upload[1])
            config.dataset = str(path)
        st.session_state["pretrain_run"] = start_pretraining(config, name or None).name
    except (BmcoreError, OSError) as exc:
        st.session_state["pretrain_start_error"] = str(exc)


def finetune_from(run_dir: Path) -> None:
    # Hand the run's model to the Train page, preselected as "A finished run".
    st.session_state["train_model_kind"] = "A finished run"
    st.session_state["train_model_run"] = str(run_dir / runs.MODEL_DIR)
    st.switch_page("pages/train.py")


def show_curves(run_dir: Path) -> None:
    frame = curves_frame(run_dir)
    if frame.empty:
        st.caption("The curves appear after the first evaluation (before the first step).")
        return
    c1, c2 = st.columns(2)
    loss = frame[frame["metric"] != "validation perplexity"]
    c1.plotly_chart(px.line(loss, x="step", y="value", color="metric", markers=True, title="MLM loss",
                            color_discrete_sequence=("#4F46E5", "#F59E0B"), labels={"value": "loss", "metric": ""}),
                    key="pretrain_loss_chart")
    ppl = frame[frame["metric"] == "validation perplexity"]
    if not ppl.empty:
        c2.plotly_chart(px.line(ppl, x="step", y="value", markers=True, log_y=True, title="Held-out perplexity (log scale)",
                                color_discrete_sequence=("#059669",), labels={"value": "perplexity"}),
                        key="pretrain_ppl_chart")


def show_run(run_dir: Path) -> None:
    """The live or finished view of one pretraining run."""
    p = runs.progress(run_dir)
    status, state = p["status"], p["status"]["state"]
    color, icon = BADGES[state]
    st.markdown(f"#### {md(run_dir.name)}")
    st.badge(state, icon=icon, color=color)
    if status.get("head_notice"):
        st.info(f"Note: {FRESH_HEAD_NOTICE}. The encoder keeps the checkpoint's weights.", icon=":material/info:")
    if state == runs.QUEUED:
        st.caption("Waiting for the device: another run is training. This one starts by itself when it ends.")
    if p["total_steps"]:
        eta = f" · about {format_duration(p['eta_s'])} left" if state == runs.RUNNING and p["eta_s"] is not None else ""
        st.progress(p["fraction"], text=f"step {p['step']} of {p['total_steps']}{eta}")
    evals = p["eval"]
    m = st.columns(4)
    m[0].metric("Perplexity before", fmt(evals[0].get("eval_perplexity") if evals else None, ",.1f"))
    m[1].metric("Perplexity now", fmt(evals[-1].get("eval_perplexity") if evals else None, ",.2f"))
    m[2].metric("Training MLM loss", fmt(p["last"].get("loss"), ".3f"))
    m[3].metric("Precision", status.get("precision") or "-")
    show_curves(run_dir)
    run_controls(run_dir, state, "pretrain")
    if state == runs.FAILED:
        st.error(md(status.get("error") or "the run failed"))
        st.code(status.get("log_tail") or runs.log_tail(run_dir) or "(train.log is empty)", language="text")
    if state in (runs.COMPLETED, runs.CANCELLED) and (run_dir / runs.MODEL_DIR).is_dir():
        st.markdown(f"The domain-adapted model is a `save_pretrained` folder, {md(run_dir / runs.MODEL_DIR)}: fine-tune "
                    "from it, then compare with a fine-tune from the base model on the Evaluate page.")
        if st.button("Fine-tune from this", type="primary", key="pretrain_finetune", icon=":material/model_training:"):
            finetune_from(run_dir)
        st.code(f"python -m bmcore train --data DATASET --model {shlex.quote(str(run_dir))}", language="bash")


def show_runs() -> None:
    """The pretraining runs and the selected one's view; polls while any run is queued or running."""
    active = any(r.state in runs.ACTIVE for r in runs.list_runs())

    @st.fragment(run_every=POLL_S if active else None)
    def live() -> None:
        rows = [r for r in runs.list_runs() if r.task == "mlm"]
        if active and not any(r.state in runs.ACTIVE for r in runs.list_runs()):
            st.rerun()  # the last active run ended: one full rerun turns polling off
        st.subheader("Pretraining runs")
        if not rows:
            st.caption("No pretraining runs in the workspace yet.")
            return
        names = [r.name for r in rows]
        if st.session_state.get("pretrain_run") not in names:
            st.session_state["pretrain_run"] = names[0]
        st.session_state["pretrain_pick"] = st.session_state["pretrain_run"]
        st.selectbox("Open a run", names, key="pretrain_pick",
                     on_change=lambda: st.session_state.update(pretrain_run=st.session_state["pretrain_pick"]))
        show_run(Path(rows[names.index(st.session_state["pretrain_run"])].path))

    live()


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
    show_runs()

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
            data = str(workspace_dir() / UPLOADS / file.name)
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
    seq_len = c[3].number_input("max_seq_length (tokens)", 8, 8192, D.max_seq_length, step=32, key="pretrain_max_seq_length",
                                help="Tokens per block.")
    batch = c[4].number_input("Batch size", 1, 4096, D.per_device_train_batch_size, key="pretrain_batch_size",
                              help=HELP["per_device_train_batch_size"])
    eval_steps = c[5].number_input("Eval steps", 1, 10**6, D.eval_steps, key="pretrain_eval_steps", help=HELP["eval_steps"])
    name = st.text_input("Run name (optional)", key="pretrain_name", help="leave empty for pretrain-data-model-time").strip()
    try:
        config = PretrainConfig(model_name_or_path=model, dataset=data, max_steps=int(steps), learning_rate=float(lr),
                                mlm_probability=float(prob), max_seq_length=int(seq_len),
                                per_device_train_batch_size=int(batch), eval_steps=int(eval_steps),
                                precision=st.session_state.get("precision", "auto"))
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
    out = runs_dir() / (name or pretrain_run_name(config))
    if out.is_relative_to(Path.cwd()):
        out = out.relative_to(Path.cwd())
    st.caption("The same run from a terminal (with this workspace in BMCORE_WORKSPACE):")
    st.code(shlex.join(["python", "-m", "bmcore", "pretrain", "--data", data, "--model", model,
                        *config.cli_args(), "--out", str(out)]), language="bash")
    if any(r.state in runs.ACTIVE for r in runs.list_runs()):
        st.caption("Another run is using the device: a new one waits in the queue and starts by itself.")
    # Not on_click: a callback would get the previous script run's settings, without a value the click committed.
    if st.button("Start pretraining", type="primary", key="pretrain_start", icon=":material/play_arrow:"):
        start(config, name, upload)
        st.rerun()
    if error := st.session_state.pop("pretrain_start_error", None):
        st.error(md(error))
