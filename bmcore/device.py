"""The compute device and the precision training and inference use on it: CUDA (bf16 where supported, else fp16),
Apple MPS (fp32), or the CPU (bf16 where it has AMX or AVX512-BF16, else fp32); detected once."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from typing import Any

from .errors import BmcoreError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
PRECISION_ENV = "BMCORE_PRECISION"  # "fp32" forces the fp32 path, as on a CPU without fast bf16 (tests, bench, CI checks)
FORCED_FP32 = f"forced by {PRECISION_ENV}=fp32"  # DeviceInfo.detail when the environment forced fp32


@dataclass(frozen=True)
class DeviceInfo:
    """The compute device and the precision training and inference will use on it."""

    kind: str  # "cuda", "mps" or "cpu"
    name: str
    precision: str  # "bf16", "fp16" or "fp32"
    detail: str = ""  # why, e.g. "AMX" or "AVX512-BF16"

    @property
    def label(self) -> str:
        """A short label for the sidebar: ``CPU · bf16 (AMX)``, ``CUDA · NVIDIA H200 · bf16``."""
        if self.kind == "cpu":
            return f"CPU · {self.precision}" + (f" ({self.detail})" if self.detail else "")
        return f"{self.kind.upper()} · {self.name} · {self.precision}"

    @property
    def reason(self) -> str:
        """Why ``precision`` was chosen on this device, in one short line starting with the precision."""
        p = self.precision
        if self.detail == FORCED_FP32:
            return f"{p}: {self.detail}"
        if self.kind == "cpu":
            if p == "bf16":
                speed = "several times" if self.detail == "AMX" else "2-3x"  # AVX512-BF16: 2.3x fp32 measured here
                return f"bf16: this CPU has {self.detail or 'fast bf16'}, so bf16 autocast runs matmuls {speed} faster than fp32"
            return "fp32: this CPU has no AMX or AVX512-BF16, where bf16 is emulated and slow"
        if self.kind == "cuda":
            if p == "bf16":
                return "bf16: this GPU supports bf16 (tensor-core speed, fp32's range, no loss scaling)"
            if p == "fp16":
                return "fp16: this GPU has no bf16 support, so mixed precision uses fp16 with loss scaling"
            return "fp32: set for this GPU"
        return f"fp32: mixed precision on {self.kind.upper()} is not used (unreliable through Trainer)"

    def reason_for(self, precision: str) -> str:
        """Why a run uses ``precision`` here: :attr:`reason` when it is the detected choice (a fallback is too),
        else that the precision setting asked for it."""
        if precision == self.precision:
            return self.reason
        return f"{precision}: set by the precision option (auto would use {self.precision})"


def cpu_bf16_feature() -> str:
    """The CPU feature that makes bf16 fast ("AMX" or "AVX512-BF16"), or "" when there is none."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if {"amx_bf16", "amx_tile"} <= flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if platform.machine() == "arm64" and platform.system() == "Darwin":
        return ""
    return ""


@functools.lru_cache(maxsize=1)
def detect_device() -> DeviceInfo:
    """Detect the device once: CUDA (bf16 where supported, else fp16), Apple MPS, else CPU (bf16 with AMX/AVX512-BF16)."""
    import torch

    forced = os.environ.get(PRECISION_ENV, "").strip().lower() == "fp32"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        if forced:
            return DeviceInfo("cuda", name, "fp32", FORCED_FP32)
        return DeviceInfo("cuda", name, "bf16" if torch.cuda.is_bf16_supported() else "fp16")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return DeviceInfo("mps", "Apple GPU", "fp32", "MPS mixed precision is not used")
    if forced:
        return DeviceInfo("cpu", platform.processor() or "CPU", "fp32", FORCED_FP32)
    feature = cpu_bf16_feature()
    return DeviceInfo("cpu", platform.processor() or "CPU", "bf16" if feature else "fp32", feature)


def select_precision(requested: str = "auto", device: DeviceInfo | None = None) -> tuple[str, str | None]:
    """Return the precision to use for ``requested`` on ``device``, and a notice when it had to fall back."""
    requested = (requested or "auto").lower()
    if requested not in PRECISIONS:
        raise BmcoreError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    device = device or detect_device()
    if requested == "auto":
        return device.precision, None
    if requested == "fp32":
        return "fp32", None
    if device.kind == "cuda":
        if requested == "bf16" and device.precision != "bf16":
            return "fp16", "this GPU has no bf16 support; using fp16"
        return requested, None
    if device.kind == "cpu":
        fallback = "bf16" if device.precision == "bf16" else "fp32"
        if requested == "fp16":
            return fallback, f"fp16 is not supported on the CPU; using {fallback}"
        if requested == "bf16" and device.precision != "bf16":
            return "fp32", "this CPU has no fast bf16 (AMX or AVX512-BF16); using fp32"
        return requested, None
    # MPS: mixed precision through Trainer is unreliable; stay in fp32.
    return "fp32", f"{requested} is not used on {device.kind.upper()}; using fp32"


def inference_placement(precision: str, device: DeviceInfo) -> tuple[str, str]:
    """Where inference weights live and in which precision: ``(torch device type, weight precision)``.

    Half-precision weights on CUDA and on bf16 CPUs (faster than autocast there); fp32 elsewhere.
    """
    half = precision in ("fp16", "bf16") and device.kind in ("cuda", "cpu")
    return device.kind, precision if half else "fp32"


def torch_device(device: DeviceInfo | None = None) -> Any:
    """The ``torch.device`` for ``device`` (default: the detected one)."""
    import torch

    return torch.device((device or detect_device()).kind)


def autocast_dtype(precision: str) -> Any:
    """The torch dtype for autocast at ``precision``, or None for fp32."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
