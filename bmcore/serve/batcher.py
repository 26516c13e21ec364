"""Dynamic batching: inputs that arrive together are scored in one batch by one model worker thread.

Requests put their inputs on a queue and await one future per input. The worker takes the first input waiting, then
whatever else arrives until the batch holds ``max_batch`` inputs or the first input has waited ``max_wait_s`` (counted
from when it arrived: under load, inputs that queued while the model was busy go at once, with no extra wait), scores
them in one call, and hands each result back to its request's event loop. The event loop never runs the model, so it
keeps reading and answering requests while a batch is scored; the model has every core to itself.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bmcore.serve")


@dataclass
class _Job:
    value: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():  # the request was cancelled (its client went away)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class Batcher:
    """One worker thread that scores queued inputs in batches with ``score`` (a list of inputs -> a list of results,
    each a value or the exception that refused that input)."""

    def __init__(self, score: Callable[[list[Any]], list[Any]], *, max_batch: int = 32, max_wait_s: float = 0.005) -> None:
        self.score = score
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.sizes: Counter[int] = Counter()  # batch size -> batches scored at that size
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="bmcore-model", daemon=True)
        self._thread.start()

    async def submit(self, values: list[Any]) -> list[Any]:
        """Each value's result, in order (an exception in place of a refused value's result)."""
        loop = asyncio.get_running_loop()
        jobs = [_Job(v, loop.create_future(), loop) for v in values]
        for job in jobs:
            self._queue.put(job)
        return await asyncio.gather(*(job.future for job in jobs), return_exceptions=True)

    def stats(self) -> dict[str, int]:
        """Batches scored, inputs scored and the largest batch so far (``/health`` shows them)."""
        return {"batches": sum(self.sizes.values()), "inputs": sum(n * c for n, c in self.sizes.items()),
                "largest_batch": max(self.sizes, default=0)}

    def close(self) -> None:
        """Stop the worker after the batch it is scoring."""
        self._queue.put(None)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """The batch that starts with ``first``, and whether the worker was told to stop meanwhile."""
        batch = [first]
        deadline = first.arrived + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic())) \
                    if deadline > time.monotonic() else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch, stop = self._collect(first)
            batch = [job for job in batch if not job.future.done()]  # cancelled requests are not scored
            if not batch:
                continue
            try:
                results = self.score([job.value for job in batch])
            except Exception as exc:  # noqa: BLE001 - the requests get the error; the worker keeps serving
                log.exception("scoring a batch of %d failed", len(batch))
                results = [exc] * len(batch)
            self.sizes[len(batch)] += 1
            for job, result in zip(batch, results, strict=True):
                job.loop.call_soon_threadsafe(_settle, job.future, result)
