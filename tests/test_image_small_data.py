"""Small data, images (issue 27): batch-norm statistics that follow the new images, and the built-in model's first run
on 100 Fashion-MNIST images per class against the pixel baseline (scripts/small_data_images.py measures the rest)."""

from __future__ import annotations

import json

import pytest
import torch
from test_image_task import CLASSES, FASHION, cli, fashion_frames

from bmcore import data as bdata
from bmcore import runs
from bmcore.config import TrainConfig
from bmcore.models import resolve_model
from bmcore.tasks import get_task
from bmcore.tasks.image_classification import (
    BN_MOMENTUM,
    ImageSplit,
    collate,
    follow_new_data,
    recompute_batch_norm,
)
from bmcore.vision import load_image_classifier, load_image_processor

BatchNorm = torch.nn.modules.batchnorm._BatchNorm


def momenta(model: torch.nn.Module) -> set[float | None]:
    return {m.momentum for m in model.modules() if isinstance(m, BatchNorm)}


def test_the_builtin_model_fine_tunes_with_batch_norm_statistics_that_follow_the_new_images():
    """The built-in EfficientNet-Lite0 is converted with TensorFlow's decay 0.99 (torch momentum 0.01, kept: the saved
    folder is the faithful conversion); the image task trains it at torch's 0.1, so a short fine-tune evaluates with
    statistics of the new images, not ImageNet's."""
    ref = resolve_model("builtin:efficientnet-lite0")
    assert 0.01 in momenta(load_image_classifier(ref))
    model = get_task("single_label_classification", "image").load_model(
        ref, ["a", "b"], TrainConfig(dataset="x"), {"attn_implementation": "eager"})
    assert momenta(model) == {BN_MOMENTUM}


def test_any_cnn_with_batch_norm_follows_the_new_images(tiny_resnet, tiny_vit):
    """The same for any CNN (a ResNet whose layers were made slow); faster layers stay as they are, and a model
    without batch norm (ViT) is left alone."""
    resnet = load_image_classifier(str(tiny_resnet))
    layers = [m for m in resnet.modules() if isinstance(m, BatchNorm)]
    layers[0].momentum, layers[1].momentum, layers[2].momentum = 0.01, 0.5, None  # None: a cumulative average
    assert follow_new_data(resnet) == 1
    assert [m.momentum for m in layers[:3]] == [BN_MOMENTUM, 0.5, None]
    assert follow_new_data(load_image_classifier(str(tiny_vit))) == 0
    # and the statistics do move: 30 train-mode batches of images unlike ImageNet's put the running mean near theirs
    layer = torch.nn.BatchNorm2d(3, momentum=0.01)
    follow_new_data(layer)
    layer.train()
    for _ in range(30):
        layer(torch.full((4, 3, 8, 8), 5.0))
    assert layer.running_mean.min() > 4.7


def test_batch_norm_statistics_are_recomputed_on_the_training_images(tiny_resnet, tiny_vit):
    """After training, each batch-norm layer's running mean is the plain average over the (unaugmented) training images
    through the final weights: the first layer's equals its input's mean over all 16 images exactly. The model's mode
    and momenta are as they were; a model without batch norm is left alone."""
    frames = fashion_frames({"train": 4, "validation": 0, "test": 0}, CLASSES)["train"]  # 16 real images
    model, processor = load_image_classifier(str(tiny_resnet)), load_image_processor(str(tiny_resnet))
    split = ImageSplit(frames["image"].tolist(), [0] * len(frames), processor, 32, train=True, seed=1)
    layers = [m for m in model.modules() if isinstance(m, BatchNorm)]
    layers[0].momentum = 0.01
    model.train()
    assert recompute_batch_norm(model, split, batch_size=8) == 16
    assert model.training and layers[0].momentum == 0.01
    seen: list[torch.Tensor] = []
    layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.eval()
    with torch.no_grad():
        model(pixel_values=collate([ImageSplit(split.images, split.targets, processor, 32)[i] for i in range(16)])["pixel_values"])
    assert torch.allclose(layers[0].running_mean, seen[0].mean(dim=(0, 2, 3)), atol=1e-5)
    assert int(layers[0].num_batches_tracked) == 2
    assert recompute_batch_norm(load_image_classifier(str(tiny_vit)), split) == 0


