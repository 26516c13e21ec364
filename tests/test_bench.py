"""The benchmark runs and reports its ratios (speed itself is never asserted in a test)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from bmcore.bench.peak import PEAK_MAX_REPEATS, PEAK_SIZES, machine_peak, matmul_peak, peak_precisions
from bmcore.device import FORCED_FP32, PRECISION_ENV, DeviceInfo, detect_device


@pytest.mark.slow
def test_bench_quick_inference_prints_the_summary_line(tiny_model, tmp_path):
    """The inference part through the CLI, on the tiny BERT (--model): builtin:minilm took minutes on 2 cores for a
    test that asserts no speed (README's bench table runs it on builtin:minilm)."""
    out = subprocess.run([sys.executable, "-m", "bmcore", "bench", "--quick", "--only", "inference", "--model",
                          str(tiny_model), "--json-out", str(tmp_path / "bench.json")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"predict_p50_vs_pipeline", "batch_predict_vs_pipeline", "explain_p50_ms"} <= set(summary)
    assert "one prediction" in out.stdout and "pipeline" in out.stdout
    full = json.loads((tmp_path / "bench.json").read_text())
    assert round(full["inference"]["predict_p50_vs_pipeline"], 3) == summary["predict_p50_vs_pipeline"]
    assert full["inference"]["model"] == str(tiny_model)


@pytest.mark.slow
def test_bench_images_puts_bmcore_beside_the_plain_trainer_recipe(tiny_resnet):
    """The image row on real Fashion-MNIST images (a tiny ResNet keeps it quick): both recipes train on the same images
    at the same size, and the ratios come out."""
    from bmcore.bench.images import IMAGE_RECIPES, bench_images

    if not os.path.isfile("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    lines: list[str] = []
    res = bench_images(quick=True, model=str(tiny_resnet), log=lines.append)
    assert set(IMAGE_RECIPES) <= set(res) and all(res[r]["samples_per_s"] > 0 for r in IMAGE_RECIPES)
    assert res["trainer"]["precision"] == "fp32" and res["bmcore"]["precision"] in ("fp32", "bf16")
    assert lines[-1].startswith("bmcore vs trainer: ") and "trainer-best: " in lines[-1]


# --- the matmul peak: only the precisions the recipes use, sized by a time budget ----------------------

CPU_BF16 = DeviceInfo("cpu", "Xeon", "bf16", "AVX512-BF16")
CPU_FP32 = DeviceInfo("cpu", "EPYC", "fp32")


@pytest.mark.parametrize(
    ("device", "precisions"),
    [
        (CPU_BF16, ("fp32", "bf16")),
        (CPU_FP32, ("fp32",)),  # AVX2 only: bf16 is emulated, the old 2048^2 bf16 peak took minutes
        (DeviceInfo("cpu", "Xeon", "fp32", FORCED_FP32), ("fp32",)),
        (DeviceInfo("cuda", "NVIDIA H200", "bf16"), ("fp32", "bf16")),
        (DeviceInfo("cuda", "Tesla T4", "fp16"), ("fp32", "fp16")),
        (DeviceInfo("mps", "Apple GPU", "fp32", "MPS mixed precision is not used"), ("fp32",)),
    ],
)
def test_peak_is_measured_only_for_fast_precisions(device, precisions):
    assert peak_precisions(device) == precisions


def test_fp32_machine_measures_the_fp32_peak_only():
    lines: list[str] = []
    measured = machine_peak(CPU_FP32, lines.append)
    assert set(measured) == {"fp32"}
    assert measured["fp32"]["flops"] > 0
    assert "bf16 not measured" in lines[0] and "fp32" in lines[0]


def test_precision_env_leaves_bf16_unmeasured(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    detect_device.cache_clear()
    try:
        assert peak_precisions(detect_device()) == ("fp32",)
    finally:
        detect_device.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("budget_s", [1e-6, 1e6])
def test_peak_sizes_and_repeats_are_bounded(budget_s):
    m = matmul_peak(("fp32",), budget_s=budget_s)["fp32"]
    assert m["n"] in PEAK_SIZES and 1 <= m["repeats"] <= PEAK_MAX_REPEATS and m["flops"] > 0
    if budget_s < 1e-3:  # no matmul fits: the smallest size, timed once
        assert (m["n"], m["repeats"]) == (PEAK_SIZES[0], 1)
    else:  # everything fits: the largest size, at most PEAK_MAX_REPEATS times
        assert (m["n"], m["repeats"]) == (PEAK_SIZES[-1], PEAK_MAX_REPEATS)


@pytest.mark.slow
def test_time_to_accuracy_runs_both_recipes_per_seed_and_reports_the_median(tiny_model, shared_data, monkeypatch, tmp_path):
    """The time-to-accuracy part, on an SST-2 slice and the tiny model: each seed trains ``trainer-best`` and bmcore
    side by side (an unreachable target: each stops after one epoch), and the speedup is the median per-seed ratio."""
    import statistics

    import pandas as pd

    from bmcore.bench.accuracy import bench_time_to_accuracy

    monkeypatch.setenv("BMCORE_WORKSPACE", str(tmp_path / "ws"))  # the bench points it at its own folder
    train = pd.read_csv(shared_data / "sst2" / "train.csv").iloc[:256]
    dev = pd.read_csv(shared_data / "sst2" / "dev.csv").iloc[:64]
    lines: list[str] = []
    out = bench_time_to_accuracy(str(tiny_model), target=0.99, seeds=(1, 2), log=lines.append, data=(train, dev))
    assert [r["seed"] for r in out["runs"]] == [1, 2]
    for row in out["runs"]:
        for recipe in ("trainer-best", "bmcore"):
            res = row[recipe]
            assert not res["reached"] and res["seconds"] > 0 and len(res["curve"]) >= 2  # scored during the epoch
            assert res["examples"] >= 256  # a full epoch
        assert row["speedup"] == row["trainer-best"]["seconds"] / row["bmcore"]["seconds"]
    assert out["speedup"] == statistics.median(r["speedup"] for r in out["runs"])
    assert "seeds 1, 2" in lines[0] and "the median of 2 seeds" in lines[-1]
