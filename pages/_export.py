"""The Evaluate page's Export section: a finished run's model as a zip, a model card, ONNX, or on the Hub."""

import shlex
from pathlib import Path

import streamlit as st

from bmcore import jobs, runs
from bmcore.display import md
from bmcore.errors import BmcoreError
from bmcore.export.bundle import export_zip, zip_path
from bmcore.export.card import model_card
from bmcore.export.hub import check_push
from bmcore.export.onnx import ONNX_FILE, read_onnx_export
from bmcore.report.export import export_command, onnx_note
from bmcore.report.serving import SERVE_NOTE, run_serve_snippet
from pages._ui import job_outcome, show_job, start_job


def show_export(run_dir: Path) -> None:
    st.subheader("Export")
    st.markdown("Take the model away: a **zip** of its folder, which `transformers.pipeline` loads once unzipped, with a "
                "**model card** (README.md: data, settings, test metrics against the baseline); or **ONNX** for ONNX "
                "Runtime, checked against PyTorch on the test split; or push it to the **Hugging Face Hub**.")
    st.code(shlex.join(export_command(run_dir, ["zip", "onnx"])), language="bash")
    with st.expander("Serve it over HTTP", icon=":material/api:"):
        st.markdown(SERVE_NOTE)
        st.code(run_serve_snippet(run_dir), language="bash", wrap_lines=True)
    row = st.container(horizontal=True)
    # Callables: the zip is built, and the ONNX file read, only when a button is clicked.
    row.download_button("Model (zip)", lambda: export_zip(run_dir).read_bytes(), key="evaluate_export_zip",
                        file_name=zip_path(run_dir).name, mime="application/zip", on_click="ignore",
                        icon=":material/folder_zip:")
    row.download_button("Model card (README.md)", lambda: model_card(run_dir), key="evaluate_export_card",
                        file_name="README.md", mime="text/markdown", on_click="ignore", icon=":material/description:")
    onnx = read_onnx_export(run_dir)
    if onnx is None:
        job = jobs.latest("export-onnx", str(run_dir))
        if job is not None and jobs.read(job)["state"] in runs.ACTIVE:
            show_job(job, "evaluate_onnx")
        else:
            job_outcome(job, "The last ONNX export")
            if row.button("Export to ONNX and check it", key="evaluate_export_onnx", icon=":material/memory:"):
                start_job("export-onnx", {"run_dir": str(run_dir)}, str(run_dir))
    else:
        path = onnx.path
        row.download_button("ONNX (model.onnx)", lambda: path.read_bytes(), key="evaluate_export_onnx_download",
                            file_name=ONNX_FILE, mime="application/octet-stream", on_click="ignore",
                            icon=":material/download:")
        (st.success if onnx.passed else st.error)(onnx_note(run_dir, onnx))
    with st.expander("Push to the Hugging Face Hub", icon=":material/cloud_upload:"):
        c1, c2 = st.columns(2)
        repo = c1.text_input("Repository (owner/name)", key="evaluate_hub_repo", placeholder=f"your-user/{run_dir.name}")
        token = c2.text_input("Write token", type="password", key="evaluate_hub_token",
                              help="A token with write access (huggingface.co/settings/tokens). Empty: HF_TOKEN.")
        private = st.checkbox("Private repository", value=True, key="evaluate_hub_private")
        job = jobs.latest("push", str(run_dir))
        info = jobs.read(job) if job is not None else None
        if info is not None and info["state"] in runs.ACTIVE:
            show_job(job, "evaluate_hub")
        elif info is not None and info["state"] == runs.COMPLETED and info["result"]:
            st.success(f"Pushed to {md(info['result'].get('url'))}")
        else:
            job_outcome(job, "The last push")
        if st.button("Push", key="evaluate_hub_push", icon=":material/upload:"):
            try:  # offline, no token or a malformed repo id: one line at once, before any job starts
                repo, secret = check_push(repo, token or None)
            except BmcoreError as exc:
                st.error(md(exc))
            else:  # the token reaches the job's process in its environment; it is never written to disk
                start_job("push", {"run_dir": str(run_dir), "repo_id": repo, "private": private}, str(run_dir),
                          env={"HF_TOKEN": secret})
