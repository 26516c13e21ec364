"""Several sessions of one app process: shared model cache, private uploads, and a run's first moments.

Each AppTest is its own Streamlit session; all of them share this process's ``st.cache_resource``,
as browser sessions share one server.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

import bmcore.inference as binf
from bmcore import data as bdata
from bmcore import files, run_list, runs
from bmcore.config import TrainConfig

TIMEOUT = 180
MARK = "zebracorn"  # a word that appears only in session A's upload


def node_text(node) -> str:
    """Everything an AppTest element tree holds, as text (protos of every element, recursively)."""
    parts = [str(getattr(node, "proto", ""))]
    children = getattr(node, "children", None) or {}
    for child in children.values():
        parts.append(node_text(child))
    return "\n".join(parts)


def open_page(page: str | None = None, **state: object) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_run_reads_queued_between_creation_and_launch(tiny_model: Path) -> None:
    """Another session listing runs in that moment sees it queued, not 'died' (the pid is not written yet)."""
    bdata.save_prepared(bdata.prepare(bdata.RawData("rows", {"all": pd.DataFrame(
        {"text": [f"sentence {i}" for i in range(40)], "label": ["a", "b"] * 20})}), "rows", seed=0))
    run_dir = runs.create_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="rows"), "fresh")
    assert runs.read_status(run_dir)["state"] == runs.QUEUED
    assert [(r.name, r.state) for r in run_list.list_runs()] == [("fresh", runs.QUEUED)]
    status = files.read_json(run_dir / runs.STATUS_FILE)
    files.write_json_atomic(run_dir / runs.STATUS_FILE, {**status, "created_ts": time.time() - runs.LAUNCH_GRACE_S - 1})
    assert runs.read_status(run_dir)["state"] == runs.FAILED  # never launched: after the grace it reads as dead


def test_an_upload_stays_in_its_session_until_saved(tmp_path: Path) -> None:
    rows = pd.DataFrame({"text": [f"the {MARK} number {i} was {'good' if i % 2 else 'bad'}" for i in range(60)],
                         "label": ["positive" if i % 2 else "negative" for i in range(60)]})
    bdata.save_prepared(bdata.prepare(bdata.RawData("other", {"all": rows.assign(text=lambda d: "other " + d.index.astype(str))}),
                                      "shared-set", seed=0))
    a = open_page(data_source_kind="Upload a file")
    a.file_uploader(key="data_upload").upload("private.csv", rows.to_csv(index=False).encode(), "text/csv").run()
    assert not a.exception and MARK in node_text(a._tree)  # A sees its upload: stats, examples

    b_data = open_page(data_source_kind="Upload a file")
    b_train = open_page("pages/train.py")
    for b in (b_data, b_train):
        assert MARK not in node_text(b._tree) and "private" not in node_text(b._tree)
    assert b_data.file_uploader(key="data_upload").value is None
    assert b_train.selectbox(key="train_dataset").options == ["shared-set"]

    name_box = next(t for t in a.text_input if str(t.key).startswith("data_name_"))
    name_box.input("from-a").run()
    a.button(key="data_save").click().run()
    assert not a.exception and not a.error
    b_train.run()  # saved to the shared workspace on purpose: now every session lists it
    assert sorted(b_train.selectbox(key="train_dataset").options) == ["from-a", "shared-set"]


TEXTS = [f"session {i}: the film was {w}" for i, w in enumerate(
    ["wonderful", "dreadful", "fine", "boring", "moving", "awful", "superb", "dull", "charming", "tedious"])]


@pytest.mark.slow
def test_ten_playground_sessions_share_one_cached_model(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    loads: list[int] = []
    real = binf.load_for_inference

    def counted(*args, **kwargs):  # a spy: the real loader, counted
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(binf, "load_for_inference", counted)
    direct = real(str(tiny_model))
    expected = {t: binf.predict(direct, [t])[0] for t in TEXTS}  # one at a time, as the page predicts

    results: dict[str, dict[str, str]] = {}
    errors: list[BaseException] = []
    sessions = []
    for _ in TEXTS:  # ten sessions open the Playground on the same model folder
        at = open_page("pages/playground.py")
        at.selectbox(key="playground_model_choice").select("(another local folder)").run()
        at.text_input(key="playground_path").input(str(tiny_model)).run()
        assert not at.exception and not at.error
        sessions.append(at)
    start = threading.Barrier(len(TEXTS))

    def session(at: AppTest, text: str) -> None:
        try:
            start.wait(timeout=TIMEOUT)  # every session asks for a prediction at the same moment
            at.text_area(key="playground_input").input(text).run()
            assert not at.exception and not at.error, ([e.value for e in at.exception], [e.value for e in at.error])
            results[text] = {m.label: m.value for m in at.metric}
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(at, t)) for at, t in zip(sessions, TEXTS, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 3)
    assert not errors, errors
    assert set(results) == set(TEXTS)
    for text, shown in results.items():
        want = expected[text]
        assert shown["Prediction"] == want["label"], (text, shown, want)
        assert shown["Probability"] == f"{want['scores'][want['label']]:.1%}", (text, shown, want)
    # The Playground opens on the default model first; each model is loaded once, whatever the number of sessions.
    assert loads.count((str(tiny_model),)) == 1 and len(loads) == len(set(loads)), loads
