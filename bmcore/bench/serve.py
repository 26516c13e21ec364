"""``python -m bmcore bench --only serve``: ``bmcore serve`` under load, side by side with the endpoint users would
write themselves (FastAPI calling ``transformers.pipeline`` per request, :mod:`.pipeline_server`).

Both servers run as subprocesses on loopback, one at a time (never both loaded at once), on the same model folder and
the same texts. Each is started, sent one request (its resident memory is read then), warmed up, and loaded by
:mod:`.load` at 1, 16 and 64 concurrent clients, a fixed number of requests per level under a time cap; its memory
is read again after the last level. Every answer's top label is checked against the pipeline's for that text.

The texts: ``--texts FILE`` when given, else the model's run's prepared data (test split first: SST-2's dev
sentences for an SST-2 run), else BBC News titles (bundled), so it runs without ../shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..batch_files import read_batch
from ..data import load_prepared, read_bbc_news
from ..errors import BmcoreError
from ..files import read_json
from ..modalities import modality_of_ref
from ..models import DEFAULT_MODEL
from ..run_list import finished_runs
from ..runs import CONFIG_FILE, MODEL_DIR, find_run, is_run_dir
from ..workspace import check_regular
from .inference import bench_model_folder
from .load import run_load

HOST = "127.0.0.1"
LEVELS = (1, 16, 64)  # concurrent clients
REQUESTS = {1: 200, 16: 800, 64: 1600}  # requests per level; --quick sends a quarter
TIME_CAP_S = 90.0  # per level: a slow server is cut off here (the row says "capped")
MAX_TEXTS = 2000  # distinct texts; requests go through them in turn
WARMUP = (4, 32)  # clients, requests: untimed, after the first request
START_TIMEOUT_S = 300.0  # loading torch and the model on 2 busy cores
SERVERS = ("pipeline", "bmcore")  # the baseline first: its labels are the reference


def server_command(name: str, model_dir: Path, port: int, onnx: bool = False) -> list[str]:
    """The command line that starts server ``name`` (``bmcore`` or ``pipeline``) on ``model_dir`` at ``port``."""
    if name == "pipeline":
        return [sys.executable, "-m", "bmcore.bench.pipeline_server", "--model", str(model_dir), "--host", HOST,
                "--port", str(port)]
    return [sys.executable, "-m", "bmcore", "serve", "--model", str(model_dir), "--host", HOST, "--port", str(port),
            *(["--onnx"] if onnx else [])]


def free_port() -> int:
    """A TCP port free on loopback now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory in MiB of process ``pid`` and its descendants (``VmRSS`` in /proc/PID/status), 0 if gone."""
    import psutil

    total_kb = 0
    try:
        pids = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0.0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants, 0 if gone."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _get(url: str, timeout: float = 5.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback, built here
        return int(resp.status)


def read_health(url: str) -> dict[str, Any]:
    """``GET url/health`` as JSON, or {} (bmcore serve counts its batches there; the baseline says only "ok")."""
    with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
        with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:  # noqa: S310 - loopback, built here
            body = json.loads(resp.read())
            return body if isinstance(body, dict) else {}
    return {}


def mean_batch(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Inputs per model batch between two ``/health`` answers of a server that reports ``batches`` and ``inputs``."""
    try:
        batches = int(after["batches"]) - int(before["batches"])
        return (int(after["inputs"]) - int(before["inputs"])) / batches if batches > 0 else None
    except (KeyError, TypeError, ValueError):
        return None


