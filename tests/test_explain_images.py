"""Image explanations (bmcore/explain_images.py): Grad-CAM for CNNs finds the region, and the overlay shows it.

The built-in EfficientNet-Lite0 is used as shipped (ImageNet weights, no training): a real Fashion-MNIST garment pasted
onto a blank canvas is where its Grad-CAM map peaks and weighs, and on a real photo (scikit-learn's china.jpg) the overlay
turns the map's region red while the rest of the photo stays readable. The tiny random ResNet checks the layer choice
and the method choice, which no training changes.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_image_task import FASHION, read_idx

from bmcore import explain_images as xi
from bmcore.errors import BmcoreError
from bmcore.explain import eager_model
from bmcore.inference import load_for_inference
from bmcore.report import playground as view

CANVAS, GARMENT = 224, 84  # the built-in model's input side; a garment three times Fashion-MNIST's 28 px


@pytest.fixture(scope="module")
def lite0():
    return load_for_inference("builtin:efficientnet-lite0", precision="fp32")


def test_gradcam_on_a_tiny_resnet(tiny_resnet):
    import torch

    clf = load_for_inference(str(tiny_resnet), precision="fp32")
    assert xi.image_methods(clf.model.config) == ["gradcam", "integrated_gradients"]  # Grad-CAM first: the default
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    ex = xi.explain_image(clf, img)
    assert ex.method == "gradcam" and ex.title == "Grad-CAM" and ex.heatmap.shape == (32, 32)  # the input's size
    assert ex.layer == "resnet.encoder.stages.1" and ex.grid == (4, 4)  # the last stage, before pooling
    assert 0 <= ex.heatmap.min() and ex.heatmap.max() <= 1 and (ex.empty or ex.heatmap.max() == pytest.approx(1))
    assert "Grad-CAM" in view.image_explanation_note(ex) and "4 x 4 cells" in view.image_explanation_note(ex)
    # At 16 px the last stage is 2 x 2: the stage before it (4 x 4 cells) is read instead.
    assert xi.feature_map_layer(eager_model(clf), torch.zeros(1, 3, 16, 16))[::2] == ("resnet.encoder.stages.0", (4, 4))
    with pytest.raises(BmcoreError, match="rollout needs attention over image patches.*use gradcam or integrated_gradients"):
        xi.explain_image(clf, img, method="rollout")


def test_gradcam_on_a_tiny_convnext():
    # ConvNeXt's blocks work channels-last inside ([batch, h, w, channels]): Grad-CAM reads a stage's [batch, c, h, w].
    import torch
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(0)
    model = ConvNextForImageClassification(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)).eval()
    heat, layer, grid = xi.gradcam(model, torch.rand(1, 3, 64, 64), 0)
    assert heat.shape == (64, 64) and layer == "convnext.encoder.stages.1" and grid == (8, 8)
    assert xi.image_methods(model.config) == ["gradcam", "integrated_gradients"]


def test_gradcam_layer_of_the_builtin_model(lite0):
    import torch

    twin = eager_model(lite0)
    assert xi.feature_map_layer(twin, torch.zeros(1, 3, 224, 224))[::2] == ("efficientnet.encoder.top_activation", (7, 7))
    # At 64 px (Fashion-MNIST's training size) the last map is 2 x 2; the 4 x 4 map of the stage before it is read.
    assert xi.feature_map_layer(twin, torch.zeros(1, 3, 64, 64))[2] == (4, 4)


@pytest.mark.parametrize(("label", "row", "col"), [(0, 16, 124), (8, 124, 16)])  # a T-shirt top right, a bag bottom left
def test_gradcam_finds_a_garment_on_a_blank_canvas(lite0, label, row, col):
    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    images, labels = read_idx(FASHION / "t10k-images-idx3-ubyte.gz"), read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    garment = Image.fromarray(images[np.flatnonzero(labels == label)[0]]).resize((GARMENT, GARMENT))
    canvas[row:row + GARMENT, col:col + GARMENT] = np.asarray(garment)
    heat = xi.explain_image(lite0, Image.fromarray(canvas)).heatmap
    assert heat.shape == (CANVAS, CANVAS)
    peak = np.unravel_index(heat.argmax(), heat.shape)
    cell = CANVAS // 7  # one cell of the 7 x 7 map: how far Grad-CAM's coarse peak may sit from the garment
    assert row - cell <= peak[0] < row + GARMENT + cell and col - cell <= peak[1] < col + GARMENT + cell
    share = heat[row:row + GARMENT, col:col + GARMENT].sum() / heat.sum()
    assert share > 2.5 * (GARMENT / CANVAS) ** 2  # measured 0.39 to 0.51 of the mass on 14% of the area


def test_the_overlay_shows_the_region_on_a_photo(lite0):
    from sklearn.datasets import load_sample_images

    photo = Image.fromarray(load_sample_images().images[0])  # china.jpg: a temple among trees
    heat = xi.explain_image(lite0, photo).heatmap
    over = np.asarray(xi.overlay_image(photo, heat, side=CANVAS), dtype=np.float64)
    plain = np.asarray(xi.overlay_image(photo, heat, side=CANVAS, alpha=0.0), dtype=np.float64)
    hot, cold = heat > 0.7, heat < 0.2
    assert hot.mean() > 0.02 and cold.mean() > 0.2  # a region, not the whole photo

    def red(a: np.ndarray) -> np.ndarray:
        return a[..., 0] - a[..., 2]

    # Where the map is high the drawing is clearly red (measured +96 over the photo's red-minus-blue); where it is low,
    # blue-tinted, and the photo still reads (its brightness pattern kept: measured correlation 0.99).
    assert red(over)[hot].mean() - red(plain)[hot].mean() > 60
    assert red(over)[hot].mean() - red(over)[cold].mean() > 100
    lum = np.array([0.299, 0.587, 0.114])
    assert np.corrcoef((over @ lum)[cold], (plain @ lum)[cold])[0, 1] > 0.9
