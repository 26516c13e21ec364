"""Label quality on real noisy data: SST-2 train (10,000 rows) with 5% of the labels flipped by the test.

Detection is measured against the known flips; training on the reviewed (cleaned) version is compared with training on
the noisy one, same settings, same seed, on SST-2 dev. The numbers are printed (run with ``-s``) and go to the README.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from bmcore import data as bdata
from bmcore import files, jobs, runs, train
from bmcore import quality as bq
from bmcore.config import TrainConfig
from tests.test_quality import FLIP_SHARE, detection, flip

# Ten thousand MiniLM embeddings and six 300-step fine-tunes: about 8 minutes with bf16, far more in fp32, which
# would take the suite past its 20-minute budget on a CPU without bf16. A measurement, run on demand:
#   BMCORE_QUALITY_SST2=1 python -m pytest -m slow -s tests/test_quality_sst2.py
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("BMCORE_QUALITY_SST2"),
                                                   reason="the SST-2 label-quality measurement runs on demand "
                                                          "(BMCORE_QUALITY_SST2=1); tests/test_quality.py covers it in CI")]
NOISY = "sst2-noisy"


@pytest.fixture(scope="module")
def noisy(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """A workspace with SST-2: 10,000 train rows (5% flipped, seed 0), 500 validation rows from train, dev as test."""
    ws = tmp_path_factory.mktemp("sst2-ws")
    mp = pytest.MonkeyPatch()
    mp.setenv("BMCORE_WORKSPACE", str(ws))
    rows = pd.read_csv(shared_data / "sst2" / "train.csv").sample(10_500, random_state=0).reset_index(drop=True)
    train_df, flipped = flip(rows.iloc[:10_000], FLIP_SHARE, seed=0)
    raw = bdata.RawData("sst2", {"train": train_df, "validation": rows.iloc[10_000:],
                                 "test": pd.read_csv(shared_data / "sst2" / "dev.csv")})
    bdata.save_prepared(bdata.prepare(raw, NOISY, columns=bdata.Columns(["text"], "label")))
    t0 = time.perf_counter()
    job = jobs.start("label-quality", {"dataset": NOISY}, NOISY)
    info = jobs.wait(job, timeout=1800)
    seconds = time.perf_counter() - t0
    yield ws, flipped, info, seconds
    mp.undo()


def test_flipped_labels_are_found(noisy, monkeypatch: pytest.MonkeyPatch):
    ws, flipped, info, seconds = noisy
    monkeypatch.setenv("BMCORE_WORKSPACE", str(ws))
    assert info["state"] == runs.COMPLETED, info
    result = bq.load_quality(NOISY)
    precision, recall = detection(result.scores, "train", flipped)
    print(f"\nSST-2 10k, 5% flipped: {result.summary['flagged_per_split']['train']} train rows flagged, "
          f"precision {precision:.3f}, recall {recall:.3f}, out-of-fold accuracy {result.summary['oof_accuracy']}, "
          f"job {seconds:.0f} s (embedding {result.summary['embed_seconds']} s)")
    assert recall >= 0.6, recall
    # The 5% base rate would give precision 0.05: flags are six times more likely than chance to be real flips.
    assert precision >= 0.3, precision


def finetune(dataset: str, seed: int = 42) -> dict:
    config = TrainConfig(model_name_or_path="builtin:minilm", dataset=dataset, max_steps=300, max_seq_length=64,
                         per_device_train_batch_size=32, batch_growth=1, learning_rate=1e-4, seed=seed, eval_strategy="steps",
                         eval_steps=300, save_total_limit=1, metric_for_best_model="accuracy")
    run_dir = runs.create_run(config, f"on-{dataset}-{seed}")
    status = train.run_training(run_dir)
    assert status["state"] == runs.COMPLETED, status
    assert files.read_json(run_dir / runs.CONFIG_FILE)["dataset"] == dataset  # the run records the version it used
    return files.read_json(run_dir / runs.EVAL_FILE)["test"]


SEEDS = (42, 7, 1)  # identical runs on a bf16 CPU differ by up to ~0.9 points: one seed cannot show a ~0.6-point gain


def test_training_on_the_cleaned_version_scores_higher_on_dev(noisy, monkeypatch: pytest.MonkeyPatch):
    """The review a user would do in bulk: drop every flagged train row. Same settings and seeds on both versions; the
    cleaned version's mean SST-2 dev accuracy is higher. Measured 2026-11-30: noisy 0.8498 / 0.8475 / 0.8521 (mean
    0.8498), flagged rows dropped 0.8498 / 0.8567 / 0.8624 (mean 0.8563). Relabelling instead hurts at this detection
    precision (0.41): every flag relabelled 0.8440, the 250 most confident (precision 0.74) 0.8463 / 0.8360 / 0.8567."""
    monkeypatch.setenv("BMCORE_WORKSPACE", str(noisy[0]))
    result = bq.load_quality(NOISY)
    flagged = result.flagged("train")
    changes = pd.DataFrame({"split": "train", "row": flagged["row"].to_numpy(), "action": "drop", "new_label": None})
    clean = bq.save_version(bdata.load_prepared(NOISY), changes)
    assert clean.name == f"{NOISY}-v2" and len(clean.splits["train"]) == 10_000 - len(flagged)
    noisy_dev = [finetune(NOISY, seed)["accuracy"] for seed in SEEDS]
    clean_dev = [finetune(clean.name, seed)["accuracy"] for seed in SEEDS]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"\nSST-2 dev accuracy over seeds {SEEDS}: noisy {noisy_dev} (mean {mean(noisy_dev):.4f}), "
          f"flagged rows dropped {clean_dev} (mean {mean(clean_dev):.4f})")
    assert mean(clean_dev) > mean(noisy_dev), (noisy_dev, clean_dev)
