"""Deployment files agree with each other: the Dockerfile, requirements.txt, the Docker-steps check and the README."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

DEMO_VARIABLES = ("BMCORE_PUBLIC_DEMO", "BMCORE_MAX_TRAIN_ROWS", "BMCORE_MAX_EPOCHS", "BMCORE_MAX_JOBS", "BMCORE_ALLOW_HUB")


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_installs_requirements_txt_with_the_cpu_torch_pin_of_the_quickstart():
    text = dockerfile()
    pip = re.findall(r"^RUN pip install (.+)$", text, flags=re.M)
    assert pip == ["torch==2.13.0 -r requirements.txt"]
    assert "COPY requirements.txt ." in text
    assert "pip install torch==2.13.0 -r requirements.txt" in (ROOT / "README.md").read_text()
    # The clean-virtualenv check installs exactly the same.
    assert 'pip" install -q --disable-pip-version-check torch==2.13.0 -r requirements.txt' in \
        (ROOT / "scripts" / "check_docker_steps.sh").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, flags=re.M)


def test_dockerfile_starts_app_py_as_a_non_root_user_with_the_workspace_on_a_volume():
    text = dockerfile()
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", text, flags=re.M).group(1))
    assert cmd[:3] == ["streamlit", "run", "app.py"] and cmd[cmd.index("--server.port") + 1] == "8501"
    assert re.search(r"^EXPOSE 8501$", text, flags=re.M)
    assert re.search(r"^VOLUME /data$", text, flags=re.M)
    assert "BMCORE_WORKSPACE=/data/workspace" in text
    user = re.findall(r"^USER (\S+)$", text, flags=re.M)
    assert user and user[-1] not in ("root", "0")
    assert "/_stcore/health" in re.search(r"^HEALTHCHECK[^\n]*\n[^\n]*", text, flags=re.M).group(0)
    assert "7860" in text  # the note on Spaces' port
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", "workspace", "tests"} <= set(ignored)


def test_public_demo_variables_are_named_alike_in_the_dockerfile_and_the_readme():
    readme = (ROOT / "README.md").read_text()
    text = dockerfile()
    for name in DEMO_VARIABLES:
        assert f"{name}=" in text and f"`{name}" in readme, name


def test_requirements_have_lower_bounds_and_the_export_runtime():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert all(re.search(r"(>=|==)", ln) for ln in lines), lines
    names = {re.split(r"[<>=]", ln)[0] for ln in lines}
    assert {"onnx", "onnxruntime", "streamlit", "torch", "transformers"} <= names


def test_streamlit_config_is_valid_toml_for_cloud_hosting():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["magicEnabled"] is False
    assert config["server"]["headless"] is True
