"""The Data page through AppTest: an upload outlives a page switch, default names, dropping duplicates, a test file."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import data as bdata
from bmcore.problem_types import MULTI_LABEL

TIMEOUT = 120


@pytest.fixture
def app() -> AppTest:
    """The app on the Data page with "Upload a file" chosen, so no run tokenises the built-in set."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["data_kept"] = {"data_source_kind": "Upload a file"}
    return at.run()


@pytest.fixture(scope="module")
def sms_csv(shared_data: Path) -> bytes:
    """600 real SMS messages, repeats included (the collection sends the same promotions many times)."""
    sms = pd.read_csv(shared_data / "sms_spam" / "all.csv", dtype=str, keep_default_na=False)
    rows = pd.concat([sms[sms["label"] == "spam"].head(150), sms[sms["label"] == "ham"].head(450)])
    return rows.to_csv(index=False).encode()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_upload_survives_a_page_switch_and_can_be_cleared(app, sms_csv):
    assert not app.exception and not app.metric
    app.file_uploader(key="data_upload").upload("train.csv", sms_csv, "text/csv").run()
    assert not app.exception and not app.error
    assert metrics(app)["Rows"] == "600"
    fp = bdata.source_fingerprint("train.csv", sms_csv)
    name_key = f"data_name_{fp[:8]}"
    assert app.text_input(key=name_key).value == f"train-{fp[:6]}"  # not plain "train": the next train.csv would replace it
    app.text_input(key=name_key).input("spam-600").run()
    app.selectbox(key=f"data_label_{fp[:8]}").set_value("label").run()

    app.switch_page("pages/train.py").run()
    assert not app.exception
    app.switch_page("pages/data.py").run()
    assert not app.exception and not app.error
    assert app.radio(key="data_source_kind").value == "Upload a file"
    assert any("Current file: train.csv (0." in c.value for c in app.caption)
    assert metrics(app)["Rows"] == "600"
    assert app.text_input(key=name_key).value == "spam-600"  # the typed name is kept too
    other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)  # another browser session
    other.session_state["data_kept"] = {"data_source_kind": "Upload a file"}
    other.run()
    assert not other.metric and not any("Current file" in c.value for c in other.caption)
    assert not bdata.list_prepared()  # nothing reached the workspace before Save
    app.button(key="data_save").click().run()
    assert bdata.load_prepared("spam-600").stats["rows_total"] == 600

    app.button(key="data_upload_clear").click().run()
    assert not app.exception
    assert not app.metric and not any("Current file" in c.value for c in app.caption)


def test_drop_duplicates_button_and_the_saved_dataset(app, sms_csv):
    app.file_uploader(key="data_upload").upload("sms.csv", sms_csv, "text/csv").run()
    assert any("duplicate" in w.value for w in app.warning)
    rows = int(metrics(app)["Rows"])
    assert "--drop-duplicates" not in app.code[0].value

    app.button(key="data_drop_duplicates").click().run()
    assert not app.exception and not app.error
    assert not any("duplicate" in w.value or "leakage" in w.value for w in app.warning)
    dropped = rows - int(metrics(app)["Rows"].replace(",", ""))
    assert dropped > 0
    assert any(s.value.startswith(f"Dropped {dropped} duplicate rows") for s in app.success)
    assert "--drop-duplicates" in app.code[0].value
    app.button(key="data_save").click().run()
    saved = bdata.load_prepared("sms")
    assert saved.stats["rows_total"] == rows - dropped
    assert saved.stats["duplicates_within"] == {"train": 0, "validation": 0, "test": 0}
    assert not any(saved.stats["leakage"].values())
    texts = pd.concat([saved.splits[s]["text"] for s in bdata.SPLITS]).str.strip().str.lower()
    assert texts.is_unique

    app.button(key="data_keep_duplicates").click().run()  # undo
    assert int(metrics(app)["Rows"]) == rows


def test_a_test_file_upload_becomes_the_test_split(app, shared_data):
    val = (shared_data / "emotion" / "val.csv").read_bytes()
    test = pd.read_csv(shared_data / "emotion" / "test.csv", dtype=str).head(300).to_csv(index=False).encode()
    app.file_uploader(key="data_upload").upload("val.csv", val, "text/csv").run()
    assert metrics(app)["Test"] == "200"  # cut from the file
    app.file_uploader(key="data_upload_test").upload("test.csv", test, "text/csv").run()
    assert not app.exception and not app.error
    m = metrics(app)
    assert (m["Rows"], m["Test"]) == ("2,300", "300")
    assert int(m["Train"].replace(",", "")) + int(m["Validation"]) == 2000
    assert "--test-file test.csv" in app.code[0].value

    app.switch_page("pages/evaluate.py").run()
    app.switch_page("pages/data.py").run()
    assert metrics(app)["Test"] == "300"  # both files are still there
    assert any("Current file: test.csv" in c.value for c in app.caption)


def test_no_hint_to_go_to_the_data_page_on_the_data_page(app, sms_csv):
    app.file_uploader(key="data_upload").upload("sms.csv", sms_csv, "text/csv").run()
    captions = " ".join(c.value for c in app.caption)
    assert "None yet" in captions and "on the Data page" not in captions


