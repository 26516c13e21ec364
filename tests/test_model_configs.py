"""Issue 26: a model folder's config.json is checked against its weights' shapes (safetensors headers, and the model
built on the meta device) before transformers allocates anything, in the one place every loader goes through."""

from __future__ import annotations

import json
import resource
import shutil
from pathlib import Path

import pytest

from bmcore.errors import BmcoreError
from bmcore.inference import load_for_inference
from bmcore.models import MAX_MODEL_LABELS, load_classifier, resolve_model


def copy_with(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_fifty_million_labels_are_refused_before_any_allocation(tiny_model, tmp_path):
    folder = copy_with(tiny_model, tmp_path / "m", num_labels=50_000_000, id2label=None, label2id=None)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BmcoreError, match="config.json says 50,000,000 labels but the weights have 2 "
                                          r"\(classifier.weight is 2x32\)"):
        load_for_inference(str(folder))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: it reached 5.7 GB before


@pytest.mark.parametrize(("changes", "words"), [
    ({"num_labels": "many"}, "num_labels is not a positive whole number"),
    ({"num_labels": 0}, "num_labels is not a positive whole number"),
    ({"id2label": {str(i): str(i) for i in range(3)}, "label2id": None}, "says 3 labels but the weights have 2"),
    ({"hidden_size": 48, "num_attention_heads": 2}, "builds bert.embeddings.LayerNorm.bias as 48 but the weights hold 32"),
    ({"num_hidden_layers": 2, "vocab_size": 1000}, "builds bert.embeddings.word_embeddings.weight as 1000x32"),
])
def test_configs_that_disagree_with_the_weights_are_one_line(tiny_model, tmp_path, changes, words):
    folder = copy_with(tiny_model, tmp_path / "m", **changes)
    with pytest.raises(BmcoreError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_for_inference(str(folder))


def test_every_loader_is_checked_and_good_folders_still_load(tiny_model, tiny_resnet, tmp_path):
    # Training a new head on a damaged folder is refused too (ignore_mismatched_sizes would re-initialise the layer).
    bad = copy_with(tiny_model, tmp_path / "bad", intermediate_size=64)
    with pytest.raises(BmcoreError, match="intermediate.dense"):
        load_classifier(str(bad), ["a", "b", "c"])
    # Good folders: a run's model, a new head on it, a base model without a head, an image CNN (classifier.1).
    assert load_classifier(str(tiny_model), ["a", "b", "c"]).config.num_labels == 3
    assert load_for_inference("builtin:minilm").model.config.num_labels == 2
    assert load_for_inference(str(tiny_resnet)).label_names == ["class_0", "class_1"]
    bad_cnn = copy_with(tiny_resnet, tmp_path / "cnn", hidden_sizes=[8, 24])
    with pytest.raises(BmcoreError, match="but the weights hold"):
        load_for_inference(str(bad_cnn))
    resolve_model(str(bad_cnn))  # the labels agree: the shapes are compared when the model loads


def test_a_head_less_config_with_too_many_labels(tmp_path):
    from bmcore.models import builtin_model_dir

    folder = copy_with(builtin_model_dir("minilm"), tmp_path / "base", num_labels=MAX_MODEL_LABELS + 1)
    with pytest.raises(BmcoreError, match="more than 100,000 .and its weights have no classification head"):
        resolve_model(str(folder))


def test_a_sharded_model_is_checked_through_its_index(tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_with(tiny_model, tmp_path / "sharded", num_labels=7, id2label=None, label2id=None)
    tensors = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    head = {k: v for k, v in tensors.items() if k.startswith("classifier.")}
    save_file(head, folder / "model-00002-of-00002.safetensors")
    save_file({k: v for k, v in tensors.items() if k not in head}, folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        k: "model-00002-of-00002.safetensors" if k in head else "model-00001-of-00002.safetensors" for k in tensors}}))
    with pytest.raises(BmcoreError, match="config.json says 7 labels but the weights have 2"):
        resolve_model(str(folder))
