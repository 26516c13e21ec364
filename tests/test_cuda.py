"""The CUDA path: the real job in bf16 and fp16, SDPA attention, inference placement, torchrun with NCCL.

Marked ``gpu`` and skipped without a CUDA device (every CI machine so far); ``scripts/gpu_check.sh`` runs them on one.
The data is builtin:bbc-news (carried as a wheel), since ../shared/data does not travel to a GPU machine.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from test_train import tiny_config

from bmcore import data as bdata
from bmcore import runs
from bmcore.config import TrainConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cuda_is_detected_with_mixed_precision_and_sdpa():
    from bmcore.device import detect_device, inference_placement
    from bmcore.trainer import device_plan

    device = detect_device()
    assert device.kind == "cuda" and device.name == torch.cuda.get_device_name(0)
    assert device.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    plan = device_plan(TrainConfig(), device)
    assert plan["attn_implementation"] == "sdpa" and not plan["use_cpu"] and plan[device.precision]
    assert inference_placement(device.precision, device) == ("cuda", device.precision)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_real_job_trains_saves_and_predicts_on_cuda(tiny_model, bbc_small, precision, monkeypatch):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    from safetensors.torch import load_file

    from bmcore import train
    from bmcore.device import autocast_dtype, detect_device, inference_placement
    from bmcore.inference import load_for_inference, predict

    loaded = []

    def keep(*args, **kwargs):  # the job's own model object, to see where it trained and with which attention
        loaded.append(train_load(*args, **kwargs))
        return loaded[-1]

    from bmcore.tasks import base as task_base  # the task loads the job's model

    train_load = task_base.load_classifier
    monkeypatch.setattr(task_base, "load_classifier", keep)
    run_dir = runs.create_run(tiny_config(tiny_model, bbc_small, precision=precision), f"cuda-{precision}")
    train.run_training(run_dir)
    status = runs.read_status(run_dir)
    assert status["state"] == runs.COMPLETED, runs.log_tail(run_dir)
    device = detect_device()
    assert status["precision"] == precision and not status.get("notice")
    log = (run_dir / runs.LOG_FILE).read_text()
    assert f"device {device.label}, precision {precision}" in log and f"precision {device.reason_for(precision)}" in log
    model = loaded[0]
    assert next(model.parameters()).device.type == "cuda"
    assert model.config._attn_implementation == "sdpa"
    train_rows = [m for m in runs.read_metrics(run_dir) if m["kind"] == "train"]
    assert train_rows[-1]["step"] == 20 and all(math.isfinite(m["loss"]) for m in train_rows)
    # Mixed precision keeps fp32 master weights: the saved model is fp32 whatever the training precision.
    weights = load_file(str(run_dir / runs.MODEL_DIR / "model.safetensors"))
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float32}
    labels = sorted(bdata.load_prepared(bbc_small).label_names)
    clf = load_for_inference(str(run_dir / runs.MODEL_DIR))
    kind, weight_precision = inference_placement(clf.precision, device)
    param = next(clf.model.parameters())
    assert param.device.type == kind == "cuda" and param.dtype == autocast_dtype(weight_precision)
    out = predict(clf, ["Shares rose as the bank raised its profit forecast", "The striker scored twice in the final"])
    assert all(r["label"] in labels and math.isfinite(sum(r["scores"].values())) for r in out)
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(run_dir / runs.MODEL_DIR), device=0)
    assert pipe("The minister announced an election")[0]["label"] in labels


def test_sdpa_runs_fused_kernels_in_bf16_with_padding(tiny_model):
    """With the math fallback switched off, a padded batch must still run forward and backward: a fused SDPA
    kernel (flash or memory-efficient) did the attention."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from bmcore.device import autocast_dtype, detect_device
    from bmcore.models import load_classifier, load_tokenizer
    from bmcore.trainer import device_plan

    device = detect_device()
    attn = device_plan(TrainConfig(), device)["attn_implementation"]
    model = load_classifier(str(tiny_model), attn_implementation=attn).to("cuda")
    eager = load_classifier(str(tiny_model), attn_implementation="eager").to("cuda")
    tok = load_tokenizer(str(tiny_model))
    batch = tok(["a short one", "a much longer sentence that needs more tokens than the first"],
                padding=True, return_tensors="pt").to("cuda")
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        with torch.autocast("cuda", dtype=autocast_dtype(device.precision)):
            logits = model(**batch).logits
        logits.float().sum().backward()
    assert model.config._attn_implementation == "sdpa"
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    with torch.no_grad():  # the same numbers as eager attention, in fp32
        assert torch.allclose(model(**batch).logits, eager(**batch).logits, atol=1e-4)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="torchrun with NCCL needs 2 GPUs")
def test_torchrun_two_gpus_with_nccl_leave_one_model(tiny_model, bbc_small, tmp_path):
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
           "-m", "bmcore", "train", "--data", bbc_small, "--model", str(tiny_model), "--out", str(run_dir),
           "--max-steps", "6", "--eval-strategy", "steps", "--eval-steps", "3", "--max-seq-length", "64",
           "--per-device-train-batch-size", "8"]
    env = {**os.environ, "NCCL_DEBUG": "INFO"}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, (out.stdout[-1500:], out.stderr[-3000:])
    assert "NCCL" in out.stdout + out.stderr  # the process group is NCCL's
    status = runs.read_status(run_dir)
    assert status["state"] == "completed" and status["world_size"] == 2 and status["precision"] in ("bf16", "fp16")
    assert (run_dir / "model" / "model.safetensors").exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".model")]
