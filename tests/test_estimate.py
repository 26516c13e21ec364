"""The duration estimate: step counting, and a real (tiny) throughput probe."""

from __future__ import annotations

import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore.config import TrainConfig
from bmcore.device import detect_device, select_precision
from bmcore.estimate import (
    count_evaluations,
    estimate_duration,
    format_duration,
    steps_per_epoch,
    total_steps,
)
from bmcore.models import load_tokenizer
from bmcore.trainer import passes_after_training, time_left


@pytest.fixture
def toy_dataset() -> str:
    """A prepared two-class dataset of 100 short reviews, named toy."""
    words = {"positive": "great lovely fine wonderful", "negative": "awful boring bad dull"}
    df = pd.DataFrame([{"text": f"a {words[lab].split()[i % 4]} film number {i}", "label": lab}
                       for i in range(100) for lab in ("positive", "negative")][:100])
    bdata.save_prepared(bdata.prepare(bdata.RawData("toy", {"all": df}), "toy", seed=0))
    return "toy"


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"dataset": "toy", **kw})


def test_total_steps_counts_epochs_batches_and_accumulation():
    assert steps_per_epoch(cfg(per_device_train_batch_size=32), 100) == 4  # ceil(100 / 32)
    assert total_steps(cfg(per_device_train_batch_size=32), 100) == 12  # 3 default epochs
    assert total_steps(cfg(per_device_train_batch_size=32, num_train_epochs=1.5), 100) == 6
    assert total_steps(cfg(per_device_train_batch_size=10, gradient_accumulation_steps=4), 100) == 9  # ceil(10 / 4) x 3
    assert total_steps(cfg(per_device_train_batch_size=10), 100, world_size=2) == 15  # 5 steps per epoch on 2 ranks
    assert total_steps(cfg(max_steps=7, per_device_train_batch_size=1), 10_000) == 7
    assert total_steps(cfg(per_device_train_batch_size=64), 1) == 3  # never zero


