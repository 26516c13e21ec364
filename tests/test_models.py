"""bmcore.models: model references, safe-loading refusals, the offline Hub, device labels and precision choice."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bmcore.device import FORCED_FP32, PRECISION_ENV, DeviceInfo, detect_device, select_precision
from bmcore.errors import BmcoreError
from bmcore.models import load_tokenizer, resolve_model

CPU_BF16 = DeviceInfo("cpu", "Intel Xeon", "bf16", "AVX512-BF16")
CPU_FP32 = DeviceInfo("cpu", "old CPU", "fp32")
H200 = DeviceInfo("cuda", "NVIDIA H200", "bf16")
T4 = DeviceInfo("cuda", "Tesla T4", "fp16")
MPS = DeviceInfo("mps", "Apple GPU", "fp32", "MPS mixed precision is not used")


# --- model references ---------------------------------------------------------------------


def test_builtin_minilm_resolves_to_bundled_files():
    ref = resolve_model("builtin:minilm")
    assert ref.kind == "builtin"
    assert (ref.path / "config.json").is_file() and (ref.path / "model.safetensors").is_file()
    assert load_tokenizer(ref)("hello world")["input_ids"][0] == 101  # [CLS] of the MiniLM vocabulary


def test_unknown_builtin_is_refused():
    with pytest.raises(BmcoreError, match="builtin:minilm"):
        resolve_model("builtin:gpt5")


def test_local_folder_and_run_folder(tiny_model, tmp_path):
    ref = resolve_model(str(tiny_model))
    assert ref.kind == "local" and ref.path == tiny_model.resolve()
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "model")
    assert resolve_model(str(run)).path == (run / "model").resolve()  # a run folder stands for its model


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(BmcoreError, match="does not exist"):
        resolve_model(str(tmp_path / "no-such-model"))


def test_pickle_only_folder_is_refused(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(BmcoreError, match="pickle weights") as exc:
        resolve_model(str(folder))
    assert "safetensors" in str(exc.value)


def test_remote_code_config_is_refused(tiny_model, tmp_path):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BmcoreError, match="remote code"):
        resolve_model(str(folder))


def test_hub_id_offline_gives_a_clear_error():
    ref = resolve_model("someone-unknown/not-a-real-model-xyz")
    assert ref.kind == "hub" and ref.hub_id == "someone-unknown/not-a-real-model-xyz"
    with pytest.raises(BmcoreError) as exc:
        load_tokenizer(ref)
    message = str(exc.value)
    assert "offline" in message and "builtin:minilm" in message and "\n" not in message


def test_empty_reference_suggests_the_default():
    with pytest.raises(BmcoreError, match="builtin:minilm"):
        resolve_model("  ")


# --- device and precision -----------------------------------------------------------------


def test_device_labels():
    assert CPU_BF16.label == "CPU · bf16 (AVX512-BF16)"
    assert CPU_FP32.label == "CPU · fp32"
    assert H200.label == "CUDA · NVIDIA H200 · bf16"
    assert MPS.label == "MPS · Apple GPU · fp32"


def test_detect_device_on_this_machine():
    device = detect_device()
    assert device.kind in {"cpu", "cuda", "mps"}
    assert device.precision in {"bf16", "fp16", "fp32"}
    if device.kind == "cpu" and os.environ.get(PRECISION_ENV, "").lower() == "fp32":
        assert device.precision == "fp32" and device.detail == f"forced by {PRECISION_ENV}=fp32"
    elif device.kind == "cpu":
        assert (device.precision == "bf16") == bool(device.detail)


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        (CPU_BF16, "bf16: this CPU has AVX512-BF16, so bf16 autocast runs matmuls 2-3x faster than fp32"),
        (DeviceInfo("cpu", "Xeon", "bf16", "AMX"), "bf16: this CPU has AMX, so bf16 autocast runs matmuls several times faster"),
        (CPU_FP32, "fp32: this CPU has no AMX or AVX512-BF16, where bf16 is emulated and slow"),
        (DeviceInfo("cpu", "Xeon", "fp32", FORCED_FP32), "fp32: forced by BMCORE_PRECISION=fp32"),
        (DeviceInfo("cuda", "NVIDIA H200", "fp32", FORCED_FP32), "fp32: forced by BMCORE_PRECISION=fp32"),
        (H200, "bf16: this GPU supports bf16"),
        (T4, "fp16: this GPU has no bf16 support, so mixed precision uses fp16"),
        (MPS, "fp32: mixed precision on MPS is not used"),
    ],
)
def test_device_reason_says_what_was_chosen_and_why(device, reason):
    assert device.reason.startswith(reason)
    assert device.reason_for(device.precision) == device.reason


def test_reason_for_a_precision_the_user_set():
    assert CPU_BF16.reason_for("fp32") == "fp32: set by the precision option (auto would use bf16)"
    # A fallback lands on the detected precision, so it carries the detected reason.
    assert CPU_FP32.reason_for(select_precision("bf16", CPU_FP32)[0]) == CPU_FP32.reason


def test_precision_env_forces_fp32(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    detect_device.cache_clear()
    try:
        device = detect_device()
    finally:
        detect_device.cache_clear()  # the next caller detects again, without the variable
    assert device.precision == "fp32" and device.detail == FORCED_FP32
    assert device.reason == "fp32: forced by BMCORE_PRECISION=fp32"


@pytest.mark.parametrize(
    ("requested", "device", "expected", "notice"),
    [
        ("auto", CPU_BF16, "bf16", None),
        ("auto", CPU_FP32, "fp32", None),
        ("fp16", CPU_BF16, "bf16", "fp16 is not supported on the CPU"),
        ("fp16", CPU_FP32, "fp32", "fp16 is not supported on the CPU"),
        ("bf16", CPU_FP32, "fp32", "no fast bf16"),
        ("bf16", CPU_BF16, "bf16", None),
        ("fp32", CPU_BF16, "fp32", None),
        ("auto", H200, "bf16", None),
        ("fp16", H200, "fp16", None),
        ("auto", T4, "fp16", None),
        ("bf16", T4, "fp16", "no bf16 support"),
        ("fp16", MPS, "fp32", "not used on MPS"),
    ],
)
def test_select_precision(requested, device, expected, notice):
    precision, message = select_precision(requested, device)
    assert precision == expected
    if notice is None:
        assert message is None
    else:
        assert notice in message


def test_select_precision_rejects_unknown():
    with pytest.raises(BmcoreError, match="precision must be one of"):
        select_precision("int4", CPU_BF16)


def test_tiny_model_fixture_is_a_safetensors_folder(tiny_model: Path):
    assert (tiny_model / "model.safetensors").is_file()
    assert json.loads((tiny_model / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}


# --- device placement: the CUDA path, tested without a GPU -----------------------------------------


@pytest.mark.parametrize(
    ("device", "requested", "plan"),
    [
        (H200, "auto", {"precision": "bf16", "bf16": True, "fp16": False, "use_cpu": False, "attn_implementation": "sdpa"}),
        (H200, "fp16", {"precision": "fp16", "bf16": False, "fp16": True, "use_cpu": False}),
        (T4, "auto", {"precision": "fp16", "fp16": True, "use_cpu": False, "attn_implementation": "sdpa"}),
        (T4, "bf16", {"precision": "fp16", "fp16": True, "notice": "this GPU has no bf16 support; using fp16"}),
        (H200, "fp32", {"precision": "fp32", "bf16": False, "fp16": False, "use_cpu": False}),
        (CPU_BF16, "auto", {"precision": "bf16", "bf16": True, "use_cpu": True, "attn_implementation": "eager"}),
        (CPU_BF16, "fp16", {"precision": "bf16", "fp16": False, "use_cpu": True}),
        (CPU_FP32, "auto", {"precision": "fp32", "bf16": False, "use_cpu": True}),
        (MPS, "bf16", {"precision": "fp32", "use_cpu": False, "attn_implementation": "sdpa"}),
    ],
)
def test_training_device_plan(device, requested, plan):
    from bmcore.config import TrainConfig
    from bmcore.trainer import device_plan

    got = device_plan(TrainConfig(precision=requested), device)
    assert {k: got[k] for k in plan} == plan


def test_training_device_plan_keeps_an_explicit_attention_kernel():
    from bmcore.config import TrainConfig
    from bmcore.trainer import device_plan

    assert device_plan(TrainConfig(attn_implementation="eager"), H200)["attn_implementation"] == "eager"
    assert device_plan(TrainConfig(attn_implementation="sdpa"), CPU_BF16)["attn_implementation"] == "sdpa"


@pytest.mark.parametrize(
    ("device", "precision", "placement"),
    [
        (H200, "bf16", ("cuda", "bf16")),
        (T4, "fp16", ("cuda", "fp16")),
        (H200, "fp32", ("cuda", "fp32")),
        (CPU_BF16, "bf16", ("cpu", "bf16")),
        (CPU_FP32, "fp32", ("cpu", "fp32")),
        (MPS, "fp32", ("mps", "fp32")),
        (MPS, "fp16", ("mps", "fp32")),  # half weights only where they are known to be fast and correct
    ],
)
def test_inference_placement(device, precision, placement):
    from bmcore.device import inference_placement

    assert inference_placement(precision, device) == placement


def test_dropout_overrides_use_the_model_s_own_names(tiny_model: Path):
    from bmcore.models import dropout_overrides, load_classifier

    assert dropout_overrides(str(tiny_model), 0.0) == {"attention_probs_dropout_prob": 0.0}  # hidden: the checkpoint's
    over = dropout_overrides(str(tiny_model), 0.0, 0.0)
    assert over == {"attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.0}
    model = load_classifier(str(tiny_model), ["negative", "positive"], **over)
    assert model.config.hidden_dropout_prob == 0.0 and model.dropout.p == 0.0  # the classifier's input dropout follows


CPU_AMX = DeviceInfo("cpu", "Xeon", "bf16", "AMX")


@pytest.mark.parametrize(
    ("device", "requested", "precision"),
    [
        (CPU_BF16, "auto", "fp32"),  # AVX512-BF16 only: convolutions train faster in fp32 (channels-last)
        (CPU_BF16, "bf16", "bf16"),  # asked for: kept
        (CPU_AMX, "auto", "bf16"),  # AMX runs bf16 convolutions in its tiles
        (H200, "auto", "bf16"),
        (CPU_FP32, "auto", "fp32"),
    ],
)
def test_convolutional_models_train_in_fp32_on_avx512_bf16_cpus(device, requested, precision):
    from bmcore.config import TrainConfig
    from bmcore.trainer import CONV_FP32_REASON, device_plan

    plan = device_plan(TrainConfig(precision=requested), device, convolutional=True)
    assert plan["precision"] == precision and plan["bf16"] == (precision == "bf16")
    assert (plan["reason"] == CONV_FP32_REASON) == (device is CPU_BF16 and requested == "auto")
    # Transformers (text, ViT) keep the device's choice.
    assert device_plan(TrainConfig(precision=requested), device)["precision"] == select_precision(requested, device)[0]
