"""Images: one picture per example (PNG, JPEG, ...), read by an image processor and an image classifier.

Everything here depends on the input, not on what is predicted: decoding bytes into RGB pictures, the side a run
trains at and the processor set to it, the training augmentation, ``pixel_values``, and the pooled features of a frozen
image model (label quality). The image task (:mod:`bmcore.tasks.image_classification`) uses them; so do inference,
explanation, export and the pages.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..builtin_images import BUILTIN_IMAGE_MODELS, DEFAULT_IMAGE_MODEL
from ..data.columns import IMAGE_COLUMNS
from ..device import autocast_dtype, detect_device, inference_placement, select_precision
from ..errors import BmcoreError
from ..images.codec import decode_image
from ..images.datasets import image_dataset, prepare_images
from ..images.sources import is_image_source
from ..images.stats import image_stats
from ..models import BUILTIN_PREFIX, load_config, resolve_model
from ..problem_types import DEFAULT_PROBLEM_TYPE
from ..search_space import SearchParam
from ..vision import is_cnn_config, load_image_classifier, load_image_processor
from .base import Modality

DEFAULT_IMAGE_SIZE = 224  # the side when neither the processor nor the data says one: ImageNet models' input
SIZE_STEP = 32  # CNNs downsample 32x: a side that is a multiple of 32 keeps every stage's feature map whole
MIN_IMAGE_SIZE = 32
# Below this many training images per class, auto trains at three times the images' typical side instead of twice:
# Fashion-MNIST (28 px) at 96 px instead of 64 gained 0.012-0.024 test accuracy at 50 and 100 per class (two seeds
# each) and 0.013 at 250, nothing at 500, for 1.4-1.8 times the training time (README, "Small data, images").
SMALL_SET_PER_CLASS = 300
# Light augmentation: a random resized crop keeping 85-100% of the area at an aspect within 10% of the original, and a
# horizontal flip. torchvision's defaults (8-100%, 3/4-4/3) are for 224 px ImageNet photos: a 28 px garment cut to 8% is
# no longer a garment. Measured on 6,000 Fashion-MNIST images, 3 epochs at 64 px (3,000 test images): no augmentation
# 0.906, flip only 0.892, this crop and flip 0.881, a 60-100% crop and flip 0.878 (bench/NOTES.md).
CROP_SCALE = (0.85, 1.0)
CROP_RATIO = (0.9, 1 / 0.9)
IMAGE_EMBED_BATCH = 32  # images decoded and embedded at a time for label quality: 32 x 3 x 224 x 224 floats is 19 MB


# --- decoding ------------------------------------------------------------------------------------


def decode(data: bytes, name: str = "image", min_side: int | None = None) -> Any:
    """An image's bytes as an RGB PIL image: :func:`bmcore.images.decode_image` (pixel limit, EXIF rotation, one-line
    refusals; with ``min_side`` a large image reduced on load), then RGB, as the models here take three channels."""
    img = decode_image(bytes(data), name, min_side)
    return img if img.mode == "RGB" else img.convert("RGB")


# --- image size ----------------------------------------------------------------------------------


def fixed_image_size(model_config: Any) -> int | None:
    """The one input side a model takes, for patch models whose position embeddings fix it (ViT, DeiT, BEiT, Swin);
    None for CNNs (ResNet, ConvNeXt, EfficientNet), which take any size."""
    size = getattr(model_config, "image_size", None)
    if size is None or getattr(model_config, "patch_size", None) is None or is_cnn_config(model_config):
        return None
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _size_keys(size: Any) -> dict[str, int]:
    """An image processor's ``size``/``crop_size`` (a dict, or transformers' ``SizeDict``) as a plain dict of its set keys."""
    if isinstance(size, int):
        return {"height": size, "width": size}
    get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    return {k: int(get(k)) for k in ("height", "width", "shortest_edge") if get(k)}


def processor_size(processor: Any) -> int | None:
    """The square side an image processor resizes (or crops) to, if it says one."""
    for attr in ("crop_size", "size"):
        size = _size_keys(getattr(processor, attr, None))
        if getattr(processor, "do_center_crop", True) is False and attr == "crop_size":
            continue
        for key in ("height", "shortest_edge"):
            if size.get(key):
                return size[key]
    return None


def typical_side(images: Sequence[bytes], sample: int = 200) -> int:
    """The median shorter side of (up to ``sample`` of) the images."""
    from PIL import Image

    sides = []
    for data in list(images)[:sample]:
        try:
            sides.append(min(Image.open(io.BytesIO(bytes(data))).size))
        except Exception:  # noqa: BLE001 - a bad file is refused when it is decoded; here it only does not count
            continue
    return int(np.median(sides)) if sides else DEFAULT_IMAGE_SIZE


def choose_image_size(requested: int | None, model_config: Any, processor: Any, images: Sequence[bytes],
                      per_class: float | None = None) -> int:
    """The run's image side. ViT-like models take only their own size (a different one is refused in one line).
    For CNNs, auto is twice the data's typical side rounded up to a multiple of 32, between 32 and the model's own
    size: Fashion-MNIST (28 px) trains at 64, where its last stage still sees a 2x2 map, not 1x1. With fewer than
    SMALL_SET_PER_CLASS training images per class (``per_class``), three times: 96 px, where a small set gains more from
    detail than the time costs. Photos are larger than the model's own size either way, so they train at it. A ResNet-18-sized
    CNN (random init, batch 32, 2-core AVX512-BF16 CPU) trained at 159/175 samples/s (fp32/bf16) at 64 px, against
    342/362 at 32, 75/119 at 96 and 45/72 at 128: one Fashion-MNIST epoch (60,000 images) in about 6 minutes at 64."""
    fixed = fixed_image_size(model_config)
    if fixed is not None:
        if requested is not None and requested != fixed:
            raise BmcoreError(f"this model takes {fixed} x {fixed} pixel images (its position embeddings fix the size); "
                              f"set image_size to {fixed} or leave it empty")
        return fixed
    if requested is not None:
        return int(requested)
    native = processor_size(processor) or DEFAULT_IMAGE_SIZE
    factor = 3 if per_class is not None and per_class < SMALL_SET_PER_CLASS else 2
    auto = SIZE_STEP * math.ceil(factor * typical_side(images) / SIZE_STEP)
    return int(max(MIN_IMAGE_SIZE, min(auto, native)))


def processor_for_size(processor: Any, size: int) -> Any:
    """A copy of ``processor`` that resizes every image to ``size`` x ``size`` (what is saved with the model)."""
    import copy

    p = copy.deepcopy(processor)
    current = _size_keys(getattr(p, "size", None))
    if "shortest_edge" in current and "height" not in current:
        # ConvNeXt-style: resize the short side then centre-crop to a square of the same side (crop_pct only
        # applies below 384 px; 1.0 keeps the whole image, as training's evaluation transform does).
        p.size = {"shortest_edge": size}
        if hasattr(p, "crop_pct"):
            p.crop_pct = 1.0
    else:
        p.size = {"height": size, "width": size}
    if _size_keys(getattr(p, "crop_size", None)):
        p.crop_size = {"height": size, "width": size}
    return p


# --- augmentation and model inputs ---------------------------------------------------------------


def random_resized_crop(img: Any, size: int, rng: np.random.Generator, scale: tuple[float, float] = CROP_SCALE,
                        ratio: tuple[float, float] = CROP_RATIO) -> Any:
    """A random crop of ``scale`` of the area and ``ratio`` aspect, resized to ``size`` x ``size`` (torchvision's
    RandomResizedCrop, in PIL; falls back to the whole image when no crop fits in 10 tries)."""
    from PIL import Image

    w, h = img.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return img.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    return img.resize((size, size), Image.BILINEAR)


def augment(img: Any, size: int, rng: np.random.Generator, flip: bool = True) -> Any:
    """The training augmentation: a random resized crop to ``size``, and a horizontal flip half the time."""
    from PIL import ImageOps

    img = random_resized_crop(img, size, rng)
    return ImageOps.mirror(img) if flip and rng.random() < 0.5 else img


def pixel_values(processor: Any, images: Sequence[Any], *, resized: bool = False) -> Any:
    """``pixel_values`` [n, 3, side, side] of RGB PIL images through ``processor`` (its rescale and normalisation;
    its resize too unless the images are ``resized`` already)."""
    kwargs: dict[str, Any] = {"return_tensors": "pt"}
    if resized:
        kwargs["do_resize"] = False
        if hasattr(processor, "do_center_crop"):
            kwargs["do_center_crop"] = False
    return processor(list(images), **kwargs)["pixel_values"]


# --- features for label quality (bmcore.quality.images) ---------------------------------------


def embed_images(images: Sequence[bytes], ref: str = DEFAULT_IMAGE_MODEL, *, size: int | None = None,
                 batch_size: int = IMAGE_EMBED_BATCH, precision: str = "auto", names: Sequence[str] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """L2-normalised pooled features of a frozen image model, [n, hidden], in input order (``images``: file bytes;
    ``names`` name them in a refusal, default "image N").

    ``size`` is the side images are resized to (default: the side a run on these images would train at with a few
    hundred images per class or more: twice their typical side, up to the model's own).
    """
    import torch

    mref = resolve_model(ref)
    model = load_image_classifier(mref).eval()
    processor = load_image_processor(mref)
    side = size or choose_image_size(None, load_config(mref), processor, images)
    processor = processor_for_size(processor, side)
    device = detect_device()
    kind, weights = inference_placement(select_precision(precision, device)[0], device)
    if weights != "fp32":
        model.to(dtype=autocast_dtype(weights))
    model.to(torch.device(kind))
    dtype = next(model.parameters()).dtype
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = [decode(b, names[start + i] if names is not None else f"image {start + i + 1}")
                     for i, b in enumerate(images[start:start + batch_size])]
            x = pixel_values(processor, batch).to(kind, dtype=dtype).contiguous(memory_format=torch.channels_last)
            pooled = model.base_model(pixel_values=x).pooler_output.flatten(1).float()
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


# --- the modality --------------------------------------------------------------------------------


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

    def search_space(self, settings: dict[str, Any], dataset: Any, models: list[str]) -> list[Any]:
        """The learning rate (a tenth to three times the default, log scale), epochs, augmentation, and the image side
        (two, three or four times the images' typical side, up to 224 px) unless a candidate model fixes its own."""
        lr = float(settings.get("learning_rate") or 1e-3)
        space = [SearchParam.log("learning_rate", lr / 10, lr * 3), SearchParam.ints("num_train_epochs", 2, 10),
                 SearchParam.choice("augment", (True, False))]
        if not any(fixed_image_size(load_config(resolve_model(m))) is not None for m in models):
            side = typical_side(dataset.splits["train"][IMAGE_COLUMNS.text[0]])
            sides = sorted({max(MIN_IMAGE_SIZE, min(DEFAULT_IMAGE_SIZE, SIZE_STEP * math.ceil(f * side / SIZE_STEP)))
                            for f in (2, 3, 4)})
            if len(sides) > 1:
                space.append(SearchParam.choice("image_size", tuple(sides)))
        return space
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
    pictures = True
    processor_noun = "image processor"
    builtin_title = "EfficientNet-Lite0"
    builtin_caption = "EfficientNet-Lite0 (4.7M parameters), pretrained on ImageNet, bundled: works offline."
    train_intro = (
        "For images, fine-tuning starts from a **pretrained vision model**: a CNN (ResNet, ConvNeXt, EfficientNet) or a "
        "Vision Transformer (ViT, which reads an image as a grid of patches), already trained on millions of photos "
        "(ImageNet), so it knows edges, textures and shapes. A new **classification head** for your classes goes on top, "
        "and both train on your train split; the validation split keeps the best checkpoint. The default, "
        "`builtin:efficientnet-lite0` (4.7M parameters), is bundled and works offline.")
    hub_example = "google/vit-base-patch16-224-in21k"
    hub_help = "e.g. google/vit-base-patch16-224-in21k, microsoft/resnet-50 or facebook/convnext-tiny-224"

    def evaluation_facts(self, processor: Any) -> dict[str, Any]:
        return {"image_size": processor_size(processor)}


MODALITY = Image()
