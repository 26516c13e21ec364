"""Image models: the built-in EfficientNet-Lite0 conversion (parity with the original implementation), loading
image classifiers with a new head, offline Hub ids, and refusing pickle weights."""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bmcore.builtin_images import builtin_image_model_dir, convert_efficientnet_lite0, lite0_weights_file
from bmcore.errors import BmcoreError
from bmcore.modalities import modality_of_ref
from bmcore.models import resolve_model
from bmcore.vision import load_image_classifier, load_image_processor

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
HUB_VIT = "google/vit-base-patch16-224-in21k"


@pytest.fixture(scope="session")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_efficientnet_lite0(tmp_path_factory.mktemp("lite0"))


def fashion_images(n: int) -> list[Image.Image]:
    """The first ``n`` Fashion-MNIST test images (28x28 grayscale), as RGB images upsampled to 224x224."""
    if not FASHION.is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    with gzip.open(FASHION, "rb") as fh:
        data = np.frombuffer(fh.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    return [Image.fromarray(a, "L").convert("RGB").resize((224, 224), Image.BICUBIC) for a in data[:n]]


def landscape() -> Image.Image:
    """A natural-looking picture: a sky gradient, a sun, hills, textured grass and a tree."""
    rng = np.random.default_rng(7)
    h = w = 256
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0], img[..., 1], img[..., 2] = 90 + 0.4 * y, 150 + 0.3 * y, 235 - 0.1 * y  # sky
    sun = (x - 190) ** 2 + (y - 60) ** 2 < 22 ** 2
    img[sun] = (255, 230, 120)
    hills = y > 150 + 25 * np.sin(x / 37.0) + 10 * np.sin(x / 11.0)
    grass = np.stack([50 + 30 * rng.random((h, w)), 120 + 60 * rng.random((h, w)), 40 + 20 * rng.random((h, w))], -1)
    img[hills] = grass[hills]
    trunk = (abs(x - 70) < 6) & (y > 120) & (y < 190)
    img[trunk] = (100, 70, 40)
    crown = (x - 70) ** 2 + (y - 110) ** 2 < 35 ** 2
    img[crown] = np.stack([20 + 20 * rng.random((h, w)), 90 + 50 * rng.random((h, w)), 30 + 10 * rng.random((h, w))],
                          -1)[crown]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def test_conversion_keeps_the_original_logits(lite0):
    from efficientnet_lite_pytorch import EfficientNet  # the original architecture (requirements-test.txt)

    original = EfficientNet.from_name("efficientnet-lite0")
    original.load_state_dict(torch.load(lite0_weights_file(), map_location="cpu", weights_only=True))
    original.eval()
    converted = load_image_classifier(str(lite0)).eval()
    processor = load_image_processor(str(lite0))
    pixels = processor([*fashion_images(4), landscape()], return_tensors="pt")["pixel_values"]
    assert pixels.shape == (5, 3, 224, 224) and pixels.dtype == torch.float32
    with torch.no_grad():
        ours, theirs = converted(pixel_values=pixels).logits, original(pixels)
    assert ours.shape == theirs.shape == (5, 1000)
    assert (ours - theirs).abs().max().item() < 1e-4
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))
    assert theirs.std().item() > 1.0  # real, varied ImageNet logits, not a degenerate constant


def test_the_builtin_recognises_real_photos(lite0):
    """sklearn's two sample photos: a flower (ImageNet 985 'daisy') and a Chinese temple (palace, bell cote,
    monastery, church, castle). This also checks the normalisation the processor saves: with torchvision's
    ImageNet mean/std instead of the weights' own (x - 127) / 128 the flower is not a daisy."""
    from sklearn.datasets import load_sample_images

    photos = {Path(name).name: Image.fromarray(a) for name, a in zip(load_sample_images().filenames,
                                                                       load_sample_images().images, strict=True)}
    processor, model = load_image_processor(str(lite0)), load_image_classifier(str(lite0)).eval()
    with torch.no_grad():
        probs = model(**processor([photos["flower.jpg"], photos["china.jpg"]], return_tensors="pt")).logits.softmax(-1)
    assert probs[0].argmax().item() == 985
    assert set(probs[1].topk(3).indices.tolist()) & {698, 442, 663, 497, 483}


