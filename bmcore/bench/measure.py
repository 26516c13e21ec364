"""The measuring tools every benchmark shares: the batch size, latencies and their percentiles, the peak resident
memory, and quiet logs while jobs run inside the benchmark's process."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

BATCH = 32  # examples per step of every fixed-batch recipe (bmcore's token-budget batches may hold more)


def percentile(xs: list[float], q: float) -> float:
    """The ``q`` quantile of ``xs`` (0 to 1), interpolated linearly between the two nearest values."""
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def latencies(fn: Callable[[str], Any], texts: list[str], warmup: int = 5) -> list[float]:
    """Milliseconds of ``fn`` on each text, one at a time, after ``warmup`` untimed calls on the first texts."""
    for t in texts[:warmup]:
        fn(t)
    out = []
    for t in texts:
        t0 = time.perf_counter()
        fn(t)
        out.append((time.perf_counter() - t0) * 1000)
    return out


class PeakRSS:
    """Samples this process's resident memory in a thread; ``peak_mb`` is the highest seen while active."""

    def __init__(self, every: float = 0.05) -> None:
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


@contextlib.contextmanager
def training_log_at(level: int) -> Iterator[None]:
    """The training logger at ``level`` while a benchmark runs its jobs in this process, as it was afterwards (a
    caller's own runs keep their train.log lines)."""
    logger = logging.getLogger("bmcore.train")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def quiet_transformers() -> None:
    """transformers' logs at errors only and no progress bars: the load reports would flood the bench's table."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the training job sets warnings back on; the load reports would flood the table
    hf_logging.disable_progress_bar()