def post_text(url: str, text: str, timeout: float = 60.0) -> Any:
    """One ``{"inputs": text}`` post, its JSON answer (for the first request, before any load)."""
    req = urllib.request.Request(url, data=json.dumps({"inputs": text}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback, built here
        return json.loads(resp.read())


def start_server(cmd: list[str], url: str, log_path: Path, timeout_s: float = START_TIMEOUT_S) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (output to ``log_path``) and wait until ``url/health`` answers 200.

    A server that exits or does not answer within ``timeout_s`` is stopped and reported with its log's last line."""
    # The folder that holds this bmcore first on the path: ``-m bmcore`` finds this checkout from any cwd.
    home = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [home, os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError, urllib.error.URLError):
            if _get(f"{url}/health") == 200:
                return proc
        time.sleep(0.25)
    stop_server(proc)
    tail = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()][-1:] or ["no output"]
    raise BmcoreError(f"server {' '.join(cmd[1:4])} did not come up: {tail[0][:200]}")


def stop_server(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the server's process group (uvicorn shuts down cleanly), SIGKILL it after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def serve_model(model: str | None, log: Callable[[str], None] = print) -> tuple[str, Path | None]:
    """The model reference to serve and its run folder (None when it is no run's model).

    ``None`` means the newest finished classifier run in the workspace, else ``builtin:minilm`` with a new two-label
    head (random: the benchmark measures speed, and both servers answer alike); a run name or folder means its
    ``model/``."""
    if model is None:
        runs = finished_runs(classifiers=True)
        if not runs:
            log(f"serve: no finished run in the workspace; measuring {DEFAULT_MODEL} with a new (untrained) head")
            return DEFAULT_MODEL, None
        log(f"serve: the newest finished run, {runs[0].name} (give --model RUN_OR_DIR for another)")
        return str(Path(runs[0].path) / MODEL_DIR), Path(runs[0].path)
    with contextlib.suppress(BmcoreError):
        run = find_run(model)
        if (run / MODEL_DIR).is_dir():
            return str(run / MODEL_DIR), run
    path = Path(model).expanduser()
    if path.name == MODEL_DIR and is_run_dir(path.parent):
        return model, path.parent
    return model, None


def serve_texts(run: Path | None, texts_file: str | None = None) -> tuple[list[str], str]:
    """Up to :data:`MAX_TEXTS` distinct texts and where they came from: ``texts_file``, else the run's prepared
    data (test, then validation, then train), else BBC News titles."""
    if texts_file:
        path = Path(texts_file)
        check_regular(path)
        if not path.is_file():
            raise BmcoreError(f"--texts {texts_file} is not a file")
        texts, _ = read_batch(path.name, path.read_bytes())
        where = f"{path.name}"
    elif run is not None and (run / CONFIG_FILE).is_file():
        name = str(read_json(run / CONFIG_FILE).get("dataset", ""))
        ds = load_prepared(name)
        split = next(s for s in ("test", "validation", "train") if len(ds.splits[s]) or s == "train")
        texts, where = ds.splits[split]["text"].astype(str).tolist(), f"{name} {split} split"
    else:
        texts, where = read_bbc_news()["title"].astype(str).tolist(), "BBC News titles (builtin:bbc-news)"
    texts = list(dict.fromkeys(t for t in texts if t.strip()))[:MAX_TEXTS]
    if not texts:
        raise BmcoreError(f"no texts in {where}")
    return texts, f"{len(texts)} texts from {where}"


def measure_server(name: str, cmd: list[str], url: str, texts: list[str], levels: dict[int, int],
                   workdir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start one server, read its memory after the first request, warm it up, run every level, read its memory
    again, and stop it. Returns its start-up seconds, memory in MiB, each level's summary and every answer."""
    t0 = time.perf_counter()
    proc = start_server(cmd, url, workdir / f"{name}.log")
    try:
        out: dict[str, Any] = {"command": " ".join(cmd[1:]), "start_s": round(time.perf_counter() - t0, 1),
                               "pid": proc.pid, "levels": {}, "answers": []}
        post_text(url + "/", texts[0])
        out["rss_first_mb"] = rss_mb(proc.pid)
        run_load(url + "/", texts, clients=WARMUP[0], requests=WARMUP[1])
        for clients, requests in levels.items():
            before, server_cpu, client_cpu = read_health(url), cpu_s(proc.pid), time.process_time()
            res = run_load(url + "/", texts, clients=clients, requests=requests, time_cap_s=TIME_CAP_S)
            row = res.summary()
            # CPU per answered request, in ms: the server's own, and this process's (the load generator's)
            ok = max(row["ok"], 1)
            row["server_cpu_ms"] = (cpu_s(proc.pid) - server_cpu) * 1000 / ok
            row["client_cpu_ms"] = (time.process_time() - client_cpu) * 1000 / ok
            row["rss_mb"] = rss_mb(proc.pid)
            row["mean_batch"] = mean_batch(before, read_health(url))
            out["levels"][clients] = row
            out["answers"].append(res.answers)
            batch = f", {row['mean_batch']:.1f} inputs per model batch" if row["mean_batch"] else ""
            log(f"  {name:<8} {clients:>3} clients: {row['requests_per_s']:7.1f} req/s, p50 {row['p50_ms']:.1f} ms, "
                f"p99 {row['p99_ms']:.1f} ms, {row['errors']} errors{' (capped)' if row['capped'] else ''}; CPU per "
                f"request: server {row['server_cpu_ms']:.1f} ms, load generator {row['client_cpu_ms']:.1f} ms{batch}")
        out["rss_after_mb"] = rss_mb(proc.pid)
        out["rss_growth"] = out["rss_after_mb"] / out["rss_first_mb"] - 1 if out["rss_first_mb"] else None
        if proc.poll() is not None:
            raise BmcoreError(f"server {name} exited during the load run (code {proc.returncode})")
    finally:
        stop_server(proc)
    return out


def check_answers(results: dict[str, dict[str, Any]], reference: str = "pipeline") -> None:
    """Count, per server and level, answers whose top label differs from the ``reference`` server's for that text
    (``wrong``) and answers for texts the reference never answered (``unchecked``). The reference's label of a text
    is its first answer for it."""
    ref: dict[int, str] = {}
    for answers in results[reference]["answers"]:
        for idx, label in answers:
            ref.setdefault(idx, label)
    for res in results.values():
        for row, answers in zip(res["levels"].values(), res.pop("answers"), strict=True):
            row["wrong"] = sum(idx in ref and label != ref[idx] for idx, label in answers)
            row["unchecked"] = sum(idx not in ref for idx, _ in answers)


def serve_ratios(results: dict[str, dict[str, Any]]) -> dict[int, float]:
    """bmcore's throughput over the pipeline endpoint's, per number of clients."""
    ours, theirs = results["bmcore"]["levels"], results["pipeline"]["levels"]
    return {c: ours[c]["requests_per_s"] / theirs[c]["requests_per_s"] if theirs[c]["requests_per_s"] else float("inf")
            for c in ours}


def serve_table(res: dict[str, Any]) -> list[str]:
    """The side-by-side table printed at the end: one row per level and server, then memory per server."""
    lines = [f"serve: bmcore serve vs FastAPI + transformers.pipeline per request; model {res['model']}; {res['texts']}; "
             f"load average {res['loadavg_start']:.2f} at start, {res['loadavg_end']:.2f} at end",
             "| clients | server | requests/s | p50 ms | p95 ms | p99 ms | errors | wrong label | server CPU ms/request "
             "| ours/pipeline |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for clients, ratio in res["ratios"].items():
        for name in SERVERS:
            r = res["servers"][name]["levels"][clients]
            shown = f"{ratio:.2f}x" if name == "bmcore" else ""
            capped = " (capped)" if r["capped"] else ""
            lines.append(f"| {clients} | {name} | {r['requests_per_s']:.1f}{capped} | {r['p50_ms']:.1f} | "
                         f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['wrong']} | {r['server_cpu_ms']:.1f} | {shown} |")
    lines += ["| server | RSS after first request | RSS after the load run | change |", "| --- | --- | --- | --- |"]
    for name in SERVERS:
        s = res["servers"][name]
        growth = f"{s['rss_growth']:+.1%}" if s["rss_growth"] is not None else "n/a"
        lines.append(f"| {name} | {s['rss_first_mb']:.0f} MiB | {s['rss_after_mb']:.0f} MiB | {growth} |")
    return lines


def bench_serve(model: str | None = None, quick: bool = False, texts_file: str | None = None, onnx: bool = False,
                levels: dict[int, int] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load both servers in turn on the same model folder and texts; return every measurement, the ratios
    (ours/pipeline requests/s per level) and the printed table (``table``)."""
    ref, run = serve_model(model, log)
    if modality_of_ref(ref).pictures:
        raise BmcoreError("bench --only serve measures text models; give a text classifier's run or folder")
    texts, where = serve_texts(run, texts_file)
    levels = levels or {c: REQUESTS[c] // (4 if quick else 1) for c in LEVELS}
    res: dict[str, Any] = {"model": ref, "texts": where, "levels": levels, "onnx": onnx,
                           "loadavg_start": os.getloadavg()[0], "servers": {}}
    log(f"serve: {where}; {', '.join(f'{n} requests at {c} clients' for c, n in levels.items())}; "
        f"load average {res['loadavg_start']:.2f}")
    with tempfile.TemporaryDirectory(prefix="bmcore-serve-bench-") as tmp:
        folder = bench_model_folder(ref, ["negative", "positive"], Path(tmp))  # a copy with a head for a base model
        for name in SERVERS:
            port = free_port()
            res["servers"][name] = measure_server(name, server_command(name, folder, port, onnx), f"http://{HOST}:{port}",
                                                  texts, levels, Path(tmp), log)
    check_answers(res["servers"])
    res["ratios"] = serve_ratios(res["servers"])
    res["loadavg_end"] = os.getloadavg()[0]
    res["table"] = serve_table(res)
    for line in res["table"]:
        log(line)
    return res
