"""Images: one picture per example (PNG, JPEG, ...), read by an image processor and an image classifier."""

from __future__ import annotations

from typing import Any

from ..builtin_images import BUILTIN_IMAGE_MODELS, DEFAULT_IMAGE_MODEL
from ..images.datasets import image_dataset, prepare_images
from ..images.sources import is_image_source
from ..images.stats import image_stats
from ..models import BUILTIN_PREFIX
from ..problem_types import DEFAULT_PROBLEM_TYPE
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

    input_noun = "images"
    data_views = ("image_source", "image_sizes", "image_samples")
    default_model = DEFAULT_IMAGE_MODEL
    train_settings = ("image_size", "augment")
    fixed_columns = "is an image source: its classes come from its folders or label column"

    def reads_source(self, source: str) -> bool:
        """``builtin:fashion-mnist``, a ``.zip``, or a folder of class folders (a table with an image column is
        known once read)."""
        return is_image_source(source)

    def detect_problem_type(self, raw: Any, **columns: Any) -> str:
        return DEFAULT_PROBLEM_TYPE  # one class per image, from its folder or label column

    def prepare_source(self, raw: Any, frames: dict[str, Any], name: str, ratios: tuple[float, float, float],
                       seed: int) -> Any:
        return prepare_images(raw, frames, name, ratios, seed)

    def scoring_source(self, raw: Any, label_names: list[str], *, split: str | None = None) -> tuple[Any, str]:
        return image_dataset(raw, label_names, split=split)

    def input_stats(self, ds: Any, task: Any, tokenizer: Any = None, max_seq_length: int = 0, tokenizer_name: str = "",
                    progress: Any = None) -> dict[str, Any]:
        return image_stats(ds)


MODALITY = Image()
