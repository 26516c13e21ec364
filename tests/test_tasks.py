"""The task seam: multi-label metrics against scikit-learn, per-label thresholds, positive weights, and a
multi-label model through training, the saved folder, transformers' pipeline, prediction and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _multilabel import DATASET
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, multilabel_confusion_matrix, precision_score

from bmcore import data as bdata
from bmcore import runs
from bmcore.config import TrainConfig
from bmcore.errors import BmcoreError
from bmcore.metrics import multi_label_metrics
from bmcore.tasks import MULTI_LABEL, SINGLE_LABEL, get_task, task_of_model
from bmcore.tasks.multi_label_classification import DEFAULT_THRESHOLD, positive_weights, sigmoid, tune_thresholds


@pytest.fixture(scope="module")
def goemotions_gold(tmp_path_factory) -> tuple[np.ndarray, list[str]]:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "goemotions"
    if not shared.is_dir():
        pytest.skip("../shared/data/goemotions is not present")
    df = pd.read_csv(shared / "dev.csv")
    names = sorted({n for s in df["labels"] for n in s.split(",")})
    gold = np.array([[int(n in s.split(",")) for n in names] for s in df["labels"]])
    return gold, names


def test_multi_label_metrics_match_scikit_learn(goemotions_gold):
    gold, names = goemotions_gold  # the real GoEmotions dev labels: 28 labels, 1 to 5 a comment
    rng = np.random.default_rng(0)
    probs = np.clip(gold * 0.6 + rng.random(gold.shape) * 0.5, 0, 1)  # a noisy scorer
    pred = (probs >= 0.5).astype(int)
    m = multi_label_metrics(gold, pred, probs, names, [0.5] * len(names))
    for avg in ("micro", "macro", "weighted", "samples"):
        assert m[f"{avg}_f1"] == pytest.approx(f1_score(gold, pred, average=avg, zero_division=0))
        assert m[f"{avg}_precision"] == pytest.approx(precision_score(gold, pred, average=avg, zero_division=0))
    assert m["subset_accuracy"] == m["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(gold, pred))
    assert not {"f1_macro", "f1_micro"} & set(m)  # one set of key names (bmcore.metrics)
    per = f1_score(gold, pred, average=None, zero_division=0)
    assert [m["per_class"][n]["f1"] for n in names] == pytest.approx(per)
    assert [m["per_class"][n]["support"] for n in names] == gold.sum(axis=0).tolist()
    assert m["label_confusion"]["matrices"] == multilabel_confusion_matrix(gold, pred).tolist()
    assert 0.5 < m["macro_roc_auc"] <= 1.0
    json.dumps(m)  # JSON-ready
    with pytest.raises(ValueError):
        multi_label_metrics(gold, pred[:, :3], None, names)


def test_labels_never_predicted_are_named_like_classes_are(goemotions_gold):
    gold, names = goemotions_gold  # the real GoEmotions dev labels
    pred = gold.copy()
    never = [n for n in names if n != "neutral"][:25:5]  # five of 28 labels the model never predicts: their F1 is 0
    pred[:, [names.index(n) for n in never]] = 0
    pred[:, names.index("neutral")] = 1  # a label predicted everywhere has full recall: not missed
    m = multi_label_metrics(gold, pred, None, names)
    task = get_task(MULTI_LABEL)
    note = task.missed_note(m, "dev")
    assert note.startswith("5 of 28 labels are never or almost never predicted right: ")
    for n in never:
        assert f"{n} (F1 0.00, 0 of {m['per_class'][n]['support']} dev examples found)" in note
    assert "neutral" not in note and "class weights" in note and "these labels" in note
    assert task.missed_note(multi_label_metrics(gold, gold, None, names)) == ""  # all found: nothing to say
    # A damaged eval.json (a visitor may have written it) says nothing rather than fail.
    for damaged in ({"per_class": "x"}, {"per_class": {"a": None, "b": {"support": "3", "recall": 0, "f1": 0}}}, {}):
        assert task.missed_note(damaged) == ""
    # Single-label: the same warning from an evaluation's confusion matrix and from eval.json's.
    single = get_task(SINGLE_LABEL)
    matrix, labels = [[50, 0, 1], [2, 40, 0], [8, 1, 0]], ["a", "b", "rare"]
    from_eval = single.missed_note({"confusion_matrix": {"matrix": matrix, "labels": labels}})
    assert from_eval == single.missed_note({"confusion_matrix": matrix, "labels": labels})
    assert from_eval.startswith("Class rare (0 of 9 test examples) is never or almost never predicted right")
    assert single.missed_note({"confusion_matrix": [[1, 2], [3]], "labels": labels}) == ""


def test_tuned_thresholds_beat_a_flat_half_on_what_they_were_tuned_on(goemotions_gold):
    gold, names = goemotions_gold
    rng = np.random.default_rng(1)
    # Under-confident scores: positives sit around 0.35, so 0.5 misses most of them.
    probs = np.clip(gold * 0.3 + rng.random(gold.shape) * 0.3, 0, 1)
    t = tune_thresholds(probs, gold)
    assert t.shape == (len(names),) and ((t > 0) & (t < 1)).all()
    tuned = f1_score(gold, (probs >= t).astype(int), average=None, zero_division=0)
    flat = f1_score(gold, (probs >= DEFAULT_THRESHOLD).astype(int), average=None, zero_division=0)
    assert (tuned >= flat - 1e-12).all() and tuned.mean() > flat.mean() + 0.2
    # Each threshold is the best of the grid for its label.
    j = 0
    for cand in (0.2, 0.3, 0.4):
        assert tuned[j] >= f1_score(gold[:, j], probs[:, j] >= cand, zero_division=0) - 1e-12
    # A label with no positives keeps the default.
    gold2 = gold.copy()
    gold2[:, 0] = 0
    assert tune_thresholds(probs, gold2)[0] == DEFAULT_THRESHOLD


def test_rare_labels_share_one_threshold_instead_of_fitting_their_few_rows():
    # 1,000 validation rows; a frequent label (200 positives) gets its own best threshold; two labels with 5 and 8
    # positives would each fit those few rows exactly, so they share the threshold with the best mean F1 over both.
    rng = np.random.default_rng(0)
    gold = np.zeros((1000, 3), dtype=np.int64)
    gold[:200, 0], gold[200:205, 1], gold[300:308, 2] = 1, 1, 1
    probs = np.clip(gold * 0.4 + rng.random(gold.shape) * 0.5, 0, 1)
    t = tune_thresholds(probs, gold)
    grid = np.round(np.arange(0.02, 0.981, 0.01), 2)
    best_own = [max(grid, key=lambda c, j=j: f1_score(gold[:, j], probs[:, j] >= c, zero_division=0)) for j in range(3)]
    assert f1_score(gold[:, 0], probs[:, 0] >= t[0]) == pytest.approx(f1_score(gold[:, 0], probs[:, 0] >= best_own[0]))
    assert t[1] == t[2]  # one shared threshold for the rare labels
    mean_at = lambda c: np.mean([f1_score(gold[:, j], probs[:, j] >= c, zero_division=0) for j in (1, 2)])  # noqa: E731
    assert mean_at(t[1]) == pytest.approx(max(mean_at(c) for c in grid))


def test_positive_weights_modes():
    counts, n = np.array([500, 50, 5]), 1000
    assert positive_weights("none", counts, n) == ("none", None)
    mode, w = positive_weights("balanced", counts, n)
    assert mode == "balanced" and w == pytest.approx([1.0, 19.0, 100.0])  # negatives/positives, capped at 100
    mode, w = positive_weights("auto", counts, n)
    assert mode == "sqrt" and w == pytest.approx(np.sqrt([1.0, 19.0, 100.0]))
    assert positive_weights("auto", np.array([300, 200, 250]), n)[0] == "none"  # frequencies within 3x


def test_sigmoid_is_stable_and_tasks_are_found():
    assert sigmoid(np.array([[-1000.0, 0.0, 1000.0]])).tolist() == [[0.0, 0.5, 1.0]]
    assert get_task(None).problem_type == SINGLE_LABEL and get_task(MULTI_LABEL).problem_type == MULTI_LABEL
    assert get_task("regression").problem_type == "regression"
    with pytest.raises(BmcoreError, match="unknown problem_type 'ordinal'"):
        get_task("ordinal")


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory, multilabel_workspace) -> Path:
    """The tiny random BERT trained on a GoEmotions sample as a multi-label model (a copy of the session's)."""
    from _multilabel import copy_workspace

    return copy_workspace(multilabel_workspace, tmp_path_factory.mktemp("mlws"))


def test_a_multi_label_run_saves_a_standard_folder_with_thresholds(multilabel_run: Path):
    from transformers import AutoConfig, pipeline

    from bmcore.inference import load_for_inference, predict

    model_dir = multilabel_run / runs.MODEL_DIR
    config = AutoConfig.from_pretrained(model_dir)
    assert config.problem_type == MULTI_LABEL and len(config.id2label) > 10
    meta = json.loads((model_dir / "bmcore.json").read_text())
    names = [config.id2label[i] for i in range(len(config.id2label))]
    assert meta["problem_type"] == MULTI_LABEL and set(meta["thresholds"]) == set(names)
    ev = json.loads((multilabel_run / runs.EVAL_FILE).read_text())
    assert ev["problem_type"] == MULTI_LABEL
    for key in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss", "flat_threshold"):
        assert key in ev["test"], key
    assert runs.read_status(multilabel_run)["test_macro_f1"] == ev["test"]["macro_f1"]
    # Training's test scores (Trainer's batches, grouped by length) match the full evaluation's (rows in order):
    # the gold labels were paired with the right predictions.
    full = json.loads((multilabel_run / runs.EVALUATION_DIR / "test" / "metrics.json").read_text())
    assert ev["test"]["n"] == full["n"]
    for key in ("macro_f1", "micro_f1", "subset_accuracy", "hamming_loss"):
        assert ev["test"][key] == pytest.approx(full[key], abs=1e-9), key
    # transformers' own pipeline applies a sigmoid to this model by itself, and agrees with bmcore's scores.
    texts = ["thank you so much, this is wonderful", "why would anyone do that? terrible"]
    pipe = pipeline("text-classification", model=str(model_dir), top_k=None)
    clf = load_for_inference(str(model_dir), precision="fp32")
    assert clf.task is get_task(MULTI_LABEL) and task_of_model(clf.model).problem_type == MULTI_LABEL
    records = predict(clf, texts)
    for got, rec in zip(pipe(texts), records, strict=True):
        theirs = {d["label"]: d["score"] for d in got}
        assert sum(theirs.values()) > 1.5  # independent sigmoids, not a softmax summing to 1
        assert theirs == pytest.approx(rec["scores"], abs=1e-4)
        assert rec["labels"] == [n for n in names if rec["scores"][n] >= meta["thresholds"][n]]


def test_a_multi_label_model_evaluates_with_its_thresholds(multilabel_run: Path, monkeypatch):
    from bmcore.evaluate import evaluate_model
    from bmcore.evaluation_files import load_eval

    monkeypatch.setenv("BMCORE_WORKSPACE", str(multilabel_run.parent.parent))
    ds = bdata.load_prepared(DATASET)
    out = multilabel_run / runs.EVALUATION_DIR / "validation"
    result = evaluate_model(multilabel_run / runs.MODEL_DIR, ds, "validation", out_dir=out)
    m = result.metrics
    assert m["thresholds"]["fitted_on"] == "validation" and m["baseline"]["model"] == "tfidf-logreg"
    assert m["baseline"]["problem_type"] == MULTI_LABEL and "macro_f1" in m["baseline"]
    table = load_eval(out).predictions
    assert len(table) == len(ds.splits["validation"])
    gold = [json.loads(g) for g in table["gold"]]
    assert gold == bdata.label_sets(ds.splits["validation"]["label"])
    assert table["correct"].tolist() == (table["errors"] == 0).tolist()
    assert {f"prob_{n}" for n in ds.label_names} <= set(table.columns)
    # A single-label dataset against this model: one line naming the mismatch.
    sst = ds.splits["train"].assign(label="joy")  # a known label, but one per row: single-label data
    single = bdata.PreparedDataset("one", "", ds.columns, ["joy"], {"train": sst, "validation": sst, "test": sst})
    with pytest.raises(BmcoreError, match="trained for multi_label_classification"):
        evaluate_model(multilabel_run / runs.MODEL_DIR, single, "test", baseline=False)


def test_the_time_estimate_probes_a_multi_label_model(multilabel_run: Path, tiny_model, monkeypatch):
    """The estimate times real steps of the task's model and targets (float label vectors, not class ids)."""
    from bmcore.estimate import estimate_duration

    monkeypatch.setenv("BMCORE_WORKSPACE", str(multilabel_run.parent.parent))
    est = estimate_duration(TrainConfig(model_name_or_path=str(tiny_model), dataset=DATASET, max_steps=10,
                                        max_seq_length=48), probe_steps=2)
    assert est["total_steps"] == 10 and est["seconds_per_step"] > 0 and est["probe_steps"] >= 2


def test_training_scores_pair_each_prediction_with_its_own_label(tiny_model, shared_data, monkeypatch):
    """Trainer's evaluation batches are grouped by length, so its predictions come back out of row order: eval.json's
    test scores must still equal the full evaluation's, which scores the rows in order (fp32 for both)."""
    monkeypatch.setenv("BMCORE_PRECISION", "fp32")
    sms = pd.read_csv(shared_data / "sms_spam" / "all.csv").groupby("label").sample(200, random_state=0)
    bdata.save_prepared(bdata.prepare(bdata.RawData("sms", {"all": sms}), "sms-order", seed=0))
    from bmcore.train import run_training

    run = runs.create_run(TrainConfig(model_name_or_path=str(tiny_model), dataset="sms-order", max_steps=40,
                                      max_seq_length=48, per_device_train_batch_size=16, learning_rate=3e-3,
                                      batch_growth=1), "order")
    assert run_training(run)["state"] == runs.COMPLETED
    full = json.loads((run / runs.EVALUATION_DIR / "test" / "metrics.json").read_text())
    assert 0 < full["per_class"]["spam"]["predicted"] < full["n"]  # the model tells rows apart: order matters
    ev = json.loads((run / runs.EVAL_FILE).read_text())
    assert ev["test"]["accuracy"] == pytest.approx(full["accuracy"], abs=1e-9)
    assert ev["test"]["confusion_matrix"] == full["confusion_matrix"]["matrix"]


def test_a_multi_label_head_starts_at_each_label_s_prior(tiny_model):
    """Fresh, the head says 0.5 for every label; after init_model its sigmoid at zero input is each label's base rate
    (weighted as the loss weighs positives)."""
    import torch

    from bmcore.models import load_classifier

    names = ["common", "rare", "never"]
    targets = [[1.0, 0.0, 0.0]] * 60 + [[0.0, 1.0, 0.0]] * 4 + [[0.0, 0.0, 0.0]] * 36  # 60%, 4%, 0%
    model = load_classifier(str(tiny_model), names, problem_type=MULTI_LABEL)
    task = get_task(MULTI_LABEL)
    assert "prior" in task.init_model(model, targets, TrainConfig(class_weights="none"))
    rate = torch.sigmoid(model.classifier.bias.detach()).numpy()
    assert rate[:2] == pytest.approx([0.60, 0.04], abs=1e-4) and 0 < rate[2] < 0.01  # a label never seen: tiny, not 0
    task.init_model(model, targets, TrainConfig(class_weights="balanced"))  # positives weighted negatives/positives
    assert torch.sigmoid(model.classifier.bias.detach()).numpy()[1] == pytest.approx(0.5, abs=1e-4)
    assert get_task(SINGLE_LABEL).init_model(model, targets, TrainConfig()) is None


def test_a_new_run_starts_from_its_task_s_defaults(shared_data, tmp_path):
    """Multi-label data starts from the multi-label task's settings; what the user sets still wins, and single-label
    data keeps TrainConfig's own defaults."""
    from bmcore.defaults import task_defaults

    multi = get_task(MULTI_LABEL).defaults
    assert multi  # the multi-label task has its own starting point (README: measured on GoEmotions)
    folder = shared_data / "goemotions"
    got = task_defaults({"dataset": str(folder)})  # a raw source: its shape is detected
    assert got == {**multi, "dataset": str(folder)}
    mine = {"dataset": str(folder), **{k: v for k, v in TrainConfig().to_dict().items() if k in multi}}
    assert task_defaults(mine) == mine  # set by the user: kept
    assert task_defaults({"dataset": str(shared_data / "sst2")}) == {"dataset": str(shared_data / "sst2")}
    assert task_defaults({"dataset": "no-such-thing"}) == {"dataset": "no-such-thing"}  # the job reports it, in one line
    TrainConfig(**task_defaults({"dataset": str(folder)}))  # valid settings


def test_image_data_starts_from_the_image_task_s_defaults():
    """Image data starts from the built-in EfficientNet-Lite0 and its learning rate (README: measured on Fashion-MNIST);
    a model or rate the user gives wins."""
    from bmcore.defaults import task_defaults

    got = task_defaults({"dataset": "builtin:fashion-mnist"})
    assert got == {"dataset": "builtin:fashion-mnist", "model_name_or_path": "builtin:efficientnet-lite0", "learning_rate": 1e-3}
    mine = {"dataset": "builtin:fashion-mnist", "model_name_or_path": "/models/vit", "learning_rate": 5e-5}
    assert task_defaults(mine) == mine
    assert get_task(SINGLE_LABEL, "image").defaults == {k: v for k, v in got.items() if k != "dataset"}
