"""Single-label image classification: one class per image; softmax over the classes, the top class wins.

The decisions, metrics and calibration are those of :mod:`bmcore.tasks.single_label_classification` (this task
subclasses it, and the saved ``config.problem_type`` stays ``single_label_classification``, so transformers' pipelines
apply a softmax too). What differs is the input side:

* a split's ``image`` column (PNG bytes) becomes ``pixel_values`` through the model's image processor, set to the
  run's ``image_size``; the work happens in :class:`ImageSplit`'s ``__getitem__``, so the DataLoader's workers decode
  and augment while the model trains;
* the training split gets light augmentation (a random resized crop and a horizontal flip) unless ``augment`` is
  off; validation, test, evaluation and prediction never do, and resize exactly as the saved processor does
  (so ``pipeline("image-classification")`` and bmcore agree);
* the baseline is logistic regression on downscaled grayscale pixels (:func:`bmcore.baseline.pixel_baseline_metrics`).

Image models load through :func:`bmcore.vision.load_image_classifier` and :func:`bmcore.vision.load_image_processor`;
what depends on the input alone (decoding, the image size, augmentation, ``pixel_values``, features for label quality)
lives in :mod:`bmcore.modalities.image`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..baseline import pixel_baseline_metrics
from ..builtin_images import DEFAULT_IMAGE_MODEL
from ..display import md_code
from ..errors import BmcoreError
from ..modalities.image import (
    DEFAULT_IMAGE_SIZE,
    augment,
    choose_image_size,
    decode,
    embed_images,
    fixed_image_size,
    pixel_values,
    processor_for_size,
    processor_size,
)
from ..models import load_config
from ..quality.images import score_images
from ..vision import load_image_classifier, load_image_processor
from .single_label_classification import SingleLabelClassification

IMAGE_COLUMN = "image"

# The least share of each training batch's statistics that a batch-norm layer's running mean and variance take in: torch's
# own default. EfficientNet-Lite0 is converted with TensorFlow's decay 0.99 (torch momentum 0.01), right for 350 ImageNet
# epochs; after the ~100 steps of a small fine-tune the statistics used at evaluation are still 0.99 ** 100 = 37%
# ImageNet's: on 100 Fashion-MNIST images per class the saved model scored 0.756, the same weights with statistics
# recomputed on the training images 0.828, and a run at 0.1 0.8225 (issue 27, README "Small data, images").
BN_MOMENTUM = 0.1
# After training, the statistics are recomputed on up to this many training images, unaugmented, with the final weights
# (PreciseBN, Wu & Johnson 2021: a few thousand images suffice): on 100 Fashion-MNIST images per class, 0.8225 -> 0.8355.
RECOMPUTE_IMAGES = 2048


# --- the training data: decoding, sizes and augmentation come from bmcore.modalities.image ---------


class ImageSplit:
    """A split as a map-style torch dataset: item ``i`` is ``{"pixel_values", "labels"}``, decoded (and, for
    training, augmented) when it is read, so DataLoader workers do the work in parallel with training."""

    def __init__(self, images: Sequence[bytes], targets: Sequence[int], processor: Any, size: int, *,
                 train: bool = False, seed: int = 0) -> None:
        self.images, self.targets = list(images), list(targets)
        self.processor, self.size, self.train, self.seed = processor, int(size), bool(train), int(seed)
        self.epoch_draws = 0  # a fresh augmentation per read, reproducible: seeded by (seed, index, reads so far, worker)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        img = decode(self.images[i], f"image {i + 1}")
        if self.train:
            self.epoch_draws += 1
            worker = torch.utils.data.get_worker_info()
            rng = np.random.default_rng([self.seed, i, self.epoch_draws, worker.id if worker else 0])
            x = pixel_values(self.processor, [augment(img, self.size, rng)], resized=True)[0]
        else:
            x = pixel_values(self.processor, [img])[0]
        return {"pixel_values": x, "labels": int(self.targets[i])}


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    import torch

    return {"pixel_values": torch.stack([b["pixel_values"] for b in batch]),
            "labels": torch.tensor([b["labels"] for b in batch], dtype=torch.long)}


def default_workers() -> int:
    """DataLoader workers for images: 2 when the machine has 2 cores or more. One process decodes, crops and
    normalises 1,700 (128 px) to 3,000 (64 px) Fashion-MNIST images a second, well above what a ResNet-18-sized model
    trains on at those sizes on a CPU; workers keep larger photos (JPEG decoding, big resizes) off the training loop."""
    return 2 if (os.cpu_count() or 1) >= 2 else 0


# --- batch-norm statistics after a short fine-tune --------------------------------------------


def follow_new_data(model: Any, momentum: float = BN_MOMENTUM) -> int:
    """Let every batch-norm layer of ``model`` whose running statistics move slower than ``momentum`` (torch's
    convention: the new batch's share) move at ``momentum``, so that evaluation after a short fine-tune uses statistics
    of the new images. Returns how many layers changed (0 for models without batch norm, such as ViTs)."""
    import torch

    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.momentum is not None \
                and module.momentum < momentum:
            module.momentum = momentum
            changed += 1
    return changed


def recompute_batch_norm(model: Any, split: ImageSplit, limit: int = RECOMPUTE_IMAGES, batch_size: int = 64) -> int:
    """Recompute every batch-norm layer's running statistics as the plain average over (up to ``limit``, evenly
    spaced) images of ``split``, unaugmented, through the model as it is now; dropout and the rest stay in evaluation
    mode. Returns the number of images used (0: the model has no batch norm, nothing changed)."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers or not len(split):
        return 0
    plain = ImageSplit(split.images, split.targets, split.processor, split.size, train=False)
    picked = np.unique(np.linspace(0, len(plain) - 1, min(limit, len(plain))).round().astype(int)).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(plain, picked), batch_size=batch_size, collate_fn=collate)
    was_training, momenta = model.training, [m.momentum for m in layers]
    device = next(model.parameters()).device
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    try:
        with torch.no_grad():
            for batch in loader:
                model(pixel_values=batch["pixel_values"].to(device))
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return len(picked)


