"""Modalities: what the inputs are, one module each (``text``, ``image``), named as a prepared dataset's ``modality``.

A modality says everything that depends on the input and nothing that depends on what is predicted: which models
read it, how a model's processor and weights load, what one example is called, how a pipeline is named and how a
saved model is called from Python. A task (:mod:`bmcore.tasks`) says what is predicted; code outside the two seams
asks them and never compares against their names.

Adding a modality: write ``bmcore/modalities/<name>.py`` defining a :class:`~bmcore.modalities.base.Modality`
subclass and a module-level ``MODALITY``, then add one line to :data:`MODALITIES`, before any it would shadow
(:func:`modality_of` asks each in turn whether a model is one of its models; the last, text, takes the rest).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import BmcoreError
from ..models import ModelRef, load_config, resolve_model
from .base import Modality

MODALITIES: dict[str, str] = {  # name -> the module that defines its MODALITY; text last: it takes every other model
    "image": "bmcore.modalities.image",
    "text": "bmcore.modalities.text",
}
DEFAULT_MODALITY = "text"


def get_modality(name: str | None = None) -> Modality:
    """The modality called ``name`` (None or empty: text)."""
    key = name or DEFAULT_MODALITY
    if key not in MODALITIES:
        raise BmcoreError(f"unknown modality {key!r}; one of {', '.join(MODALITIES)}")
    return importlib.import_module(MODALITIES[key]).MODALITY


def modality_of(model_or_config: Any) -> Modality:
    """The modality a loaded model (or its ``config``) reads, from its architecture and model type."""
    for name in MODALITIES:
        modality = get_modality(name)
        if modality.reads(model_or_config):
            return modality
    return get_modality()


def modality_of_source(source: str) -> Modality | None:
    """The modality a raw source is known to hold without reading it (a folder of class folders: image), or None."""
    for name in MODALITIES:
        modality = get_modality(name)
        if modality.reads_source(source):
            return modality
    return None


def modality_of_ref(ref: str | ModelRef) -> Modality:
    """The modality of the model a reference names (a built-in is known by name, anything else by its config)."""
    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    for name in MODALITIES:
        modality = get_modality(name)
        if mref.ref in modality.builtin_models():
            return modality
    return modality_of(load_config(mref))


__all__ = ["DEFAULT_MODALITY", "MODALITIES", "Modality", "get_modality", "modality_of", "modality_of_ref",
           "modality_of_source"]
