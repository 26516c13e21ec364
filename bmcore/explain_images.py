"""Why an image classifier predicts what it does: a heat map over the image, and the overlay drawn from it.

:func:`explain_image` makes the map by one of three methods, named in what it returns and wherever it is drawn:

* ``gradcam`` (Grad-CAM, Selvaraju et al., 2017), the default for CNNs (ResNet, EfficientNet, ConvNeXt): the gradient
  of the class's logit, averaged over the last convolutional feature map, weighs that map's channels; the ReLU of their
  sum is a coarse map (7 x 7 for a 224 px input) of the region that argues for the class, interpolated to the input's
  size. captum's ``LayerGradCam`` on the layer :func:`feature_map_layer` finds, for any CNN.
* ``rollout``, the default for ViT-like models: attention rollout from the [CLS] token to each patch.
* ``integrated_gradients``, offered for every model: how much each pixel moved the class's probability from a black
  image (captum's ``IntegratedGradients``). It is noisy at pixel level: drawn over a photo it reads as specks.

:func:`overlay_image` draws a map in a rainbow colour map over a desaturated copy of the image, so the region shows on
a colourful photo too. Which methods fit a model is :func:`image_methods`' answer (the first is the default). The
sentence the Playground shows under a map is :func:`bmcore.report.playground.image_explanation_note`'s.
"""

from __future__ import annotations

import io
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BmcoreError
from .explain import EXPLAIN_LOCK, attention_rollout, eager_model, resolve_target
from .modalities.image import decode, fixed_image_size, pixel_values
from .vision import is_cnn_config

GRADCAM, ROLLOUT, INTEGRATED_GRADIENTS = "gradcam", "rollout", "integrated_gradients"
METHOD_TITLES = {GRADCAM: "Grad-CAM", ROLLOUT: "attention rollout", INTEGRATED_GRADIENTS: "Integrated Gradients"}
IMAGE_IG_STEPS = 32  # Integrated Gradients steps for an image (one batch of 32 forward/backward passes of one image)
# Grad-CAM reads the last feature map at least this many cells a side: a CNN's last map at 224 px is 7 x 7, but at
# 64 px (Fashion-MNIST's training size) it is 2 x 2, four blurred quarters; there the stage before it (4 x 4) is read.
GRADCAM_MIN_SIDE = 4
IG_CLIP_PERCENTILE = 99  # Integrated Gradients' map is clipped here: a few extreme pixels no longer wash out the rest

# The layer Grad-CAM reads, per model (the cached fp32 twin) and input shape: found once, by a forward pass with hooks.
_LAYERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], tuple[str, Any, tuple[int, int]]]] = weakref.WeakKeyDictionary()


def image_methods(model_config: Any) -> list[str]:
    """The explanation methods that fit a model (from its config), its default first: Grad-CAM for CNNs, attention
    rollout for ViT-like models (patches), and Integrated Gradients for every model."""
    if is_cnn_config(model_config):
        return [GRADCAM, INTEGRATED_GRADIENTS]
    if fixed_image_size(model_config) is not None:
        return [ROLLOUT, INTEGRATED_GRADIENTS]
    return [INTEGRATED_GRADIENTS]


def choose_method(model_config: Any, method: str | None = None) -> str:
    """``method``, or the model's default when it is None; a method that is unknown or does not fit the model is
    refused in one line that names the ones that do."""
    fits = image_methods(model_config)
    if method is None:
        return fits[0]
    if method not in METHOD_TITLES:
        raise BmcoreError(f"unknown explanation method {method!r}; choose one of {', '.join(METHOD_TITLES)}")
    if method not in fits:
        need = ("a convolutional feature map (a CNN such as ResNet, EfficientNet or ConvNeXt)" if method == GRADCAM
                else "attention over image patches (a ViT-like model)")
        kind = getattr(model_config, "model_type", "") or "this"
        raise BmcoreError(f"{method} needs {need}, and this is a {kind} model; use {' or '.join(fits)}")
    return method


@dataclass
class ImageExplanation:
    """Why an image classifier predicts what it does: a heat map over the image as the model saw it
    (``heatmap`` [side, side], in [0, 1], 1 the most important pixels), the scores and the target class."""

    label_names: list[str]
    probs: np.ndarray
    target: str
    target_id: int
    method: str  # gradcam, rollout or integrated_gradients (METHOD_TITLES names them)
    heatmap: np.ndarray
    seconds: float = 0.0
    layer: str = ""  # Grad-CAM: the module whose feature map it read
    grid: tuple[int, int] | None = None  # Grad-CAM: that map's cells (height, width)

    @property
    def title(self) -> str:
        """The method's name as people write it: Grad-CAM, attention rollout, Integrated Gradients."""
        return METHOD_TITLES[self.method]

    @property
    def empty(self) -> bool:
        """True when the map is 0 everywhere (Grad-CAM finds no region that raises the class's score)."""
        return not bool(np.asarray(self.heatmap).max() > 0)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.min()
    return x / x.max() if x.max() > 0 else x


