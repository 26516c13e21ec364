"""The prediction server (issue 31): its answers equal ``transformers.pipeline()`` for every task, text and image,
on PyTorch and through ONNX Runtime; the real ``huggingface_hub.InferenceClient`` calls it unchanged; a bounded
load run answers every request right and batches; the CLI refuses bad input in one line.

Tiny random models (a BERT with the MiniLM vocabulary, a ViT) saved as model and run folders, on real SST-2 and STS-B
sentences and Fashion-MNIST images; a real uvicorn server on a loopback port (tests/_serve.py)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _serve import as_run, call, post_json, running, save_texts, tiny_text_model
from conftest import ROOT

from bmcore.cli import main as cli_main
from bmcore.device import detect_device
from bmcore.serve.scorer import load_onnx_scorer, load_torch_scorer

ATOL = 1e-5
GOEMO = ["joy", "anger", "surprise"]


@pytest.fixture(autouse=True)
def fp32(monkeypatch: pytest.MonkeyPatch):
    """fp32 inference (bf16 would differ from the pipeline's fp32 by more than 1e-5)."""
    monkeypatch.setenv("BMCORE_PRECISION", "fp32")
    detect_device.cache_clear()
    yield
    detect_device.cache_clear()


@pytest.fixture(scope="module")
def sst2(shared_data: Path) -> list[str]:
    return pd.read_csv(shared_data / "sst2" / "dev.csv")["text"].head(24).tolist()


@pytest.fixture(scope="module")
def stsb_pairs(shared_data: Path) -> list[tuple[str, str]]:
    df = pd.read_csv(shared_data / "stsb" / "dev.csv").head(8)
    return list(zip(df["sentence1"], df["sentence2"], strict=True))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three text tasks as tiny random model folders; the multi-label one with thresholds saved."""
    tmp = tmp_path_factory.mktemp("serve-models")
    return {"single": tiny_text_model(tmp / "single", ["negative", "positive"]),
            "multi": tiny_text_model(tmp / "multi", GOEMO, "multi_label_classification",
                                     {"joy": 0.0, "anger": 1.0, "surprise": 0.5}, seed=1),
            "regression": tiny_text_model(tmp / "regression", ["similarity"], "regression", seed=2)}


@pytest.fixture(scope="module")
def pictures() -> list[bytes]:
    """Six Fashion-MNIST test images as PNG files."""
    from test_image_task import FASHION, png, read_idx

    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return [png(im) for im in read_idx(FASHION / "t10k-images-idx3-ubyte.gz")[:6]]


def pipeline_answers(model_dir: Path, inputs: list, **kwargs) -> list[list[dict]]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(model_dir), device="cpu")
    return [pipe(x, top_k=None, **kwargs) for x in inputs]


def assert_same(got: list[list[dict]], want: list[list[dict]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert [d["label"] for d in g] == [d["label"] for d in w]
        np.testing.assert_allclose([d["score"] for d in g], [d["score"] for d in w], atol=ATOL)


def test_the_scorer_takes_omp_num_threads_when_set(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    """A server given OMP_NUM_THREADS (several servers, or test workers, on one machine) keeps to it; without it, the
    model gets every core the process may use. Loading a scorer once raised a test worker's torch to 2 threads for the
    rest of its tests, beside a second worker on 2 cores."""
    import os

    import torch

    from bmcore.serve.scorer import cores

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert cores() == 1
        load_torch_scorer(str(models["single"]), precision="fp32")
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert cores() == len(os.sched_getaffinity(0))
        monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # not a number: every core, as without it
        assert cores() == len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(before)


def test_single_label_answers_equal_the_pipeline(models: dict[str, Path], sst2: list[str]):
    scorer = load_torch_scorer(str(models["single"]), precision="fp32")
    want = pipeline_answers(models["single"], sst2)
    with running(scorer) as (url, service):
        status, got = post_json(url, {"inputs": sst2})
        assert status == 200
        assert_same(got, want)
        status, one = post_json(url, {"inputs": sst2[0]})  # one text alone: still a list per input, as the API answers
        assert status == 200 and len(one) == 1
        assert_same(one, want[:1])
        status, top = post_json(url, {"inputs": sst2[:3], "parameters": {"top_k": 1, "function_to_apply": "sigmoid"}})
        assert status == 200
        assert_same(top, [w[:1] for w in pipeline_answers(models["single"], sst2[:3], function_to_apply="sigmoid")])
        assert service.batcher.stats()["largest_batch"] == len(sst2)  # a request's texts go in one batch


def test_multi_label_answers_carry_the_thresholds(models: dict[str, Path], sst2: list[str]):
    scorer = load_torch_scorer(str(models["multi"]), precision="fp32")
    want = pipeline_answers(models["multi"], sst2[:6])  # sigmoid per label, as the multi-label pipeline gives
    with running(scorer) as (url, _):
        status, got = post_json(url, {"inputs": sst2[:6]})
        assert status == 200
        assert_same(got, want)
        thresholds = {"joy": 0.0, "anger": 1.0, "surprise": 0.5}
        for answer in got:
            for d in answer:
                assert d["threshold"] == thresholds[d["label"]] and d["predicted"] == (d["score"] >= d["threshold"])
            on = {d["label"] for d in answer if d["predicted"]}
            assert "joy" in on and "anger" not in on  # a 0 threshold is always on, a 1 never
        status, meta = call(url, "GET", "/metadata")
        assert status == 200 and meta["task"] == "multi_label_classification" and meta["thresholds"] == thresholds
        assert meta["labels"] == GOEMO and meta["inputs"] == "text"


def test_regression_answers_the_score_under_its_label(models: dict[str, Path], stsb_pairs: list[tuple[str, str]]):
    scorer = load_torch_scorer(str(models["regression"]), precision="fp32")
    pairs = [{"text": a, "text_pair": b} for a, b in stsb_pairs]
    want = pipeline_answers(models["regression"], pairs, function_to_apply="none")  # the raw score
    with running(scorer) as (url, _):
        status, got = post_json(url, {"inputs": pairs + ["a dog runs in the park"]})
        assert status == 200 and all(len(a) == 1 and a[0]["label"] == "similarity" for a in got)
        assert_same(got[:-1], want)
        assert_same(got[-1:], pipeline_answers(models["regression"], ["a dog runs in the park"],
                                               function_to_apply="none"))
        assert len({round(a[0]["score"], 6) for a in got}) > 1


@pytest.fixture(scope="module")
def vit_scorer(tiny_vit: Path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_PRECISION", "fp32")
        detect_device.cache_clear()
        yield load_torch_scorer(str(tiny_vit), precision="fp32")
    detect_device.cache_clear()


def image_pipeline(model_dir: Path, images: list[bytes]) -> list[list[dict]]:
    import io

    from PIL import Image
    from transformers import pipeline

    pipe = pipeline("image-classification", model=str(model_dir), device="cpu")
    return [pipe(Image.open(io.BytesIO(b)).convert("RGB"), top_k=None) for b in images]


def test_image_answers_equal_the_pipeline(tiny_vit: Path, vit_scorer, pictures: list[bytes]):
    want = image_pipeline(tiny_vit, pictures)
    with running(vit_scorer) as (url, _):
        status, one = call(url, body=pictures[0], headers={"Content-Type": "image/png"})  # raw bytes: one list
        assert status == 200
        assert_same([one], want[:1])
        b64 = [base64.b64encode(p).decode() for p in pictures]
        status, many = post_json(url, {"inputs": b64})
        assert status == 200
        assert_same(many, want)
        status, top = post_json(url, {"inputs": b64[1], "parameters": {"top_k": 1}})
        assert status == 200
        assert_same([top], [want[1][:1]])


def test_the_hugging_face_client_calls_it_unchanged(models: dict[str, Path], sst2: list[str], vit_scorer,
                                                   pictures: list[bytes], tiny_vit: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import InferenceClient, constants

    # Offline mode blocks every request of huggingface_hub's session, even to loopback; the server here is loopback.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    want = pipeline_answers(models["single"], sst2[:1])[0]
    with running(load_torch_scorer(str(models["single"]), precision="fp32"), key="s3cret") as (url, _):
        client = InferenceClient(base_url=url, api_key="s3cret")
        got = client.text_classification(sst2[0])
        assert [e.label for e in got] == [d["label"] for d in want]
        np.testing.assert_allclose([e.score for e in got], [d["score"] for d in want], atol=ATOL)
        assert len(client.text_classification(sst2[0], top_k=1)) == 1
        from huggingface_hub.errors import HfHubHTTPError

        with pytest.raises(HfHubHTTPError, match="401"):
            InferenceClient(base_url=url, api_key="wrong").text_classification(sst2[0])
    want = image_pipeline(tiny_vit, pictures[:1])[0]
    with running(vit_scorer) as (url, _):
        client = InferenceClient(base_url=url)
        for got in (client.image_classification(pictures[0]), client.image_classification(pictures[0], top_k=5)):
            assert [e.label for e in got] == [d["label"] for d in want]  # raw bytes, then base64 JSON with parameters
            np.testing.assert_allclose([e.score for e in got], [d["score"] for d in want], atol=ATOL)


def test_a_bounded_load_run_answers_every_request_right_and_batches(models: dict[str, Path], sst2: list[str]):
    scorer = load_torch_scorer(str(models["single"]), precision="fp32")
    want = {t: a for t, a in zip(sst2, pipeline_answers(models["single"], sst2), strict=True)}
    clients, requests = 24, 240

    def one(i: int) -> tuple[int, str, list]:
        text = sst2[i % len(sst2)]
        status, answer = post_json(url, {"inputs": text})
        return status, text, answer

    with running(scorer) as (url, service):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, range(requests)))
        seconds = time.perf_counter() - t0
        stats = service.batcher.stats()
        assert call(url, "GET", "/health")[0] == 200
    assert [s for s, _, _ in results] == [200] * requests
    for _, text, answer in results:
        assert_same(answer, [want[text]])
    assert stats["inputs"] == requests and stats["largest_batch"] > 1, stats  # requests that arrived together
    assert stats["batches"] < requests
    print(f"{requests} requests from {clients} clients in {seconds:.1f} s; {stats}")


@pytest.fixture(scope="module")
def onnx_runs(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path], sst2: list[str]) -> Path:
    """A workspace with each text model as a completed run on the SST-2 sentences (prepared as ``sst2-serve``)."""
    ws = tmp_path_factory.mktemp("serve-onnx") / "workspace"
    ws.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BMCORE_WORKSPACE", str(ws))
        save_texts("sst2-serve", sst2, ["negative", "positive"])
        for key, model in models.items():
            as_run(ws, key, model, "sst2-serve")
    return ws


@pytest.mark.parametrize("key", ["single", "multi", "regression"])
def test_onnx_answers_equal_the_pipeline(key: str, onnx_runs: Path, models: dict[str, Path], sst2: list[str],
                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BMCORE_WORKSPACE", str(onnx_runs))
    run = onnx_runs / "runs" / key
    scorer = load_onnx_scorer(str(run))  # no export yet: made once, with its parity check, then served
    assert scorer.backend == "onnxruntime" and (run / "export" / "onnx" / "model.onnx").is_file()
    fn = {"function_to_apply": "none"} if key == "regression" else {}
    want = pipeline_answers(models[key], sst2[:8], **fn)
    with running(scorer) as (url, _):
        status, got = post_json(url, {"inputs": sst2[:8]})
        assert status == 200
        assert_same(got, want)
        if key == "multi":
            assert all("predicted" in d for a in got for d in a)
    assert load_onnx_scorer(str(run / "export" / "onnx")).backend == "onnxruntime"  # the export folder itself


def test_onnx_serves_an_image_model(tmp_path: Path, tiny_vit: Path, pictures: list[bytes], workspace: Path):
    from test_image_task import fashion_frames

    from bmcore import data as bdata

    frames = fashion_frames({"train": 2, "validation": 1, "test": 2}, {0: "class_0", 1: "class_1"})
    bdata.save_prepared(bdata.PreparedDataset(name="fashion-serve", source="fashion-mnist",
                                              columns=bdata.Columns(["image"], "label"), label_names=["class_0", "class_1"],
                                              splits=frames, modality="image"))
    run = as_run(workspace, "vit", tiny_vit, "fashion-serve")
    want = image_pipeline(tiny_vit, pictures[:3])
    with running(load_onnx_scorer(str(run))) as (url, _):
        status, got = post_json(url, {"inputs": [base64.b64encode(p).decode() for p in pictures[:3]]})
    assert status == 200
    assert_same(got, want)


@pytest.mark.parametrize("args, says", [
    (["--model", "/nonexistent/model"], "does not exist"),
    (["--model", "builtin:minilm", "--port", "70000"], "not a port"),
    (["--model", "builtin:minilm", "--port", "http"], "not a port number"),
    (["--model", "builtin:minilm", "--onnx"], "--onnx needs a run folder"),
    (["--model", "builtin:minilm", "--onnx", "--precision", "bf16"], "--precision is for PyTorch"),
])
def test_the_cli_refuses_bad_input_in_one_line(args: list[str], says: str, capsys: pytest.CaptureFixture):
    try:
        code = cli_main(["serve", "--port", "0", *args])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_cli_refuses_a_port_in_use(models: dict[str, Path], capsys: pytest.CaptureFixture):
    from bmcore.serve.server import bind

    taken = bind("127.0.0.1", 0)
    taken.listen()
    try:
        assert cli_main(["serve", "--model", str(models["single"]), "--port", str(taken.getsockname()[1])]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err.strip()
    assert "address already in use" in err and len(err.splitlines()) == 1


@pytest.mark.slow  # a fresh interpreter imports torch and transformers: 20 to 30 s on 2 busy cores
def test_python_m_bmcore_serve_starts_and_answers(models: dict[str, Path], tmp_path: Path):
    """The command as the load benchmark starts it: /health answers once the model is loaded."""
    proc = subprocess.Popen([sys.executable, "-m", "bmcore", "serve", "--model", str(models["single"]), "--port", "0"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    try:
        url = None
        lines = []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the server exited: " + "".join(lines)
            lines.append(line)
            if line.startswith("listening on "):
                url = line.split()[2].rstrip(":")
        assert any("max_inputs = 64" in x for x in lines)  # the limits are printed
        for _ in range(200):
            try:
                if call(url, "GET", "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        status, answer = post_json(url, {"inputs": ["I loved it", "I hated it"]})
        assert status == 200 and len(answer) == 2 and {d["label"] for d in answer[0]} == {"negative", "positive"}
        status, docs = call(url, "GET", "/openapi.json")
        assert status == 200 and "/" in docs["paths"] and json.dumps(docs).count("function_to_apply") >= 1
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode in (0, -15)  # uvicorn stops gracefully, then re-raises SIGTERM to end as signalled


def test_the_curl_line_the_pages_show_calls_the_server(models: dict[str, Path], tmp_path: Path):
    """The Playground's and the Export section's snippet (bmcore.report.serving) works as printed."""
    import shlex

    from bmcore.report.serving import curl_command, run_serve_snippet, serve_command

    assert serve_command(tmp_path / "run", onnx=True) == f"python -m bmcore serve --model {tmp_path / 'run'} --onnx"
    assert "--onnx" in run_serve_snippet(tmp_path / "run") and "curl" in run_serve_snippet(tmp_path / "run")
    with running(load_torch_scorer(str(models["single"]), precision="fp32")) as (url, _):
        out = subprocess.run(shlex.split(curl_command(False, url, text="it's 'quoted' \"twice\"")), capture_output=True,
                             text=True, timeout=30, check=True)
    answer = json.loads(out.stdout)
    assert len(answer) == 1 and {d["label"] for d in answer[0]} == {"negative", "positive"}
