"""Image classifiers: which references are image models, their processors and safe loading.

The built-in ``builtin:efficientnet-lite0`` (converted once into a standard folder) lives in
:mod:`bmcore.builtin_images`, which :mod:`bmcore.models` resolves; this module only loads what a reference names.
"""

from __future__ import annotations

from typing import Any

from .builtin_images import DEFAULT_IMAGE_MODEL
from .errors import BmcoreError
from .models import ModelRef, check_weight_shapes, from_pretrained_safely, load_config, resolve_model


def _ref(ref: str | ModelRef) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else resolve_model(ref)


# Image CNNs in transformers: they take any input size (ConvNeXt's config names a patch_size and image_size all the same).
CNN_MODEL_TYPES = frozenset({"resnet", "convnext", "convnextv2", "efficientnet", "mobilenet_v1", "mobilenet_v2", "regnet",
                             "bit", "van", "poolformer", "textnet"})


def is_cnn_config(config: Any) -> bool:
    """True when a model ``config`` is an image CNN (:data:`CNN_MODEL_TYPES`)."""
    return getattr(config, "model_type", "") in CNN_MODEL_TYPES


def is_convolutional(ref: str | ModelRef) -> bool:
    """True for an image CNN (ResNet, ConvNeXt, EfficientNet, MobileNet, :data:`CNN_MODEL_TYPES`). Its
    weights are kept channels-last (1.5x faster training on a 2-core CPU, 1.7x inference) and, on CPUs whose fast
    bf16 is AVX512-BF16 only, it trains in fp32 (:func:`bmcore.trainer.device_plan`)."""
    try:
        return is_cnn_config(load_config(_ref(ref)))  # one config read; text models are no CNN type
    except (BmcoreError, OSError, ValueError):
        return False


def load_image_processor(ref: str | ModelRef) -> Any:
    """The model's image processor (resizing and normalisation), from its ``preprocessor_config.json``."""
    from transformers import AutoImageProcessor

    mref = _ref(ref)
    if mref.path is not None and not (mref.path / "preprocessor_config.json").is_file():
        raise BmcoreError(f"model folder {mref.path} has no preprocessor_config.json; an image model needs its "
                          "image processor saved next to it (processor.save_pretrained(dir))")
    processor = from_pretrained_safely(AutoImageProcessor, mref, offer=DEFAULT_IMAGE_MODEL)
    # Grayscale (Fashion-MNIST), palette and RGBA images become the RGB the model expects, unless it takes one channel.
    if getattr(processor, "do_convert_rgb", False) is None and getattr(load_config(mref), "num_channels", 3) == 3:
        processor.do_convert_rgb = True
    return processor


def load_image_classifier(ref: str | ModelRef, label_names: list[str] | None = None, **config_overrides: Any) -> Any:
    """``AutoModelForImageClassification`` from safetensors, never remote code.

    With ``label_names`` the head is new, sized and named for them (``id2label``/``label2id``); without, the
    checkpoint's own head and labels are kept.
    """
    from transformers import AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    mref = _ref(ref)
    kwargs: dict[str, Any] = {"use_safetensors": True}
    if label_names is not None:
        if not label_names:
            raise BmcoreError("no class names given for the image classifier's head")
        kwargs.update(num_labels=len(label_names), id2label=dict(enumerate(label_names)),
                      label2id={n: i for i, n in enumerate(label_names)}, ignore_mismatched_sizes=True)
    kwargs.update(config_overrides)
    check_weight_shapes(AutoModelForImageClassification, mref)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" warning is expected here
    try:
        model = from_pretrained_safely(AutoModelForImageClassification, mref, offer=DEFAULT_IMAGE_MODEL, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    if is_cnn_config(model.config):  # a CNN: channels-last convolutions are faster on CPUs and GPUs
        import torch

        model.to(memory_format=torch.channels_last)
    return model
