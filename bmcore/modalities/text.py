"""Text: rows of one text (or a pair of texts) per example, read by a tokenizer and a sequence classifier."""

from __future__ import annotations

from typing import Any

from ..models import BUILTIN_MODELS, BUILTIN_PREFIX, load_classifier, load_tokenizer
from .base import Modality


class Text(Modality):
    name = "text"
    example_noun = "rows"
    pipeline_task = "text-classification"
    pipeline_example = '"The match went to extra time."'

    def builtin_models(self) -> tuple[str, ...]:
        return tuple(BUILTIN_PREFIX + name for name in BUILTIN_MODELS)

    def reads(self, model_or_config: Any) -> bool:
        return True  # the last modality asked: every model no other modality reads

    def load_processor(self, ref: Any) -> Any:
        return load_tokenizer(ref)

    def load_model(self, ref: Any, label_names: list[str] | None = None, **kwargs: Any) -> Any:
        return load_classifier(ref, label_names, **kwargs)


MODALITY = Text()