# --- the task ------------------------------------------------------------------------------------


class ImageClassification(SingleLabelClassification):
    title = "Image classification"
    modality = "image"
    quality_encoders = (DEFAULT_IMAGE_MODEL,)  # label quality: the built-in model's pooled features (bmcore.quality.images)
    # bmcore.schedule's small-data rule, with images' own minimum: on Fashion-MNIST cut to 50 images per class, 48 steps
    # (the default 3 epochs) scored 0.775 and 100 steps 0.811 (README, "Small data, images").
    min_train_steps = 100
    grows_batches = False
    example_noun = "images"
    # The built-in CNN, and its learning rate: on 6,000 Fashion-MNIST images (1 epoch, 64 px) 1e-4 reached 0.62 test
    # accuracy, 1e-3 0.78 and 3e-3 0.80 (bench/NOTES.md). ViT-like models want less (1e-4 or below).
    defaults: dict[str, Any] = {"model_name_or_path": DEFAULT_IMAGE_MODEL, "learning_rate": 1e-3}

    def load_processor(self, mref: Any, config: Any = None, dataset: Any = None) -> Any:
        processor = load_image_processor(mref)
        images = dataset.splits["train"][IMAGE_COLUMN] if dataset is not None else []
        per_class = len(images) / max(1, len(dataset.label_names)) if dataset is not None else None
        size = choose_image_size(getattr(config, "image_size", None), load_config(mref), processor, images, per_class)
        return processor_for_size(processor, size)

    def encode_split(self, df: pd.DataFrame, processor: Any, config: Any, targets: list[Any], *, train: bool) -> Any:
        if IMAGE_COLUMN not in df:
            raise BmcoreError("the split has no 'image' column; prepare an image dataset first")
        return ImageSplit(df[IMAGE_COLUMN].tolist(), targets, processor, processor_size(processor) or DEFAULT_IMAGE_SIZE,
                          train=train and bool(getattr(config, "augment", True)), seed=int(getattr(config, "seed", 0)))

    def model_meta(self, processor: Any) -> dict[str, Any]:
        return {"image_size": processor_size(processor), "modality": self.modality}

    def training_overrides(self, config: Any, n_train: int = 0, world_size: int = 1) -> dict[str, Any]:
        workers = config.dataloader_num_workers if config.dataloader_num_workers is not None else default_workers()
        return {"train_sampling_strategy": "random", "include_num_input_tokens_seen": "no",
                "remove_unused_columns": False, "dataloader_num_workers": workers,
                "dataloader_persistent_workers": workers > 0}

    def collator(self, processor: Any) -> Any:
        return collate

    def finish_training(self, model: Any, train: Any) -> str | None:
        if isinstance(train, ImageSplit) and (n := recompute_batch_norm(model, train)):
            return f"batch-norm statistics recomputed on {n:,} training images (unaugmented) with the final weights"
        return None

    def load_model(self, mref: Any, label_names: Sequence[str], config: Any, plan: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {"problem_type": self.problem_type}
        if fixed_image_size(load_config(mref)) is not None:  # attention models: the run's kernel (eager gives maps)
            kwargs["attn_implementation"] = plan["attn_implementation"]
        model = load_image_classifier(mref, label_names, **kwargs)
        follow_new_data(model)
        return model

    more_data = "add training images and keep augmentation on (augment)"

    def input_columns(self, df: pd.DataFrame) -> pd.DataFrame:
        """What identifies each image in a prediction table: its row in the split, file name and content hash, and
        ``text`` (the file name, else ``image <row>``) where text views expect one."""
        rows = np.arange(len(df))
        paths = df["path"].fillna("").astype(str).to_numpy() if "path" in df else np.full(len(df), "", dtype=object)
        out = pd.DataFrame({"text": [p or f"image {r + 1}" for p, r in zip(paths, rows, strict=True)], "row": rows,
                            "path": paths})
        if "sha256" in df:
            out["sha256"] = df["sha256"].astype(str).to_numpy()
        return out

    def baseline(self, train: pd.DataFrame, df: pd.DataFrame, label_names: Sequence[str], *, seed: int,
                 n_bins: int) -> dict[str, Any]:
        return pixel_baseline_metrics(train, df, list(label_names), seed=seed, n_bins=n_bins, decide=self.decide)

    baseline_name = "logistic regression on 16x16 grayscale pixels"
    baseline_features = "pixel"

    def card_data(self, meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """The image size and the augmentation."""
        size = meta.get("image_size") or config.get("image_size")
        return [f"- Image size: {f'{int(size)}x{int(size)} pixels' if size else 'the model default'} (every image is "
                "resized to it and normalised by the saved image processor, `preprocessor_config.json`)",
                "- Augmentation of the training split: " + ("random resized crop and horizontal flip"
                                                             if config.get("augment", True) else "none")
                + "; evaluation never augments"]

    def card_usage(self, dataset: str, meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
        """transformers' image-classification pipeline, the CLI, and the limitations."""
        size = meta.get("image_size") or config.get("image_size")
        return ["## Use it", "", "```python", "from transformers import pipeline", "",
                'classifier = pipeline("image-classification", model="path/to/this/folder")',
                'classifier("image.png", top_k=None)  # every class with its probability', "```", "",
                "Or with the bmcore studio CLI: `python -m bmcore predict --model path/to/this/folder image.png` "
                "(`--explain` also writes a heat map of what the model looked at).", "",
                "## Limitations", "",
                f"It only knows the classes above and the kind of images in {md_code(dataset)}; every image is resized "
                f"to {f'{int(size)}x{int(size)}' if size else 'the model size'} pixels first, so fine detail is lost. "
                "Check the confusion matrix and the misclassified images before relying on it.", ""]

    def score_label_quality(self, ds: Any, rows: pd.DataFrame, labels: np.ndarray, **kwargs: Any
                            ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        return score_images(ds, rows, labels, embed=embed_images, top_class=self.top_class, **kwargs)


TASK = ImageClassification()
