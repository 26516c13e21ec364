"""Security: paths stay in the workspace, run names are taken atomically, HTML is escaped, the server config is safe."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import tomllib
from conftest import ROOT

from bmcore import data as bdata
from bmcore import limits, runs
from bmcore.config import TrainConfig
from bmcore.errors import BmcoreError
from bmcore.explain import attributions_html
from bmcore.workspace import check_name, datasets_dir, inside


def test_streamlit_config_limits_uploads_and_has_xsrf_protection():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True
    assert server["maxUploadSize"] == limits.DEFAULT_MAX_UPLOAD_MB


@pytest.mark.parametrize("name", ["../evil", "..", "/etc", "a/b", "~root", "", "x" * 81, "a..b"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(BmcoreError, match="invalid"):
        check_name(name)


def test_paths_cannot_escape_the_workspace_even_through_a_symlink(workspace, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (datasets_dir() / "sneaky").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BmcoreError, match="escapes the workspace"):
        bdata.dataset_dir("sneaky")
    for parts in (("..", "x"), ("/etc/passwd",)):
        with pytest.raises(BmcoreError, match="escapes the workspace"):
            inside(workspace, *parts)
    with pytest.raises(BmcoreError, match="no run"):
        runs.find_run("../../etc")


def test_public_demo_keeps_paths_inside_the_workspace(monkeypatch, tmp_path, tiny_model):
    monkeypatch.setenv("BMCORE_PUBLIC_DEMO", "1")
    from bmcore.models import resolve_model

    for ref in (str(tiny_model), "/etc", "../x/y/z"):
        with pytest.raises(BmcoreError, match="outside the workspace"):
            resolve_model(ref)
    with pytest.raises(BmcoreError, match="Hub downloads are turned off"):
        bdata.load_source("hub:imdb")
    lim = limits.current()
    assert (lim.max_train_rows, lim.max_epochs, lim.max_jobs, lim.allow_hub) == (5000, 3, 2, False)
    monkeypatch.setenv("BMCORE_MAX_EPOCHS", "x")
    with pytest.raises(BmcoreError, match="is not a number"):
        limits.current()


def test_sessions_starting_runs_at_once_get_distinct_folders(workspace):
    config = TrainConfig(max_steps=1)
    made: list[Path] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        made.append(runs.create_run(config))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in made}) == 8
    with pytest.raises(BmcoreError, match="already exists"):
        runs.create_run(config, made[0].name)


def test_every_html_sink_escapes_its_content():
    """Raw HTML reaches the browser only through st.html(attributions_html(...)) and never unsafe_allow_html."""
    sinks = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        sinks += [(path.name, m) for m in re.findall(r"unsafe_allow_html\s*=\s*True|st\.html\([^\n]*|components\.html", text)]
    assert sinks == [("playground.py", "st.html(bx.attributions_html(ex.tokens, ex.attributions, target=ex.target))")]
    html = attributions_html(["<script>", "alert", "(1)", "</script>"], [0.5, -0.2, 0.1, 0.0], target="<img src=x onerror=1>")
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html


def test_models_load_from_safetensors_without_remote_code():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bmcore").rglob("*.py"))
    assert "trust_remote_code=True" not in source and '"trust_remote_code"] = True' not in source
    models = (ROOT / "bmcore" / "models.py").read_text(encoding="utf-8")
    assert 'kwargs["trust_remote_code"] = False' in models and '"use_safetensors": True' in models