def test_a_small_image_set_trains_for_at_least_min_steps_with_the_default_epochs(monkeypatch):
    """Images follow bmcore.schedule's small-data rule with their own minimum (100 steps) and batches that never grow:
    500 images make 16 steps an epoch, 48 in the default three, so the run trains 7 epochs (112 steps); 1,000 images
    (32 an epoch) 4; from 1,067 images three epochs are enough. An epoch or step count the user set stands; under DDP
    an epoch counts all processes' batches; a deployment's epoch cap bounds the extra epochs. The Train page, the CLI,
    the estimate and the job read the same rule."""
    from bmcore import report
    from bmcore.estimate import total_steps
    from bmcore.schedule import planned_steps, resolve_schedule

    task = get_task("single_label_classification", "image")
    assert (task.min_train_steps, task.grows_batches) == (100, False)
    config = TrainConfig(dataset="x")  # batch_growth 4 by default: images' batches never grow, so it counts for nothing

    def schedule(n: int, cfg: TrainConfig = config, world_size: int = 1):
        return resolve_schedule(cfg, n, task.min_train_steps, world_size, grows=task.grows_batches, noun=task.example_noun)

    assert (schedule(500).epochs, planned_steps(schedule(500), config)) == (7, 112)
    assert schedule(500).reason == ("small dataset: 500 training images, so 7 epochs in batches of 32 make 112 optimiser "
                                    "steps (the default 3 epochs would make 48; the aim is at least 100)")
    assert schedule(1000).epochs == 4 and schedule(1000).apply(config).num_train_epochs == 4
    assert not schedule(1067).small_data and not schedule(60_000).small_data
    assert not schedule(500, TrainConfig(dataset="x", num_train_epochs=3)).small_data
    assert not schedule(500, TrainConfig(dataset="x", max_steps=20)).small_data
    assert schedule(1000, world_size=2).epochs == 7  # 16 steps an epoch over two processes
    assert not schedule(3200, world_size=2).small_data  # 50 steps an epoch
    assert total_steps(schedule(500).apply(config), 500) == 112  # the estimate counts the same steps
    note = report.schedule_note(config, 500, task.min_train_steps, grows=False, noun=task.example_noun)
    assert note.startswith("Small dataset: 500 training images could make as few as 48 optimiser steps in the default "
                           "3 epochs, too few") and "trains 7 epochs in batches of 32 instead (112 steps)" in note
    few = report.schedule_note(TrainConfig(dataset="x", num_train_epochs=3), 500, 100, grows=False, noun="images")
    assert few.startswith("Few optimiser steps: this run makes 48 (500 training images)") and "batch growth" not in few
    monkeypatch.setenv("BMCORE_MAX_EPOCHS", "4")
    assert schedule(500).epochs == 4  # 64 steps: the cap wins


SMALL_PER_CLASS = {"train": 100, "validation": 13, "test": 100}
# The first 100 images of each class of the official test split: a fixed stratified sample of 1,000 (one standard error
# at 0.8 is 0.013). Measured 0.868 against the pixel baseline's 0.796 (2026-12-07; on 2,000 images 0.845 and 0.8015); before issue 27 the same defaults
# scored about 0.76 on 100 images per class (README "Small data, images").
SMALL_ACC_BAR = 0.80


@pytest.mark.slow
def test_builtin_model_on_100_images_per_class_beats_the_pixel_baseline(tmp_path):
    """Issue 27's bar, every default: ``python -m bmcore train --data DATASET`` (the built-in EfficientNet-Lite0,
    learning rate 1e-3, 96 px (a small set), augmentation, at least 100 steps) on 100 Fashion-MNIST training images per class
    reaches 0.80 test accuracy and beats logistic regression on pixels trained on the same images."""
    from bmcore.images import FASHION_MNIST_CLASSES

    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    frames = fashion_frames(SMALL_PER_CLASS, dict(enumerate(FASHION_MNIST_CLASSES)))
    bdata.save_prepared(bdata.PreparedDataset(name="fashion-100", source="fashion-mnist idx files",
                                              columns=bdata.Columns(["image"], "label"),
                                              label_names=sorted(FASHION_MNIST_CLASSES), splits=frames, modality="image"))
    run_dir = tmp_path / "lite0"
    out = cli("train", "--data", "fashion-100", "--out", str(run_dir), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((run_dir / runs.CONFIG_FILE).read_text())
    assert config["model_name_or_path"] == "builtin:efficientnet-lite0" and config["learning_rate"] == 1e-3
    ev = json.loads((run_dir / runs.EVAL_FILE).read_text())
    accuracy, baseline = ev["test"]["accuracy"], ev["baseline"]["accuracy"]
    assert sum(map(sum, ev["test"]["confusion_matrix"])) == 1000
    assert accuracy >= SMALL_ACC_BAR and accuracy > baseline, (accuracy, baseline)