# --- the three methods ---------------------------------------------------------------------------


def feature_map_layer(model: Any, x: Any) -> tuple[str, Any, tuple[int, int]]:
    """The layer Grad-CAM reads, found by one forward pass of ``x`` with hooks: the last module whose output is a 4-D
    feature map [batch, channels, h, w] at least :data:`GRADCAM_MIN_SIDE` cells a side (else the last of the largest
    side). Padding layers (a shifted grid), tensors whose last two sides are not the input's shape (channels-last)
    and modules called more than once are passed over. Returns (the module's
    name, the module, (h, w))."""
    import torch

    seen: list[tuple[str, Any, tuple[int, int]]] = []
    calls: dict[str, int] = {}

    def hook(name: str) -> Any:
        def record(module: Any, _inputs: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            # A map's grid has the input's shape; a channels-last tensor [batch, h, w, channels] (inside a ConvNeXt
            # block) does not, and is passed over.
            if (torch.is_tensor(out) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1
                    and out.shape[-2] * x.shape[-1] == out.shape[-1] * x.shape[-2]):
                seen.append((name, module, (int(out.shape[-2]), int(out.shape[-1]))))
        return record

    padding = (torch.nn.modules.padding._ConstantPadNd, torch.nn.modules.padding._ReflectionPadNd,
               torch.nn.modules.padding._ReplicationPadNd)
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n and not isinstance(m, padding)]
    try:
        with torch.no_grad():
            model(pixel_values=x)
    finally:
        for h in handles:
            h.remove()
    maps = [s for s in seen if calls[s[0]] == 1]
    if not maps:
        raise BmcoreError(f"{type(model).__name__} has no convolutional feature map for Grad-CAM; use integrated_gradients")
    wide = [s for s in maps if min(s[2]) >= GRADCAM_MIN_SIDE]
    if wide:
        return wide[-1]
    top = max(min(s[2]) for s in maps)
    return [s for s in maps if min(s[2]) == top][-1]


def gradcam(model: Any, x: Any, target_id: int) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Grad-CAM of the target class's logit for one image ``x`` [1, 3, H, W]: captum's ``LayerGradCam`` on
    :func:`feature_map_layer`, ReLU'd, interpolated (bilinear) to H x W. Returns (the map [H, W], not normalised,
    the layer's name, its grid). The logit, as in the paper: a probability near 1 has almost no gradient left."""
    from captum.attr import LayerAttribution, LayerGradCam

    found = _LAYERS.setdefault(model, {})
    if tuple(x.shape) not in found:
        found[tuple(x.shape)] = feature_map_layer(model, x)
    name, layer, grid = found[tuple(x.shape)]
    cam = LayerGradCam(lambda px: model(pixel_values=px).logits, layer)
    attr = cam.attribute(x, target=target_id, relu_attributions=True)
    up = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return up[0].sum(dim=0).detach().float().cpu().numpy(), name, grid


def image_integrated_gradients(model: Any, task: Any, x: Any, target_id: int, n_steps: int = IMAGE_IG_STEPS) -> np.ndarray:
    """Integrated Gradients of the target's probability w.r.t. the pixels of ``x`` [1, 3, H, W], from a black
    (all-zero, after normalisation) image, summed over channels as absolute values: [H, W]."""
    import torch
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(lambda px: task.torch_scores(model(pixel_values=px).logits))
    attr = ig.attribute(x, baselines=torch.zeros_like(x), target=target_id, n_steps=n_steps, internal_batch_size=n_steps)
    heat = attr.detach().abs().sum(dim=1)[0].cpu().numpy()
    return np.minimum(heat, np.percentile(heat, IG_CLIP_PERCENTILE))


def rollout_map(attentions: Any, side: int) -> np.ndarray:
    """Attention rollout from [CLS] to each patch (one image's per-layer attentions), spread over each patch's pixels:
    [side, side]."""
    import torch

    if not attentions:
        raise BmcoreError("this model returns no attention weights; attention maps need eager attention")
    att = torch.stack([a[0] for a in attentions]).float().cpu().numpy()
    row = attention_rollout(att)[0]
    grid = int(round(np.sqrt(len(row) - 1)))
    cells = row[len(row) - grid * grid:].reshape(grid, grid)  # patches after [CLS] (and any distillation token)
    idx = np.arange(side) * grid // side  # each pixel's patch
    return cells[idx][:, idx]


