"""The dashboard through Streamlit's AppTest: the frame, every page, and the Data page end to end."""

from __future__ import annotations

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore.device import detect_device

PAGES = ("pages/data.py", "pages/pretrain.py", "pages/train.py", "pages/evaluate.py", "pages/playground.py")
TIMEOUT = 120  # the first Data page run tokenises 2,225 articles on 2 CPU cores


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    return at.run()


def test_frame_shows_workspace_and_device(app, workspace):
    assert not app.exception
    sidebar = " ".join(m.value for m in app.sidebar.markdown)
    assert str(workspace) in sidebar
    assert detect_device().label in sidebar
    assert app.sidebar.selectbox(key="precision").value == "auto"
    assert detect_device().reason in [c.value for c in app.sidebar.caption]  # what was chosen, and why


def test_precision_override_falls_back_with_a_notice():
    if detect_device().kind != "cpu":
        pytest.skip("the fp16 fallback notice is a CPU behaviour")
    # Set before the first run: AppTest (1.67) drops the sidebar of an st.navigation app from its tree on reruns.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["precision"] = "fp16"
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox(key="precision").value == "fp16"
    assert any("fp16 is not supported" in w.value for w in at.sidebar.warning)
    assert any(detect_device().label in m.value for m in at.sidebar.markdown)  # the fallback is the detected one


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens(app, page):
    app.switch_page(page).run()
    assert not app.exception
    assert len(app.title) == 1


def test_data_page_bbc_news_charts_and_save(app):
    assert app.radio(key="data_source_kind").value.startswith("Built-in")
    assert not app.exception and not app.error
    charts = app.get("plotly_chart")
    assert len(charts) == 2
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rows"] == "2,225" and metrics["Classes"] == "5"
    assert any("leakage" in w.value for w in app.warning)
    assert "python -m bmcore data prepare builtin:bbc-news --name bbc-news" in app.code[0].value

    app.text_input(key="data_name_bbc-news").input("bbc").run()
    app.button(key="data_save").click().run()
    assert not app.exception and not app.error
    assert any("Saved 'bbc'" in s.value for s in app.success)
    assert bdata.is_prepared("bbc")
    saved = bdata.load_prepared("bbc")
    assert saved.stats["class_counts_total"] == {"business": 510, "entertainment": 386, "politics": 417,
                                                 "sports": 511, "tech": 401}
    # The other pages now list it.
    app.switch_page("pages/train.py").run()
    assert not app.exception
    assert "bbc" in app.selectbox(key="train_dataset").options


def test_data_page_local_folder_and_bad_path(app, shared_data):
    app.radio(key="data_source_kind").set_value("Local file or folder").run()
    app.text_input(key="data_path").input(str(shared_data / "emotion")).run()
    assert not app.exception and not app.error
    assert app.toggle(key="data_use_source_splits").value is True
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Classes"] == "6"
    assert (metrics["Train"], metrics["Validation"], metrics["Test"]) == ("16,000", "2,000", "2,000")
    app.text_input(key="data_path").input(str(shared_data / "nope.csv")).run()
    assert not app.exception
    assert [e.value for e in app.error] == [f"{shared_data / 'nope.csv'} does not exist"]


def test_data_page_hub_is_plainly_offline(app):
    app.radio(key="data_source_kind").set_value("Hugging Face Hub").run()
    assert not app.exception
    assert any(w.value.startswith("Offline") for w in app.warning)


def test_data_page_upload_and_malformed_upload(app, shared_data):
    app.radio(key="data_source_kind").set_value("Upload a file").run()
    rows = (shared_data / "emotion" / "val.csv").read_bytes()
    app.file_uploader(key="data_upload").upload("emotion val.csv", b"\xef\xbb\xbf" + rows, "text/csv").run()
    assert not app.exception and not app.error
    assert any("byte-order mark" in c.value for c in app.caption)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rows"] == "2,000" and metrics["Classes"] == "6"
    assert len(app.get("plotly_chart")) == 2
    assert "python -m bmcore data prepare 'emotion val.csv' --name emotion-val" in app.code[0].value

    one_class = b"text,label\n" + b"".join(f"message number {i} is here,ham\n".encode() for i in range(30))
    app.file_uploader(key="data_upload").upload("one.csv", one_class, "text/csv").run()
    assert not app.exception
    assert [e.value for e in app.error] == ["only one class ('ham') in column 'label'; classification needs at least two"]
