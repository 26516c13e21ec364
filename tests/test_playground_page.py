"""The Playground page through AppTest on a model trained here, plus its helpers in bmcore.report.playground
and bmcore.batch_files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from bmcore import batch_files, runs
from bmcore import data as bdata
from bmcore.config import TrainConfig
from bmcore.errors import BmcoreError
from bmcore.model_meta import write_model_meta
from bmcore.report import playground as view
from bmcore.tiny_models import make_tiny_bert

TIMEOUT = 180  # the first run imports torch and transformers on 2 busy CPU cores
PAGE = "pages/playground.py"
RUN = "tiny-run"
XSS = "<script>alert(1)</script> a charming and affecting film"


@pytest.fixture(scope="module")
def trained_workspace(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_model: Path) -> Path:
    """A workspace with a prepared SST-2 sample and a completed 5-step run of the tiny BERT, trained by the real CLI."""
    ws = tmp_path_factory.mktemp("playground") / "workspace"
    ws.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(200, random_state=0)
        bdata.save_prepared(bdata.prepare(bdata.RawData("sst2-sample", {"all": df}), "sst-tiny", seed=0))
        cfg = TrainConfig(model_name_or_path=str(tiny_model), dataset="sst-tiny", max_seq_length=64, max_steps=5,
                          per_device_train_batch_size=16, eval_strategy="steps", eval_steps=5, logging_steps=1,
                          learning_rate=5e-4)
        run_dir = runs.create_run(cfg, RUN)
        out = subprocess.run([sys.executable, "-m", "bmcore", "train", str(run_dir)], cwd=ROOT, capture_output=True,
                             text=True, timeout=600, env={**os.environ, "BMCORE_WORKSPACE": str(ws)})
        assert out.returncode == 0, out.stderr[-2000:]
        assert runs.read_status(run_dir)["state"] == runs.COMPLETED
    return ws


@pytest.fixture
def trained(trained_workspace: Path, workspace: Path) -> Path:
    """The trained workspace copied into this test's workspace; returns the run's model folder."""
    shutil.copytree(trained_workspace, workspace, dirs_exist_ok=True)
    return (workspace / "runs" / RUN / "model").resolve()


def open_playground(**handoff: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    for k, v in handoff.items():
        at.session_state[k] = v
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


@pytest.mark.slow
def test_predict_attention_attributions_escaped(trained: Path) -> None:
    at = open_playground()
    picker = at.selectbox(key="playground_model_choice")
    assert picker.value == str(trained)
    labels = [picker.format_func(o) for o in picker.options]
    assert labels[0].startswith(f"{RUN} · sst-tiny · test accuracy")
    assert any(o.startswith("builtin:minilm · untrained") for o in labels)
    assert any(b.key.startswith("playground_example_") for b in at.button)  # test-split examples of sst-tiny
    assert any("Type a text" in i.value for i in at.info)

    at.text_area(key="playground_input").input(XSS).run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Prediction"] in ("negative", "positive") and metrics["Latency"].endswith(" ms")
    # 20 validation rows: the run saved no temperature, so no calibrated bars, and the caption says why.
    assert any(c.value.startswith("No calibrated probabilities: no temperature was saved with this model, as the "
                                  "validation split has 20 examples; at least 100") for c in at.caption)
    charts = [c.proto.id for c in at.get("plotly_chart")]
    assert len(charts) == 5  # probabilities, one head, rollout, all heads, [CLS]
    html = at.get("html")[0].value
    assert 'class="bmcore-attributions"' in html and "&lt;" in html and "&gt;" in html
    assert "<script" not in html and "</script>" not in html
    assert any("Convergence delta" in c.value for c in at.caption)
    assert any(c.value.startswith(f"python -m bmcore predict --model {trained} --explain") for c in at.code)
    for md in at.markdown:
        assert "<script" not in md.value

    at.selectbox(key="playground_target").select("negative").run()  # attribute to a chosen class
    assert not at.exception and "“negative”" in at.get("html")[0].value
    at.slider(key="playground_layer_2").set_value(1).run()
    at.slider(key="playground_head_2").set_value(2).run()
    assert not at.exception
    assert at.selectbox(key="playground_target").value == "negative"  # kept while the text stays

    # A new text explains its own prediction: the class picked for the last one is not silently kept.
    at.text_area(key="playground_input").input("a warm, funny and wise film").run()
    predicted = {m.label: m.value for m in at.metric}["Prediction"]
    picker = at.selectbox(key="playground_target")
    assert picker.format_func(picker.value) == "the predicted class"  # a real option, not an empty box
    assert f"“{predicted}”" in at.get("html")[0].value  # the shading is for the class the box names


def test_example_button_and_long_input(trained: Path) -> None:
    at = open_playground()
    button = next(b for b in at.button if b.key == "playground_example_0")
    button.click().run()
    assert not at.exception and at.text_area(key="playground_input").value
    assert at.metric  # the example was predicted

    at.text_area(key="playground_input").input("a rather long film " * 60).run()
    assert not at.exception
    assert any("longer than max_seq_length (64 tokens)" in w.value for w in at.warning)
    window = at.slider(key="playground_window_64")
    window.set_value(10).run()
    assert not at.exception


def test_batch_table_and_download(trained: Path) -> None:
    at = open_playground()
    at.text_area(key="playground_batch_lines").input("a great movie\n\nterrible acting\n<b>bold</b>").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["text"].tolist() == ["a great movie", "terrible acting", "<b>bold</b>"]
    assert {"label", "confidence", "p(negative)", "p(positive)"} <= set(table.columns)
    assert len(at.get("download_button")) == 1


def test_batch_of_a_labelled_file_is_scored(trained: Path, shared_data: Path) -> None:
    from sklearn.metrics import f1_score

    dev = pd.read_csv(shared_data / "sst2" / "dev.csv").groupby("label").head(20)  # 40 real labelled sentences
    at = open_playground()
    at.radio(key="playground_batch_source").set_value("Upload a file").run()
    at.file_uploader(key="playground_batch_file").upload("dev.csv", dev.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["gold"].tolist() == dev["label"].tolist()
    shown = {m.label: m.value for m in at.metric}
    assert shown["Labelled rows"] == "40"
    assert shown["Accuracy"] == f"{(table['label'] == table['gold']).mean():.3f}"
    assert shown["Macro F1"] == f"{f1_score(table['gold'], table['label'], average='macro', zero_division=0):.3f}"

    other = dev.assign(label=dev["label"].map({"negative": "neg", "positive": "pos"}))  # not the model's classes
    at.file_uploader(key="playground_batch_file").upload("other.csv", other.to_csv(index=False).encode(), "text/csv").run()
    assert "Accuracy" not in {m.label for m in at.metric}
    assert any(c.value.startswith("No accuracy: the file's labels (neg, pos)") for c in at.caption)


def test_handoff_from_evaluate(trained: Path) -> None:
    run_folder = str(trained.parent)  # a run folder stands for its model/
    at = open_playground(playground_text="the plot is thin", playground_model=run_folder)
    assert at.selectbox(key="playground_model_choice").value == str(trained)
    assert at.text_area(key="playground_input").value == "the plot is thin"
    assert any("Evaluate page" in c.value for c in at.caption)
    assert at.metric and not at.error
    assert "playground_text" not in at.session_state  # read once


def test_builtin_is_labelled_untrained_and_bad_inputs(trained: Path) -> None:
    at = open_playground()
    at.selectbox(key="playground_model_choice").select("builtin:minilm").run()
    assert not at.exception
    assert any("untrained base model" in w.value for w in at.warning)

    at.selectbox(key="playground_model_choice").select("(another local folder)").run()
    at.text_input(key="playground_path").input("/no/such/model").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["model path /no/such/model does not exist"]

    at.text_input(key="playground_path").input(str(trained)).run()
    at.text_area(key="playground_input").input("   ").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["the text is empty; type a sentence"]


def test_cache_key_follows_the_model_folder_mtime(tmp_path: Path) -> None:
    folder = make_tiny_bert(tmp_path / "m", ["a", "b"])
    first = view.model_info(str(folder))
    assert first.cache_key == (str(folder.resolve()), first.mtime) and not first.base
    weights = folder / "model.safetensors"
    os.utime(weights, (first.mtime + 10, first.mtime + 10))  # a retrained model in the same folder
    second = view.model_info(str(folder))
    assert second.cache_key != first.cache_key and second.mtime == first.mtime + 10
    write_model_meta(folder, dataset="sst-tiny", temperature=1.5)  # e.g. calibration saved a temperature
    os.utime(folder / "bmcore.json", (first.mtime + 20, first.mtime + 20))
    third = view.model_info(str(folder))
    assert third.cache_key != second.cache_key and third.dataset == "sst-tiny" and third.temperature == 1.5
    assert view.model_info("builtin:minilm").base


def test_helpers() -> None:
    assert view.token_window(10, 0, 40) == (0, 10)
    assert view.token_window(100, 90, 40) == (60, 100)
    assert view.token_labels(["<", "script", "supercalifragilistic"]) == ["&lt;", "script", "supercalifrag…"]
    assert view.example_label({"label": "pos", "text": "*bold* [x](y)"}) == "pos: \\*bold\\* \\[x\\](y)"  # no link: the brackets are escaped
    texts, pairs = batch_files.read_batch("a.txt", b"one\n\n two \n")
    assert texts == ["one", " two "] and pairs is None
    texts, pairs = batch_files.read_batch("a.csv", b"premise,hypothesis\np1,h1\np2,h2\n")
    assert texts == ["p1", "p2"] and pairs == ["h1", "h2"]
    with pytest.raises(BmcoreError, match="no text column"):
        batch_files.read_batch("a.csv", b"x,y\n1,2\n")
    frame = view.predictions_frame(["t"], [{"label": "b", "scores": {"a": 0.2, "b": 0.8}, "truncated": False}])
    assert frame.to_dict("records") == [{"text": "t", "label": "b", "confidence": 0.8, "p(a)": 0.2, "p(b)": 0.8,
                                         "truncated": False}]
    assert view.predict_command("m", "it's <ok>") == "python -m bmcore predict --model m --explain 'it'\"'\"'s <ok>'"


def test_the_text_and_its_result_stay_when_you_leave_and_come_back(trained: Path) -> None:
    at = open_playground()
    at.text_area(key="playground_input").input("a charming and affecting film").run()
    at.text_area(key="playground_batch_lines").input("one line\nanother line").run()
    shown = {m.label: m.value for m in at.metric}
    assert "Prediction" in shown
    for page in ("pages/data.py", "pages/evaluate.py"):  # away (to another page, twice), then back
        at.switch_page(page).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.text_area(key="playground_input").value == "a charming and affecting film"
    assert at.text_area(key="playground_batch_lines").value == "one line\nanother line"
    assert at.selectbox(key="playground_model_choice").value == str(trained)
    assert {m.label: m.value for m in at.metric}["Prediction"] == shown["Prediction"]  # the result is drawn again