def test_count_evaluations_follows_the_strategy():
    assert count_evaluations(cfg(per_device_train_batch_size=10), 100) == 3  # one per epoch
    assert count_evaluations(cfg(max_steps=25, eval_strategy="steps", eval_steps=10), 100) == 2


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (4.4, "4 s"), (200, "3 min 20 s"), (3900, "1 h 05 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_probe_measures_and_extrapolates(tiny_model, toy_dataset):
    config = cfg(model_name_or_path=str(tiny_model), per_device_train_batch_size=8, max_seq_length=32,
                 gradient_accumulation_steps=2, batch_growth=4, num_train_epochs=3.0)  # set: no small-data rule
    est = estimate_duration(config, probe_steps=2)
    assert est["precision"] == select_precision("auto", detect_device())[0]
    train = bdata.load_prepared(toy_dataset).splits["train"]
    n_train = len(train)
    assert est["n_train"] == n_train
    lengths = [len(ids) for ids in load_tokenizer(str(tiny_model))(train["text"].tolist(), truncation=True, max_length=32)["input_ids"]]
    # Short texts ride in larger batches (batch_growth): fewer steps than batches of 8.
    assert est["total_steps"] == total_steps(config, n_train, lengths=lengths) < total_steps(config, n_train)
    assert 0 < est["seconds_per_step"] < 10
    assert est["samples_per_s"] > 0
    assert est["examples_per_step"] > 8  # the job's own token-budget batches were timed, not a batch of 8
    assert est["probe_steps"] >= 2 and est["probe_seconds"] > 0
    assert est["low_seconds"] <= est["estimated_seconds"] <= est["high_seconds"]
    parts = est["train_seconds"] + est["eval_seconds"] + est["load_seconds"]
    assert est["estimated_seconds"] == pytest.approx(parts)
    assert est["train_seconds"] == pytest.approx(est["total_steps"] * est["seconds_per_step"])


def test_probe_reports_a_bad_model_plainly(toy_dataset, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        estimate_duration(cfg(model_name_or_path=str(tmp_path / "missing")))


@pytest.mark.slow
def test_estimate_is_close_to_the_run_s_measured_speed(shared_data):
    """builtin:minilm on SST-2 sentences: the probe's step time against the steps of the real job, same machine."""
    from bmcore import runs
    from bmcore.train import run_training

    df = pd.read_csv(shared_data / "sst2" / "train.csv").sample(800, random_state=0)  # 16 steps are timed: the rest is scoring
    bdata.save_prepared(bdata.prepare(bdata.RawData("sst", {"all": df}), "sst-est", seed=0))
    config = TrainConfig(dataset="sst-est", max_steps=16, eval_strategy="steps", eval_steps=16, max_seq_length=64)
    est = estimate_duration(config)
    run_dir = runs.create_run(config, "est")
    assert run_training(run_dir)["state"] == runs.COMPLETED
    lines = [m for m in runs.read_metrics(run_dir) if m["kind"] == "train"]
    # The job's pure training seconds from step 1 to the end (the first step is warm-up in both).
    measured = (lines[-1]["train_s"] - lines[0]["train_s"]) / (lines[-1]["step"] - lines[0]["step"])
    ratio = est["seconds_per_step"] / measured
    print(f"estimate {est['seconds_per_step']:.3f} s/step, the run {measured:.3f} s/step, ratio {ratio:.2f}")
    # Not a timed test: the probe and the run each share 2 cores with the other test worker, so their ratio moves with
    # whatever that worker runs (2.6 was seen under a full suite). The bound catches a unit or counting error (a probe
    # timing a batch for a step, milliseconds for seconds), which is off by far more; the estimate's accuracy on a
    # quiet machine is a measurement (README, the time estimate), not an assertion.
    assert 0.25 <= ratio <= 4.0, (est, measured)


def test_time_left_counts_steps_evaluations_and_the_scoring_after_training():
    assert passes_after_training(100, 150) == 4.0  # validation and test once, then test again in the full evaluation
    assert time_left(10, 0.5, 2, 3.0, passes_after=4.0) == 10 * 0.5 + (2 + 4) * 3.0
    assert time_left(0, 0.5, -1, 3.0, passes_after=4.0) == 12.0  # at the last step: only the scoring after training


def test_the_baseline_fits_on_one_thread():
    """28 one-vs-rest fits on GoEmotions with OpenBLAS's 2 threads on a loaded CPU: 123-145 s; on one thread 7 s."""
    from threadpoolctl import threadpool_info

    from bmcore.baseline import one_thread

    with one_thread():
        assert {pool["num_threads"] for pool in threadpool_info()} == {1}


@pytest.mark.slow
def test_multi_label_estimate_and_eta_follow_the_real_schedule(tiny_model, shared_data):
    """GoEmotions comments with multi-label's defaults (batch_growth 2, a head learning rate): the estimate counts the
    job's own token-budget steps and evaluations, and every ETA of the run counts more than its steps left, the
    evaluations and the scoring after training, so the last step's line still has time left to count down."""
    from bmcore import runs
    from bmcore.defaults import task_defaults
    from bmcore.train import run_training

    df = pd.read_csv(shared_data / "goemotions" / "train.csv", dtype=str, keep_default_na=False).head(500)
    bdata.save_prepared(bdata.prepare(bdata.RawData("goemotions-sample", {"all": df}), "emo-eta", seed=0))
    config = TrainConfig(**task_defaults({"dataset": "emo-eta", "model_name_or_path": str(tiny_model),
                                          "num_train_epochs": 2, "max_seq_length": 64, "per_device_train_batch_size": 8}))
    assert config.batch_growth == 2 and config.head_learning_rate
    est = estimate_duration(config, probe_steps=2)
    run_dir = runs.create_run(config, "eta")
    assert run_training(run_dir)["state"] == runs.COMPLETED
    metrics = runs.read_metrics(run_dir)
    lines = [m for m in metrics if m["kind"] == "train"]
    assert est["total_steps"] == lines[-1]["total_steps"] == lines[-1]["step"]  # steps of the grown batches
    assert est["examples_per_step"] == pytest.approx(lines[-1]["examples"] / lines[-1]["step"], rel=0.15)
    assert lines[-1]["examples"] / lines[-1]["step"] > 8  # short comments rode in larger batches
    assert est["evaluations"] == sum(m["kind"] == "eval" for m in metrics) == 2
    splits = bdata.load_prepared("emo-eta").splits
    n_val, n_test = len(splits["validation"]), len(splits["test"])
    assert 0 < est["eval_seconds_per_example"] < 10  # timed on validation batches, not guessed
    after = (est["evaluations"] + passes_after_training(n_val, n_test)) * n_val * est["eval_seconds_per_example"]
    assert est["eval_seconds"] == pytest.approx(after)  # the test split is scored twice after training
    first = lines[0]
    timed = [m for m in lines if m["remaining_s"] is not None]
    assert timed and first["remaining_s"] is None
    for m in timed:  # train_s excludes evaluations and saves: the ETA adds them on top of the steps left
        per_step = (m["train_s"] - first["train_s"]) / (m["step"] - first["step"])
        assert m["remaining_s"] >= 0.98 * (m["total_steps"] - m["step"]) * per_step - 0.05, m
        assert m["ts"] > 0
    assert lines[-1]["remaining_s"] > 0  # the last evaluation and the scoring after training, not "measuring the speed"


def test_the_image_estimate_times_evaluation_batches_too(tiny_vit):
    """Fashion-MNIST images through the tiny ViT: training steps and forward-only validation batches, both timed."""
    from _images import DATASET, PER_CLASS
    from test_image_task import CLASSES, FASHION, fashion_frames

    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    bdata.save_prepared(bdata.PreparedDataset(name=DATASET, source="fashion-mnist idx files",
                                              columns=bdata.Columns(["image"], "label"),
                                              label_names=sorted(set(CLASSES.values())), splits=fashion_frames(PER_CLASS),
                                              modality="image"))
    est = estimate_duration(TrainConfig(model_name_or_path=str(tiny_vit), dataset=DATASET, max_steps=30,
                                        per_device_train_batch_size=16, per_device_eval_batch_size=8), probe_steps=2)
    n_val, n_test = 8 * len(set(CLASSES.values())), 8 * len(set(CLASSES.values()))
    # Batches of 16 (the probe may reach the epoch's last, shorter one: 120 images)
    assert est["total_steps"] == 30 and 8 <= est["examples_per_step"] <= 16 and est["eval_seconds_per_example"] > 0
    assert est["eval_seconds"] == pytest.approx((est["evaluations"] + passes_after_training(n_val, n_test)) * n_val
                                                * est["eval_seconds_per_example"])