def test_converted_folder_is_a_standard_image_classifier(lite0):
    from transformers import AutoModelForImageClassification, pipeline

    assert sorted(p.name for p in lite0.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    config = json.loads((lite0 / "config.json").read_text())
    assert config["model_type"] == "efficientnet" and len(config["id2label"]) == 1000 and "auto_map" not in config
    model = AutoModelForImageClassification.from_pretrained(lite0, use_safetensors=True)
    assert model.classifier.out_features == 1000
    clf = pipeline("image-classification", model=str(lite0))
    out = clf(landscape(), top_k=3)
    assert len(out) == 3 and all(o["label"].startswith("LABEL_") for o in out)
    assert out[0]["score"] >= out[1]["score"] >= out[2]["score"] > 0


def test_builtin_conversion_is_atomic_when_two_ask_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("BMCORE_CACHE", str(tmp_path / "cache"))
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(builtin_image_model_dir, ["efficientnet-lite0"] * 2)
    assert a == b
    models = tmp_path / "cache" / "models"
    assert [p.name for p in models.iterdir()] == [a.name]  # no half-written temporary folder left behind
    ref = resolve_model("builtin:efficientnet-lite0")
    assert ref.kind == "builtin" and ref.path == a
    assert modality_of_ref("builtin:efficientnet-lite0").name == "image"


def test_the_converter_reads_the_weights_without_a_full_unpickler(monkeypatch, tmp_path):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    convert_efficientnet_lite0(tmp_path / "out")
    assert calls == [True]


def test_new_head_is_sized_and_named_for_the_labels(lite0):
    labels = ["T-shirt/top", "Trouser", "Pullover"]
    model = load_image_classifier(str(lite0), labels)
    assert model.classifier.out_features == 3
    assert model.config.id2label == {0: "T-shirt/top", 1: "Trouser", 2: "Pullover"}
    assert model.config.label2id == {"Trouser": 1, "T-shirt/top": 0, "Pullover": 2}
    # the pretrained body is kept: its first convolution equals the converted one
    full = load_image_classifier(str(lite0))
    assert torch.equal(model.efficientnet.embeddings.convolution.weight, full.efficientnet.embeddings.convolution.weight)


def test_grayscale_images_become_rgb_for_the_model_and_the_pipeline(lite0):
    from transformers import pipeline

    gray = fashion_images(1)[0].convert("L").resize((28, 28))
    assert load_image_processor(str(lite0))(gray, return_tensors="pt")["pixel_values"].shape == (1, 3, 224, 224)
    assert len(pipeline("image-classification", model=str(lite0))(gray, top_k=2)) == 2


def test_the_identity_se_gate_stays_frozen_in_training(lite0):
    model = load_image_classifier(str(lite0), ["a", "b"]).train()
    pixels = torch.randn(2, 3, 64, 64)
    for dtype in (torch.float32, torch.bfloat16):
        model.zero_grad()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is torch.bfloat16):
            model(pixel_values=pixels, labels=torch.tensor([0, 1])).loss.backward()
        gates = [p.grad for n, p in model.named_parameters() if ".squeeze_excite." in n]
        assert len(gates) == 64 and all(g is not None and not g.any() for g in gates)  # exactly zero: never moves
        assert model.classifier.weight.grad.abs().max() > 0  # while the rest learns


def test_the_modality_of_a_model_tells_images_from_text(lite0, tiny_model):
    assert modality_of_ref(str(lite0)).name == "image"
    assert modality_of_ref(str(tiny_model)).name == "text"
    assert modality_of_ref("builtin:minilm").name == "text"


def test_offline_hub_id_fails_at_once_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for load in (load_image_classifier, load_image_processor):
        with pytest.raises(BmcoreError) as exc:
            load(HUB_VIT)
        msg = str(exc.value)
        assert "\n" not in msg
        assert msg == (f"cannot load '{HUB_VIT}' from the Hugging Face Hub: offline (HF_HUB_OFFLINE is set); "
                       "use builtin:efficientnet-lite0 or a local model folder")


class _Canary:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_only_image_model_is_refused_without_unpickling(lite0, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(lite0 / "config.json", folder)
    shutil.copy(lite0 / "preprocessor_config.json", folder)
    marker = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Canary(marker)))
    for load in (load_image_classifier, load_image_processor, modality_of_ref):
        with pytest.raises(BmcoreError, match="only pickle weights"):
            load(str(folder))
    assert not marker.exists()


def test_folder_without_image_processor_is_refused(lite0, tmp_path):
    folder = tmp_path / "no-processor"
    shutil.copytree(lite0, folder)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(BmcoreError, match="no preprocessor_config.json"):
        load_image_processor(str(folder))


def test_cnns_are_told_from_patch_models_and_kept_channels_last(tiny_resnet, tiny_vit, tiny_model):
    import torch
    from transformers import ConvNextConfig, ViTConfig

    from bmcore.modalities.image import fixed_image_size
    from bmcore.vision import is_convolutional, load_image_classifier

    assert is_convolutional(str(tiny_resnet)) and is_convolutional("builtin:efficientnet-lite0")
    assert not is_convolutional(str(tiny_vit)) and not is_convolutional(str(tiny_model))
    assert fixed_image_size(ConvNextConfig()) is None  # its config names patch_size and image_size; it takes any size
    assert fixed_image_size(ViTConfig(image_size=32, patch_size=8)) == 32
    convs = [m.weight for m in load_image_classifier(str(tiny_resnet)).modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
