"""Images: one picture per example (PNG, JPEG, ...), read by an image processor and an image classifier."""

from __future__ import annotations

from typing import Any

from ..builtin_images import BUILTIN_IMAGE_MODELS
from ..models import BUILTIN_PREFIX
from ..tasks.image_classification import processor_size
from ..vision import load_image_classifier, load_image_processor
from .base import Modality


class Image(Modality):
    name = "image"
    example_noun = "images"
    pipeline_task = "image-classification"
    pipeline_example = '"photo.png"'
    thumbnails = True
    evaluate_note = ("Images: the baseline is logistic regression on the pixels, each image downscaled to 16x16 grayscale; "
                     "the examples below are shown as thumbnails, captioned file name: gold → predicted (confidence).")
    evaluate_omits = ("gold",)  # the label-quality check of a split's gold labels is not drawn for images yet

    def builtin_models(self) -> tuple[str, ...]:
        return tuple(BUILTIN_PREFIX + name for name in BUILTIN_IMAGE_MODELS)

    def reads(self, model_or_config: Any) -> bool:
        """An ``...ForImageClassification`` architecture, or a base checkpoint without a head (ViTModel,
        ResNetModel) whose model type only transformers' image classifiers have."""
        config = getattr(model_or_config, "config", model_or_config)
        names = [*(getattr(config, "architectures", None) or []),
                 *([type(model_or_config).__name__] if hasattr(model_or_config, "config") else [])]
        if names and any(str(n).endswith(("ForImageClassification", "ForSequenceClassification")) for n in names):
            return any(str(n).endswith("ForImageClassification") for n in names)
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
            MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        )

        kind = getattr(config, "model_type", "")
        return kind in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES and kind not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    def load_processor(self, ref: Any) -> Any:
        return load_image_processor(ref)

    def load_model(self, ref: Any, label_names: list[str] | None = None, **kwargs: Any) -> Any:
        return load_image_classifier(ref, label_names, **kwargs)

    pictures = True
    processor_noun = "image processor"

    def evaluation_facts(self, processor: Any) -> dict[str, Any]:
        return {"image_size": processor_size(processor)}


MODALITY = Image()
