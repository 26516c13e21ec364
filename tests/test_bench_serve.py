"""``bench --only serve``: the bounded load generator, the baseline endpoint (FastAPI + ``transformers.pipeline``) and
the side-by-side report, on the tiny random BERT with small numbers (speed itself is never asserted)."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from bmcore.bench import serve
from bmcore.bench.load import check_loopback, run_load, top_label
from bmcore.cli import main
from bmcore.errors import BmcoreError

TEXTS = ["a wonderful film", "dull and far too long", "the cast is superb", "i want my two hours back",
         "an instant classic", "flat, lifeless and overlong", "sharp and funny", "a mess from start to finish"]


@pytest.fixture(scope="module")
def pipeline_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The baseline endpoint on the tiny BERT, on a free loopback port, started once for the module's tests (torch's
    import takes seconds on 2 busy cores)."""
    port = serve.free_port()
    url = f"http://{serve.HOST}:{port}"
    log = tmp_path_factory.mktemp("pipeline") / "pipeline.log"
    proc = serve.start_server(serve.server_command("pipeline", tiny_model, port), url, log)
    yield url, proc
    serve.stop_server(proc)


def test_load_generator_sends_a_fixed_number_of_requests_and_keeps_every_answer(pipeline_server):
    url, proc = pipeline_server
    first = serve.post_text(url + "/", TEXTS[0])
    assert isinstance(first, list) and {"label", "score"} <= set(first[0])  # the Inference API's shape
    assert serve.rss_mb(proc.pid) > 50  # torch and the model are resident
    res = run_load(url + "/", TEXTS, clients=8, requests=40)
    row = res.summary()
    assert (row["errors"], row["sent"], row["ok"], row["capped"]) == (0, 40, 40, False)
    assert row["requests_per_s"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] < 30_000
    assert sorted(i for i, _ in res.answers) == sorted(i % len(TEXTS) for i in range(40))  # every text in turn
    assert {label for _, label in res.answers} <= {"negative", "positive"}
    # The same text gets the same label under concurrency as alone.
    alone = top_label(first)
    assert all(label == alone for i, label in res.answers if i == 0)


def test_load_generator_counts_refused_connections_as_errors():
    res = run_load(f"http://{serve.HOST}:{serve.free_port()}/", TEXTS, clients=4, requests=12, timeout_s=5)
    row = res.summary()
    assert (row["errors"], row["ok"], row["sent"]) == (12, 0, 12) and row["requests_per_s"] == 0
    assert res.error_samples and all("Error" in m for m in res.error_samples) and math.isnan(row["p99_ms"])


def test_load_generator_stops_at_its_time_cap(pipeline_server):
    url, _ = pipeline_server
    res = run_load(url + "/", TEXTS, clients=2, requests=100_000, time_cap_s=0.5)
    assert res.capped and 0 < res.sent < 100_000 and res.errors == 0 and res.seconds < 30


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/", "http://example.com/", "http://0.0.0.0:80/"])
def test_load_generator_targets_loopback_only(url):
    with pytest.raises(BmcoreError, match="loopback"):
        check_loopback(url)
    check_loopback("http://127.0.0.1:9/")
    check_loopback("http://[::1]:9/")


def test_top_label_reads_both_inference_api_shapes():
    answer = [{"label": "negative", "score": 0.2}, {"label": "positive", "score": 0.8}]
    assert top_label(answer) == top_label([answer]) == "positive"
    for bad in ({"error": "x"}, [], [[]], ["positive"]):
        with pytest.raises(ValueError):
            top_label(bad)


def test_wrong_labels_and_ratios_are_counted_against_the_pipeline():
    def server(rps: float, answers: list[tuple[int, str]]) -> dict:
        return {"levels": {16: {"requests_per_s": rps}}, "answers": [answers]}

    results = {"pipeline": server(20.0, [(0, "a"), (1, "b"), (0, "a")]),
               "bmcore": server(70.0, [(0, "a"), (1, "a"), (2, "b")])}
    serve.check_answers(results)
    assert results["bmcore"]["levels"][16] == {"requests_per_s": 70.0, "wrong": 1, "unchecked": 1}
    assert results["pipeline"]["levels"][16]["wrong"] == 0
    assert serve.serve_ratios(results) == {16: 3.5}


