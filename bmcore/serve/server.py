"""Starting the server: bind the port (a port in use is refused in one line before the model loads), load the model,
print what is served and the limits, and run uvicorn on the bound socket with its transport limits set."""

from __future__ import annotations

import socket
from typing import Any

from ..errors import BmcoreError
from ..report.serving import curl_command
from .app import create_app
from .limits import ServeLimits, api_key, serve_limits
from .scorer import Scorer, load_onnx_scorer, load_torch_scorer
from .service import Service

# Connections uvicorn accepts at once beyond the requests being served (idle keep-alive ones, /health probes); past
# them it answers 503 itself. Our own cap (max_concurrent) answers first with a JSON line.
SPARE_CONNECTIONS = 64
MAX_HEADER_BYTES = 64 * 1024  # h11: a request line and headers larger than this are refused with 400


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), or a one-line refusal (in use, no such address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BmcoreError(f"cannot listen on {host}: {exc.strerror or 'unknown host'}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise BmcoreError(f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}") from None
    return sock


def uvicorn_server(app: Any, limits: ServeLimits, sock: socket.socket, *, log_level: str = "info") -> Any:
    """A uvicorn server for ``app``: idle connections closed after ``keep_alive_s``, headers capped, connections capped
    (:data:`SPARE_CONNECTIONS` beyond ``max_concurrent``), no access log (a line per request costs on 2 cores). Run it
with ``.run(sockets=[sock])``."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, timeout_keep_alive=max(1, int(limits.keep_alive_s)),
                            limit_concurrency=limits.max_concurrent + SPARE_CONNECTIONS,
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def describe(scorer: Scorer, limits: ServeLimits, key: str | None, url: str) -> list[str]:
    """What the server prints at start: the model, the limits, the API key's state, where to call it."""
    inputs = "image bytes" if scorer.modality.pictures else '{"inputs": "a text"}'
    return [f"bmcore serve: {scorer.source} on {scorer.backend}: {scorer.task.title} of {scorer.modality.name}, "
            f"{len(scorer.label_names)} label(s): {', '.join(scorer.label_names[:8])}"
            f"{', ...' if len(scorer.label_names) > 8 else ''}",
            "limits (set each with its variable):", *limits.lines(),
            "API key: required (BMCORE_API_KEY is set)" if key else "API key: none (set BMCORE_API_KEY to require one)",
            f"listening on {url}: POST / takes {inputs}; GET /health, /metadata, /docs",
            f"try: {curl_command(scorer.modality.pictures, url, key=bool(key))}"]


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, onnx: bool = False,
          precision: str = "auto") -> int:
    """``python -m bmcore serve``: serve ``model`` until interrupted (Ctrl+C or SIGTERM: a graceful stop)."""
    limits = serve_limits()
    key = api_key()
    sock = bind(host, port)
    try:
        scorer = load_onnx_scorer(model) if onnx else load_torch_scorer(model, precision=precision,
                                                                        batch_size=limits.max_batch)
        service = Service(scorer, limits, key)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        for line in describe(scorer, limits, key, f"http://{shown}:{bound_port}"):
            print(line, flush=True)
        uvicorn_server(create_app(service), limits, sock).run(sockets=[sock])
        service.batcher.close()
    finally:
        sock.close()
    return 0
