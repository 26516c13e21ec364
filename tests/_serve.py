"""Helpers for the prediction server's tests: a real uvicorn server on a free loopback port in a thread (the same app,
transport limits and batcher as ``python -m bmcore serve``), raw HTTP calls, and tiny random models saved as model
folders and run folders."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bmcore import data as bdata
from bmcore import runs
from bmcore.files import write_json_atomic
from bmcore.serve.app import create_app
from bmcore.serve.limits import ServeLimits
from bmcore.serve.scorer import Scorer
from bmcore.serve.server import bind, uvicorn_server
from bmcore.serve.service import Service


@contextlib.contextmanager
def running(scorer: Scorer, limits: ServeLimits | None = None, key: str | None = None) -> Iterator[tuple[str, Service]]:
    """``(url, service)`` of a server on 127.0.0.1 and a free port, stopped (and its batcher) when the block ends."""
    limits = limits or ServeLimits()
    service = Service(scorer, limits, key)
    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(create_app(service), limits, sock, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", service
    finally:
        server.should_exit = True
        thread.join(15)
        service.batcher.close()
        sock.close()


def call(url: str, method: str = "POST", path: str = "/", body: bytes | str | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any]:
    """(status, JSON answer) of one request on a fresh connection."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def post_json(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return call(url, body=json.dumps(payload), headers={"Content-Type": "application/json", **(headers or {})})


def tiny_text_model(tmp: Path, labels: list[str], problem_type: str | None = None, thresholds: dict | None = None,
                    seed: int = 0) -> Path:
    """A tiny random BERT saved as a model folder, with ``problem_type`` in its config and ``thresholds`` in its
    ``bmcore.json``."""
    from transformers import AutoConfig, BertForSequenceClassification

    from bmcore.model_meta import write_model_meta
    from bmcore.tiny_models import make_tiny_bert

    out = make_tiny_bert(tmp, labels, seed=seed)
    if problem_type:
        config = AutoConfig.from_pretrained(out)
        config.problem_type = problem_type
        BertForSequenceClassification.from_pretrained(out, config=config).save_pretrained(out)
    write_model_meta(out, max_seq_length=64, **({"thresholds": thresholds} if thresholds else {}))
    return out


def as_run(ws: Path, name: str, model_dir: Path, dataset: str) -> Path:
    """A completed run folder in workspace ``ws`` whose model is ``model_dir`` (copied), trained on ``dataset``."""
    run = ws / "runs" / name
    shutil.copytree(model_dir, run / runs.MODEL_DIR)
    write_json_atomic(run / runs.CONFIG_FILE, {"dataset": dataset, "model_name_or_path": "tiny random model"})
    runs.write_status(run, state=runs.COMPLETED)
    return run


def save_texts(name: str, texts: list[str], label_names: list[str]) -> None:
    """``texts`` prepared as dataset ``name`` (every split), labels taken in turn from ``label_names``."""
    df = pd.DataFrame({"text": texts, "label": [label_names[i % len(label_names)] for i in range(len(texts))]})
    bdata.save_prepared(bdata.PreparedDataset(name=name, source="sst2", columns=bdata.Columns(["text"], "label"),
                                              label_names=label_names, splits={"train": df, "validation": df,
                                                                               "test": df}))