def test_texts_come_from_a_file_then_the_run_then_bbc_news(tmp_path, workspace, tiny_model):
    f = tmp_path / "texts.txt"
    f.write_text("one\n\ntwo\none\n")
    assert serve.serve_texts(None, str(f)) == (["one", "two"], "2 texts from texts.txt")  # blank lines and repeats go
    texts, where = serve.serve_texts(None)
    assert len(texts) == serve.MAX_TEXTS and "BBC News" in where
    with pytest.raises(BmcoreError, match="not a file"):
        serve.serve_texts(None, str(tmp_path))
    # A run folder's model: the run is found, so its prepared data gives the texts.
    run = workspace / "runs" / "r1"
    (run / "model").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "reviews"}))
    assert serve.serve_model(str(run / "model")) == (str(run / "model"), run)
    assert serve.serve_model("r1") == (str(run / "model"), run)
    with pytest.raises(BmcoreError, match="reviews"):  # not prepared: said in one line
        serve.serve_texts(run)
    assert serve.serve_model(str(tiny_model)) == (str(tiny_model), None)


def test_no_finished_run_falls_back_to_builtin_minilm():
    lines: list[str] = []
    assert serve.serve_model(None, lines.append) == ("builtin:minilm", None)
    assert "no finished run" in lines[0]


def test_bench_serve_cli_refuses_a_missing_texts_file_in_one_line(tiny_model, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["bench", "--only", "serve", "--model", str(tiny_model), "--texts", str(tmp_path / "none.txt")])
    assert code == 2 and err.getvalue().count("\n") == 1 and "none.txt" in err.getvalue()


def test_bench_serve_puts_bmcore_serve_beside_the_pipeline_endpoint(tiny_model, tmp_path, monkeypatch):
    """``bench --only serve`` through the CLI, both servers in turn on the tiny BERT, 40 requests at 1 and at 8
    clients: 0 errors, every answer the pipeline's label, memory read, the ratios, the table and the JSON result.
    12 s on 2 cores at load 4 (each server imports torch), 35 s on a machine loaded three times over."""
    monkeypatch.setattr(serve, "LEVELS", (1, 8))
    monkeypatch.setattr(serve, "REQUESTS", {1: 40, 8: 40})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--only", "serve", "--model", str(tiny_model), "--json-out", str(tmp_path / "b.json")]) == 0
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["serve_errors"] == summary["serve_pipeline_errors"] == summary["serve_wrong_labels"] == 0
    assert summary["serve_vs_pipeline_8"] > 0 and summary["serve_p99_ms_8"] > 0
    res = json.loads((tmp_path / "b.json").read_text())["serve"]
    assert set(res["servers"]) == set(serve.SERVERS) and set(res["ratios"]) == {"1", "8"}
    for name, s in res["servers"].items():
        assert s["rss_first_mb"] > 50 and s["rss_after_mb"] > 50 and s["start_s"] > 0, name
        for row in s["levels"].values():
            assert (row["errors"], row["ok"], row["wrong"], row["unchecked"]) == (0, 40, 0, 0), (name, row)
            assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert round(res["ratios"]["8"], 3) == summary["serve_vs_pipeline_8"]
    # bmcore serve's /health counts its model batches; the baseline has none to count
    assert res["servers"]["bmcore"]["levels"]["8"]["mean_batch"] >= 1
    assert res["servers"]["pipeline"]["levels"]["8"]["mean_batch"] is None
    assert all(r["server_cpu_ms"] > 0 for s in res["servers"].values() for r in s["levels"].values())
    table = "\n".join(res["table"])
    assert table in out.getvalue() and "| 8 | bmcore |" in table and "RSS after first request" in table
