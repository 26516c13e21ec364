"""A bounded load generator for ``bench --only serve``: ``clients`` concurrent HTTP clients on loopback post
``{"inputs": text}`` to a server until a fixed number of requests is sent or a time cap passes, and every answer's
latency, status and top label is kept.

Bounded on purpose: a fixed request count, a wall-clock cap, a per-request timeout, and loopback addresses only (it
is a benchmark of this machine's server, never a tool to load someone else's). aiohttp runs the clients in one event
loop in the caller's process; its own CPU (a few percent of a core at a few hundred requests/s) is spent alike for
every server measured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import BmcoreError
from .measure import percentile

LOOPBACK_NAMES = ("localhost",)
ERROR_SAMPLES = 5  # distinct error messages kept per run, for the report


@dataclass
class LoadResult:
    """One load run: what was sent and what came back.

    ``answers`` holds ``(text index, top label)`` for every successful response, in completion order;
    ``latencies_ms`` the milliseconds of those same responses (send to body read).
    """

    clients: int
    requests: int
    seconds: float = 0.0
    sent: int = 0
    errors: int = 0
    capped: bool = False
    latencies_ms: list[float] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Throughput (successful requests per second of wall time), latency percentiles in ms, and counts."""
        ok = len(self.latencies_ms)
        lat = self.latencies_ms or [float("nan")]
        return {"clients": self.clients, "requests": self.requests, "sent": self.sent, "ok": ok, "errors": self.errors,
                "capped": self.capped, "seconds": round(self.seconds, 3),
                "requests_per_s": ok / self.seconds if self.seconds > 0 else 0.0,
                "p50_ms": percentile(lat, 0.5), "p95_ms": percentile(lat, 0.95), "p99_ms": percentile(lat, 0.99),
                "error_samples": list(self.error_samples)}

    def note_error(self, message: str) -> None:
        self.errors += 1
        if message not in self.error_samples and len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(message)


def check_loopback(url: str) -> None:
    """Refuse any address but this machine's own: the load generator only measures a local server."""
    host = urlsplit(url).hostname or ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host in LOOPBACK_NAMES
    if not local:
        raise BmcoreError(f"the load generator only targets loopback addresses (127.0.0.1, ::1), not {host or url!r}")


def top_label(body: Any) -> str:
    """The highest-scoring label of a Hugging Face text-classification answer for one input: a list of
    ``{"label", "score"}``, or that list wrapped once more (the Inference API's batch shape)."""
    items = body[0] if isinstance(body, list) and body and isinstance(body[0], list) else body
    if not isinstance(items, list) or not items or not all(isinstance(d, dict) and "label" in d for d in items):
        raise ValueError(f"not a list of {{label, score}}: {str(body)[:80]}")
    return str(max(items, key=lambda d: float(d.get("score", 0.0)))["label"])


async def _client(session: Any, url: str, texts: list[str], res: LoadResult, counter: list[int],
                  deadline: float) -> None:
    """One client: take the next request number, post its text, record the answer; until none are left or time is up."""
    import aiohttp

    while counter[0] < res.requests:
        if time.perf_counter() >= deadline:
            res.capped = True
            return
        i = counter[0]
        counter[0] += 1
        res.sent += 1
        idx = i % len(texts)
        t0 = time.perf_counter()
        try:
            async with session.post(url, json={"inputs": texts[idx]}) as resp:
                body = await resp.json(content_type=None) if resp.status == 200 else await resp.text()
            if resp.status != 200:
                res.note_error(f"HTTP {resp.status}: {' '.join(str(body).split())[:120]}")
                continue
            label = top_label(body)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            res.note_error(f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}")
            continue
        res.latencies_ms.append((time.perf_counter() - t0) * 1000)
        res.answers.append((idx, label))


async def _load(url: str, texts: list[str], clients: int, requests: int, time_cap_s: float,
                timeout_s: float) -> LoadResult:
    import aiohttp

    res = LoadResult(clients=clients, requests=requests)
    counter = [0]  # the next request number, shared by the clients (one event loop: no lock needed)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(_client(session, url, texts, res, counter, t0 + time_cap_s) for _ in range(clients)))
        res.seconds = time.perf_counter() - t0
    return res


def run_load(url: str, texts: list[str], clients: int, requests: int, time_cap_s: float = 90.0,
             timeout_s: float = 30.0) -> LoadResult:
    """Send ``requests`` posts of ``{"inputs": text}`` (texts in turn) from ``clients`` concurrent clients to ``url``.

    Stops sending when ``time_cap_s`` seconds have passed (``capped`` is then True; requests in flight finish, each
    within ``timeout_s``). Non-200 answers, timeouts, refused connections and bodies that are no label list count
    as errors; nothing is retried.
    """
    check_loopback(url)
    if not texts:
        raise BmcoreError("no texts to send")
    if clients < 1 or requests < 1:
        raise BmcoreError("the load generator needs at least 1 client and 1 request")
    return asyncio.run(_load(url, texts, clients, requests, time_cap_s, timeout_s))
