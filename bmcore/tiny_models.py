"""Tiny randomly initialised models for fast tests and demos: a BERT text classifier with the bundled MiniLM
vocabulary, and ViT and ResNet image classifiers with their image processors. They train in seconds and learn only
simple data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .models import builtin_model_dir


def make_tiny_bert(out_dir: str | Path, label_names: list[str] | None = None, *, hidden_size: int = 32,
                   num_hidden_layers: int = 2, num_attention_heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny randomly initialised BERT classifier with the bundled MiniLM vocabulary.

    Meant for fast tests and demos: it trains in seconds, and learns only simple data.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = Path(out_dir)
    labels = label_names or ["negative", "positive"]
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(builtin_model_dir("minilm")))
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                        num_attention_heads=num_attention_heads, intermediate_size=hidden_size * 4,
                        max_position_embeddings=512, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    model = BertForSequenceClassification(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _save_tiny_image_model(out_dir: str | Path, model: Any, processor: Any) -> Path:
    out = Path(out_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _image_labels(label_names: list[str] | None) -> dict[str, Any]:
    labels = label_names or ["class_0", "class_1"]
    return dict(num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})


def make_tiny_vit(out_dir: str | Path, label_names: list[str] | None = None, image_size: int = 32, *,
                  patch_size: int = 8, hidden_size: int = 32, num_hidden_layers: int = 2, num_attention_heads: int = 2,
                  seed: int = 0) -> Path:
    """Save a tiny randomly initialised ViT image classifier (patches of ``patch_size``, ``image_size`` square input)
    with its image processor: the attention path of the image tests, as :func:`make_tiny_bert` is for text."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(image_size=image_size, patch_size=patch_size, hidden_size=hidden_size,
                       num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                       intermediate_size=hidden_size * 4, **_image_labels(label_names))
    processor = ViTImageProcessor(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return _save_tiny_image_model(out_dir, ViTForImageClassification(config), processor)


def make_tiny_resnet(out_dir: str | Path, label_names: list[str] | None = None, image_size: int = 32, *,
                     hidden_sizes: tuple[int, ...] = (8, 16), depths: tuple[int, ...] = (1, 1), seed: int = 0) -> Path:
    """Save a tiny randomly initialised ResNet image classifier (basic blocks) with a ConvNeXt-style image processor
    (short side to ``image_size``, ImageNet normalisation) as microsoft/resnet-50 has: the CNN path of the image tests."""
    import torch
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(embedding_size=hidden_sizes[0], hidden_sizes=list(hidden_sizes), depths=list(depths),
                          layer_type="basic", **_image_labels(label_names))
    processor = ConvNextImageProcessor(size={"shortest_edge": image_size}, crop_pct=1.0)
    return _save_tiny_image_model(out_dir, ResNetForImageClassification(config), processor)
