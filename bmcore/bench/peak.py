"""The machine's matmul peak, the denominator of MFU (model FLOPs utilisation), and the training FLOPs per token.

Measured only for the precisions the training recipes use on the device, sized by a time budget so that it takes
seconds on any machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..device import DeviceInfo

PEAK_BUDGET_S = 1.0  # timed seconds of matmuls per precision: the peak takes seconds on any machine
PEAK_SIZES = (512, 1024, 2048)  # square matmul sizes, tried smallest first (smaller ones measure call overhead)
PEAK_MAX_REPEATS = 20


def peak_precisions(device: DeviceInfo) -> tuple[str, ...]:
    """The precisions whose matmul peak is measured: fp32, and the device's mixed precision where it is fast.

    A CPU without AMX or AVX512-BF16 (or with ``BMCORE_PRECISION=fp32``) runs no recipe in bf16, and
    emulates bf16 matmuls so slowly that timing them took minutes: it is not measured there.
    """
    return ("fp32",) if device.precision == "fp32" else ("fp32", device.precision)


def matmul_peak(precisions: tuple[str, ...] = ("fp32",), budget_s: float = PEAK_BUDGET_S,
                device_kind: str = "cpu") -> dict[str, dict[str, float]]:
    """The matmul peak of each precision (the denominators of MFU): ``{"fp32": {"flops", "n", "repeats"}}``.

    The size grows from 512 while one matmul of the next size (8x the work) would take at most a
    quarter of ``budget_s``, up to 2048; then as many repeats as fit the budget (1 to ``PEAK_MAX_REPEATS``)
    are timed one by one and the fastest counts (a peak; on a shared machine the mean measures the
    neighbours). A slow machine gets a small matmul, and the whole measurement takes about 2 x
    ``budget_s`` per precision.
    """
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

    def timed(a: Any, b: Any) -> float:
        t0 = time.perf_counter()
        a @ b
        if device_kind == "cuda":
            torch.cuda.synchronize()
        return max(time.perf_counter() - t0, 1e-9)

    out = {}
    for name in precisions:
        for n in PEAK_SIZES:
            a, b = (torch.randn(n, n, dtype=dtypes[name], device=device_kind) for _ in range(2))
            timed(a, b)  # warm-up (the first call also initialises the kernels)
            one = min(timed(a, b), timed(a, b))
            if one * 8 > budget_s / 4:
                break
        repeats = max(1, min(PEAK_MAX_REPEATS, int(budget_s / one)))
        best = min(timed(a, b) for _ in range(repeats))
        out[name] = {"flops": 2 * n**3 / best, "n": n, "repeats": repeats}
    return out


def machine_peak(device: DeviceInfo, log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Measure and log the matmul peak of the precisions the recipes use on ``device`` (see :func:`peak_precisions`)."""
    measured = matmul_peak(peak_precisions(device), device_kind="cuda" if device.kind == "cuda" else "cpu")
    log("matmul peak, the denominator of MFU: " + ", ".join(
        f"{p} {m['flops'] / 1e9:.0f} GFLOP/s ({m['n']}x{m['n']}, {m['repeats']} timed)" for p, m in measured.items())
        + ("; bf16 not measured: no recipe uses it here" if device.precision == "fp32" else ""))
    return measured


def train_flops_per_token(config: Any, seq_len: float) -> float:
    """Forward + backward FLOPs per real token: 6 x non-embedding parameters + attention scores (12 x layers x hidden x length)."""
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_layer = 4 * h * h + 2 * h * inter  # Q, K, V, O projections and the two feed-forward matrices
    return 6 * layers * per_layer + 12 * layers * h * seq_len