def explain_image(classifier: Any, image: Any, target: str | int | None = None, *, method: str | None = None,
                  n_steps: int = IMAGE_IG_STEPS) -> ImageExplanation:
    """Explain one prediction of an image classifier (:class:`bmcore.inference.ImageClassifier`) for a PIL image (or
    image bytes) by ``method`` (:func:`choose_method`: None is the model's default), for ``target`` (a class name or
    id; None: the predicted class). Runs on the model's fp32 twin (:func:`bmcore.explain.eager_model`, which shares
    fp32 weights), one explanation at a time (captum hooks its layers); the map is scaled to [0, 1]."""
    import torch

    t0 = time.perf_counter()
    method = choose_method(classifier.model.config, method)
    img = decode(image) if isinstance(image, (bytes, bytearray, memoryview)) else image.convert("RGB")
    task, names = classifier.task, list(classifier.label_names)
    model = eager_model(classifier)
    x = pixel_values(classifier.processor, [img]).to(device=model.device, dtype=torch.float32)
    layer, grid = "", None
    with EXPLAIN_LOCK, torch.autocast(device_type=x.device.type, enabled=False):
        with torch.no_grad():
            out = model(pixel_values=x, output_attentions=method == ROLLOUT)
        probs = task.torch_scores(out.logits)[0].cpu().numpy()
        target_id = resolve_target(names, target, task.top_class(probs))
        if method == ROLLOUT:
            heat = rollout_map(out.attentions, x.shape[-1])
        elif method == GRADCAM:
            heat, layer, grid = gradcam(model, x, target_id)
        else:
            heat = image_integrated_gradients(model, task, x, target_id, n_steps)
    return ImageExplanation(names, probs, names[target_id], target_id, method, _unit(heat), time.perf_counter() - t0,
                            layer, grid)


# --- drawing ---------------------------------------------------------------------------------------

# Turbo (the rainbow colour map matplotlib ships) from 0 to 0.9, interpolated linearly: dark blue through cyan, green
# and yellow to red, low -> high importance; its last, darkest reds are left out so the hottest region stays bright.
HEAT_COLOURS = np.array([[48, 18, 59], [69, 89, 203], [62, 155, 254], [25, 213, 205], [70, 248, 132], [164, 252, 60],
                         [225, 221, 55], [254, 164, 49], [240, 91, 18], [195, 37, 3]], dtype=np.float64)
OVERLAY_PX = 320  # the overlay's side: a 28 px garment or a 32 px model input is drawn large enough to read
OVERLAY_ALPHA = 0.6  # share of the heat map's colour in the blend at its hottest pixels; the rest is the image
OVERLAY_FLOOR = 0.5  # share of that at the coldest pixels: a blue tint, so the cold area reads as the map's too
OVERLAY_GREY = 0.6  # how far the image under the colours is desaturated: a colourful photo would hide the map


def heat_colours(heatmap: np.ndarray) -> np.ndarray:
    """RGB colours [h, w, 3] (uint8) of a heat map in [0, 1], on :data:`HEAT_COLOURS`."""
    v = np.clip(np.asarray(heatmap, dtype=np.float64), 0, 1) * (len(HEAT_COLOURS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(HEAT_COLOURS) - 2)
    frac = (v - lo)[..., None]
    return np.round(HEAT_COLOURS[lo] * (1 - frac) + HEAT_COLOURS[lo + 1] * frac).astype(np.uint8)


def overlay_image(image: Any, heatmap: np.ndarray, *, side: int = OVERLAY_PX, alpha: float = OVERLAY_ALPHA) -> Any:
    """The heat map blended over the image as the model saw it (square, resized to the heat map's grid), drawn at
    ``side`` pixels: an RGB PIL image. The image is desaturated (:data:`OVERLAY_GREY`, in proportion to ``alpha``), and
    each pixel's colour weighs from ``alpha * OVERLAY_FLOOR`` (coldest) to ``alpha`` (hottest). ``alpha`` 0 gives the
    image as the model saw it. Pixels stay sharp (nearest neighbour) so a patch map shows its patches."""
    from PIL import Image

    img = decode(image) if isinstance(image, (bytes, bytearray, memoryview)) else image.convert("RGB")
    h, w = np.asarray(heatmap).shape
    base = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float64)
    grey = OVERLAY_GREY * min(1.0, alpha / OVERLAY_ALPHA)
    base = base * (1 - grey) + (base @ np.array([0.299, 0.587, 0.114]))[..., None] * grey
    heat = np.clip(np.asarray(heatmap, dtype=np.float64), 0, 1)
    weight = alpha * (OVERLAY_FLOOR + (1 - OVERLAY_FLOOR) * heat)[..., None]
    blend = np.round(base * (1 - weight) + heat_colours(heat) * weight).clip(0, 255).astype(np.uint8)
    return Image.fromarray(blend, mode="RGB").resize((side, side), Image.Resampling.NEAREST)


def png_bytes(image: Any) -> bytes:
    """A PIL image encoded as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def overlay_png(image: Any, heatmap: np.ndarray, **kwargs: Any) -> bytes:
    """:func:`overlay_image` encoded as PNG bytes (what the Playground draws and ``predict --explain`` writes)."""
    return png_bytes(overlay_image(image, heatmap, **kwargs))