@pytest.fixture(scope="module")
def goemotions_csv(shared_data: Path) -> bytes:
    """1,500 real GoEmotions rows: text, labels (comma-separated names)."""
    return pd.read_csv(shared_data / "goemotions" / "train.csv", dtype=str).head(1500).to_csv(index=False).encode()


def test_multi_label_upload_is_detected_and_can_be_read_as_single(app, goemotions_csv):
    app.file_uploader(key="data_upload").upload("emo.csv", goemotions_csv, "text/csv").run()
    assert not app.exception and not app.error
    key = bdata.source_fingerprint("emo.csv", goemotions_csv)[:8]
    assert app.selectbox(key=f"data_shape_{key}").value == "delimited"
    assert app.selectbox(key=f"data_delim_{key}").value == ","
    assert any(c.value.startswith("multi-label: column 'labels' holds several labels separated by ','") for c in app.caption)
    m = metrics(app)
    assert m["Labels"] == "28" and m["Rows with no label"] == "0"
    sizes = pd.read_csv(io.BytesIO(goemotions_csv), dtype=str)["labels"].str.count(",") + 1
    assert m["Labels per row (mean)"] == f"{sizes.mean():.2f}"
    charts = {c.proto.id for c in app.get("plotly_chart")}
    assert len(charts) == 4  # rows per label, labels per row, co-occurrence, token lengths
    assert "--label-column labels --label-delimiter ," in app.code[0].value and "--single-label" not in app.code[0].value

    app.selectbox(key=f"data_shape_{key}").set_value("single").run()
    assert not app.exception
    # each combination of labels is now a class of its own, and some occur once: too few to split, said in one line
    assert not app.exception and [e.value for e in app.error] == ["class 'desire,optimism' has only 1 example; each class "
                                                                  "needs at least 3 examples to be split into train/validation/"
                                                                  "test (remove it or give your own splits)"]


def test_zero_one_columns_upload_and_save(app, goemotions_csv):
    emo = pd.read_csv(io.BytesIO(goemotions_csv), dtype=str)
    toxic = pd.DataFrame({"id": range(len(emo)), "comment_text": emo["text"]})
    for name, column in (("anger", "anger"), ("joy", "$joy$"), ("neutral", "neutral")):
        toxic[column] = [int(name in v.split(",")) for v in emo["labels"]]
    csv = toxic.to_csv(index=False).encode()
    app.file_uploader(key="data_upload").upload("toxic.csv", csv, "text/csv").run()
    assert not app.exception and not app.error
    key = bdata.source_fingerprint("toxic.csv", csv)[:8]
    assert app.selectbox(key=f"data_shape_{key}").value == "columns"
    assert app.multiselect(key=f"data_labelcols_{key}").value == ["anger", "$joy$", "neutral"]
    assert any("\\$joy\\$" in c.value for c in app.caption)  # a label name is text, not a formula
    none = int((toxic[["anger", "$joy$", "neutral"]].sum(axis=1) == 0).sum())
    assert metrics(app)["Rows with no label"] == f"{none:,}"
    assert "--label-columns 'anger,$joy$,neutral'" in app.code[0].value

    app.multiselect(key=f"data_labelcols_{key}").unselect("neutral").run()
    assert "--label-columns 'anger,$joy$'" in app.code[0].value
    app.text_input(key=f"data_name_{key}").input("toxic").run()
    app.button(key="data_save").click().run()
    saved = bdata.load_prepared("toxic")
    assert saved.problem_type == MULTI_LABEL and saved.columns.label_columns == ["anger", "$joy$"]
    app.multiselect(key=f"data_labelcols_{key}").unselect("anger").run()
    assert not app.exception and any("at least two 0/1 label columns" in i.value for i in app.info)


def test_a_refused_upload_is_let_go(monkeypatch: pytest.MonkeyPatch, sms_csv):
    """Item 11: the uploader carries the upload limit to the browser (which refuses a bigger file before sending it);
    a file over the limit that arrives all the same is refused in one line and no longer held by the session: not
    in the kept uploads, and its uploader replaced by an empty one."""
    monkeypatch.setenv("BMCORE_MAX_UPLOAD_MB", "0.01")  # 10 KB; sms_csv is about 50 KB
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["data_kept"] = {"data_source_kind": "Upload a file"}
    at.run()
    assert at.file_uploader(key="data_upload").proto.max_upload_size_mb == 1  # the smallest the widget takes
    at.file_uploader(key="data_upload").upload("big.csv", sms_csv, "text/csv").run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"big.csv is {len(sms_csv) / 1024 / 1024:.1f} MB, over the upload limit "
                                           "of 0.01 MB; use a smaller sample, or a local path on your own machine"]
    assert "main" not in at.session_state["data_uploads"] and not at.metric
    assert at.file_uploader(key="data_upload_1").value is None
    state = at.session_state._state._state  # the session's state as Streamlit holds it, widget values included
    assert not [k for k in state._keys() if hasattr(state[k], "file_id") or isinstance(state[k], bytes)]
    at.run()
    assert not at.error  # said once
    monkeypatch.delenv("BMCORE_MAX_UPLOAD_MB")
    at.file_uploader(key="data_upload_1").upload("small.csv", sms_csv, "text/csv").run()
    assert not at.exception and not at.error and metrics(at)["Rows"] == "600"
