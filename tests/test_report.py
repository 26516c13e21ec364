"""What the pages show, computed by bmcore.report (and run_list.finished_runs, pretrain.save_upload) on real data."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bmcore import compare, report, run_list, runs
from bmcore import evaluate as ev
from bmcore import evaluation_files as evf
from bmcore import metrics as bmetrics
from bmcore.cli import main
from bmcore.config import PretrainConfig, TrainConfig
from bmcore.errors import BmcoreError
from bmcore.estimate import format_duration
from bmcore.pretrain import UPLOADS_DIR, save_upload
from bmcore.report import evaluation as rev
from bmcore.report import examples as rex
from bmcore.workspace import runs_dir

NAMES = ["negative", "positive"]


@pytest.fixture(scope="module")
def dev(shared_data: Path) -> pd.DataFrame:
    """120 SST-2 dev rows, both classes, in a fixed order."""
    return pd.read_csv(shared_data / "sst2" / "dev.csv").groupby("label").head(60).reset_index(drop=True)


def scored(dev: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A prediction table over the real rows: confident on the gold class most of the time, wrong on a share."""
    rng = np.random.default_rng(seed)
    gold = dev["label"].map(NAMES.index).to_numpy()
    p_gold = np.where(rng.random(len(dev)) < 0.75, rng.uniform(0.6, 0.95, len(dev)), rng.uniform(0.05, 0.4, len(dev)))
    probs = np.zeros((len(dev), 2))
    probs[np.arange(len(dev)), gold] = p_gold
    probs[np.arange(len(dev)), 1 - gold] = 1 - p_gold
    return ev.prediction_table(dev, probs, NAMES, are_probs=True)


def metrics_of(table: pd.DataFrame) -> dict:
    return bmetrics.compute_metrics(table["gold"], table["pred"], rex.probs_of(table, NAMES), NAMES)


def test_formats_and_previews():
    assert report.fmt(None) == "-" and report.fmt(0.12345) == "0.123" and report.fmt(1234.5, ",.0f") == "1,234"
    assert report.delta(0.9, 0.85) == "+0.050 vs baseline"
    assert report.delta(0.1, 0.2, "") == "-0.100"
    assert report.delta(0.9, None) is None
    long = "word  " * 40
    cut = report.preview(long)
    assert len(cut) == report.PREVIEW and cut.endswith("…") and "  " not in cut
    assert report.preview("a\nb") == "a b"


def test_headline_tiles_show_the_metrics_against_the_baseline(dev):
    m = metrics_of(scored(dev, 0))
    m["baseline"] = {"accuracy": 0.5, "macro_f1": 0.4}
    first, second = rev.headline_tiles(m)
    tiles = {t["label"]: t for t in first + second}
    assert tiles["Accuracy"]["value"] == f"{m['accuracy']:.3f}"
    assert tiles["Accuracy"]["delta"] == f"{m['accuracy'] - 0.5:+.3f} vs baseline"
    assert tiles["Macro F1"]["delta"] == f"{m['macro_f1'] - 0.4:+.3f} vs baseline"
    assert tiles["Baseline accuracy"]["value"] == "0.500"
    assert tiles["ROC-AUC (macro)"]["value"] == f"{m['macro_roc_auc']:.3f}"
    assert tiles["ECE, calibrated"]["delta"] is None  # no temperature was fitted
    m["ece_calibrated"] = m["ece"] / 2
    tile = {t["label"]: t for t in rev.headline_tiles(m)[1]}["ECE, calibrated"]
    assert tile["delta"] == f"{m['ece_calibrated'] - m['ece']:+.3f}" and tile["delta_color"] == "inverse"
    del m["baseline"]
    assert {t["label"]: t for t in rev.headline_tiles(m)[0]}["Accuracy"]["delta"] is None


def test_curve_frames_have_every_point_and_name_the_area(dev):
    table = scored(dev, 1)
    data = rex.roc_pr_curves(table, NAMES)
    roc, pr = rev.curve_frames(data)
    assert len(roc) == sum(len(c["roc"]["fpr"]) for c in data.values())
    assert len(pr) == sum(len(c["pr"]["recall"]) for c in data.values())
    first = next(iter(data))
    assert f"{first} (AUC {data[first]['roc']['auc']:.3f})" in set(roc["class"])
    assert roc["false positive rate"].between(0, 1).all() and pr["precision"].between(0, 1).all()


def test_compare_tiles_and_per_class_differences(dev):
    a, b = scored(dev, 2), scored(dev, 3)
    cmp = compare.compare_runs(a, b, NAMES)
    tiles = {t["label"]: t for t in rev.compare_tiles(cmp, "r2")}
    assert tiles["Accuracy"]["value"] == f"{(b['gold'] == b['pred']).mean():.3f}"
    assert tiles["Accuracy"]["delta"].endswith("vs r2")
    assert tiles["Now wrong (were right)"]["value"] == f"{len(cmp['right_to_wrong']):,}"
    diffs = rev.f1_diff_frame(cmp, "r2")
    assert diffs["class"].tolist() == NAMES
    for _, row in diffs.iterrows():
        d = row["F1 difference"]
        assert row["better"] == ("this model" if d > 0 else "r2" if d < 0 else "same")
        assert d == pytest.approx(row["this"] - row["r2"])


def test_split_choices_leave_out_empty_splits():
    assert rev.split_choices({"train": 100, "validation": 0, "test": 20}) == ["train", "test"]
    assert rev.split_choices({}) == ["train", "validation", "test"]  # sizes unknown: all
    assert rev.split_choices({"train": 0, "validation": 0, "test": 0}) == ["train", "validation", "test"]
    assert rev.default_split(["train", "validation"]) == "train"
    assert rev.default_split(["train", "test"]) == "test"
    assert report.split_sizes({"train": 1200, "test": 5}) == "1,200 train / 0 validation / 5 test"


def test_evaluate_command_parses_back(tmp_path):
    out = Path.cwd() / "evals" / "x"
    command = rev.evaluate_command(str(tmp_path / "my model"), "sst 2", "test", out)
    args = shlex.split(command.replace(" \\\n", " "))
    assert args[:6] == ["python", "-m", "bmcore", "evaluate", "--model", str(tmp_path / "my model")]
    assert args[6:] == ["--data", "sst 2", "--split", "test", "--out", "evals/x"]  # inside the working folder: relative


def test_run_commands_name_the_run_folder_and_parse_back(tiny_model, capsys):
    config = TrainConfig(model_name_or_path=str(tiny_model), dataset="sst-tiny", max_steps=10, num_train_epochs=None)
    local, multi = report.run_commands("train", config, "my-run")
    args = shlex.split(local)
    assert args[:4] == ["python", "-m", "bmcore", "train"]
    assert args[args.index("--out") + 1] == str(report.shown_path(runs_dir() / "my-run"))
    assert "--max-steps" in args and args[args.index("--data") + 1] == "sst-tiny"
    assert shlex.split(multi) == ["torchrun", "--nproc_per_node", "2", "-m", "bmcore", *args[3:]]
    # The CLI parses the same arguments; it stops at the missing dataset, with one line naming it.
    assert main(args[3:]) == 2 and "unknown data source 'sst-tiny'" in capsys.readouterr().err
    pre = PretrainConfig(model_name_or_path=str(tiny_model), dataset="notes.txt")
    (only,) = report.run_commands("pretrain", pre, "pretrain-x")
    assert shlex.split(only)[:8] == ["python", "-m", "bmcore", "pretrain", "--data", "notes.txt", "--model", str(tiny_model)]


def test_progress_text_says_time_left_only_while_running():
    p = {"status": {"state": runs.RUNNING}, "step": 5, "total_steps": 10, "eta_s": 90}
    assert report.progress_text(p) == f"step 5 of 10 · about {format_duration(90)} left"
    assert report.progress_text({**p, "eta_s": None}) == "step 5 of 10 · measuring the speed..."
    assert report.progress_text({**p, "status": {"state": runs.COMPLETED}}) == "step 5 of 10"
    # Past the reckoned end (the scoring after training ran long) the job is finishing, its speed long measured.
    assert report.progress_text({**p, "step": 10, "eta_s": 0.0}) == "step 10 of 10 · finishing..."


def test_the_time_left_counts_down_from_the_last_progress_line(tmp_path):
    run_dir = runs.create_run(TrainConfig(dataset="d"), "countdown")
    runs.write_status(run_dir, state=runs.RUNNING, total_steps=10)
    runs.append_metrics(run_dir, {"kind": "train", "step": 10, "total_steps": 10, "remaining_s": 100.0,
                                  "ts": time.time() - 30})
    assert runs.progress(run_dir)["eta_s"] == pytest.approx(70, abs=5)  # the scoring after training, counting down
    runs.append_metrics(run_dir, {"kind": "train", "step": 10, "total_steps": 10, "remaining_s": 5.0, "ts": time.time() - 60})
    assert runs.progress(run_dir)["eta_s"] == 0.0
    runs.append_metrics(run_dir, {"kind": "train", "step": 10, "total_steps": 10, "remaining_s": "soon"})  # a visitor's
    with pytest.raises(BmcoreError, match="line 3 has remaining_s \"soon\", not a number"):
        runs.progress(run_dir)  # the reader refuses it: the page shows the run as damaged


def test_run_tiles_from_a_real_progress_record(tmp_path):
    run_dir = runs.create_run(TrainConfig(dataset="d"), "tiles")
    runs.write_status(run_dir, state=runs.RUNNING, precision="bf16", total_steps=10)
    runs.append_metrics(run_dir, {"kind": "train", "step": 4, "total_steps": 10, "epoch": 0.4, "learning_rate": 3e-5,
                                  "samples_per_s": 12.34, "tokens_per_s": 5432.1, "loss": 0.69})
    runs.append_metrics(run_dir, {"kind": "eval", "step": 4, "eval_perplexity": 123.456})
    p = runs.progress(run_dir)
    assert [(t["label"], t["value"]) for t in report.train_tiles(p)] == [
        ("Epoch", "0.40"), ("Learning rate", "3.00e-05"), ("Samples/s", "12.3"), ("Tokens/s", "5,432"), ("Precision", "bf16")]
    assert [t["value"] for t in report.pretrain_tiles(p)] == ["123.5", "123.46", "0.690", "bf16"]
    image = {**p, "last": {**p["last"], "tokens_per_s": 0.0}}  # an image run counts no tokens: a dash, not 0
    assert dict((t["label"], t["value"]) for t in report.train_tiles(image))["Tokens/s"] == "-"
    result = {"test": {"accuracy": 0.9, "macro_f1": 0.85}, "validation": {"accuracy": 0.8}}
    assert [t["value"] for t in report.result_tiles(result)] == ["0.900", "0.850", "0.800", "-"]


def test_estimate_text_and_busy_note():
    est = {"estimated_seconds": 600, "low_seconds": 500, "high_seconds": 700, "total_steps": 1200,
           "seconds_per_step": 0.5, "samples_per_s": 64.0, "precision": "bf16", "evaluations": 3,
           "probe_steps": 12, "probe_seconds": 6.2}
    text = report.estimate_text(est)
    assert text.startswith("About **") and "1,200 steps at 0.50 s each (64.0 samples/s in bf16)" in text
    assert "likely" in text and "3 evaluation(s)" in text
    busy, note = report.estimate_note(est, "2026-01-01 10:00")
    assert not busy and note.startswith("12 steps timed over 6 s, 2026-01-01 10:00.")
    busy, note = report.estimate_note({**est, "busy": True, "load": 3.5, "cores": 2}, "then")
    assert busy and "load 3.5 on 2 cores" in note


def test_calibration_text_and_top_confusions():
    assert rev.calibration_text({}) == (None, None)
    text, caption = rev.calibration_text({"temperature": 1.5, "calibration": {"saved": True, "log_loss_before": 0.5,
                                                                                  "log_loss_after": 0.4}})
    assert "T = **1.500**" in text and "fitted on the validation split and saved with the model" in text
    assert caption == "Log loss on this split: 0.500 → 0.400."
    assert rev.top_confusions_text({}) is None
    top = rev.top_confusions_text({"top_confusions": [{"gold": "*a*", "pred": "c", "count": 1200}]})
    assert top.startswith("Most frequent confusions: ") and "(1,200)" in top and "\\*a\\*" in top  # Markdown-escaped


def finish(run_dir: Path, with_model: bool = True) -> Path:
    runs.write_status(run_dir, state=runs.COMPLETED)
    if with_model:
        (run_dir / runs.MODEL_DIR).mkdir()
    return run_dir


def test_finished_runs_have_a_model_and_classifiers_leave_out_pretraining(dev):
    ft = finish(runs.create_run(TrainConfig(dataset="sst"), "ft"))
    finish(runs.create_run(TrainConfig(dataset="sst"), "no-model"), with_model=False)
    runs.create_run(TrainConfig(dataset="sst"), "queued")
    mlm = finish(runs.create_run(PretrainConfig(dataset="notes.txt"), "mlm"))
    assert sorted(r.name for r in run_list.finished_runs()) == ["ft", "mlm"]
    assert [r.name for r in run_list.finished_runs(classifiers=True)] == ["ft"]

    # comparable_runs: the other finished runs with a saved evaluation of the same dataset and split
    other = finish(runs.create_run(TrainConfig(dataset="sst"), "other"))
    table = scored(dev, 4)
    evf.save_eval(evf.EvalResult({**metrics_of(table), "dataset": "sst", "split": "test"}, table),
                 evf.evaluation_dir(other / runs.MODEL_DIR, "sst", "test"))
    finished = {r.name: r for r in run_list.finished_runs(classifiers=True)}
    assert set(rev.comparable_runs(finished, "ft", "sst", "test")) == {"other"}
    assert rev.comparable_runs(finished, "other", "sst", "test") == {}
    assert rev.comparable_runs(finished, "ft", "sst", "validation") == {}
    assert mlm.name not in finished and ft.name in finished


def test_an_upload_is_kept_only_when_it_holds_text(workspace):
    with pytest.raises(BmcoreError, match="empty.txt has no text"):
        save_upload("empty.txt", b"\n\n  \n")
    assert not (workspace / UPLOADS_DIR).exists() or not any((workspace / UPLOADS_DIR).iterdir())
    path = save_upload("notes.txt", b"first note\n\nsecond note\n")
    assert path == workspace / UPLOADS_DIR / "notes.txt" and path.read_text() == "first note\n\nsecond note\n"
    assert save_upload("../escape.txt", b"text").parent == workspace / UPLOADS_DIR  # a path keeps its last part only


def metric_records(eval_losses: list[float], train_losses: list[float], every: int = 50, log: int = 10) -> list[dict]:
    """metrics.jsonl records as the training callback writes them: a train line every ``log`` steps (``train_losses``
    spread over the run), an eval line every ``every`` steps with ``eval_losses``."""
    total = every * len(eval_losses)
    steps = list(range(log, total + 1, log))
    out = []
    for k, step in enumerate(steps):
        loss = train_losses[min(len(train_losses) - 1, k * len(train_losses) // len(steps))]
        out.append({"kind": "train", "step": step, "total_steps": total, "epoch": round(step / every, 4), "loss": loss,
                    "learning_rate": 5e-5, "grad_norm": 1.2, "samples_per_s": 80.0, "tokens_per_s": 2000.0,
                    "elapsed_s": step * 0.5, "train_s": step * 0.5, "examples": step * 16, "tokens": step * 400,
                    "remaining_s": (total - step) * 0.5})
        if step % every == 0:
            out.append({"kind": "eval", "step": step, "epoch": round(step / every, 4), "elapsed_s": step * 0.5 + 1,
                        "train_s": step * 0.5, "examples": step * 16, "eval_loss": eval_losses[step // every - 1],
                        "eval_accuracy": 0.8, "eval_macro_f1": 0.78, "eval_runtime": 1.5,
                        "eval_samples_per_second": 100.0, "eval_steps_per_second": 6.0})
    return out


def test_overfitting_is_named_when_validation_loss_climbs_while_training_loss_falls():
    falling = [0.70, 0.50, 0.35, 0.20, 0.12, 0.08, 0.05, 0.03]
    # Validation loss doubles from its lowest (0.40 at step 100) while the training loss falls.
    records = metric_records([0.55, 0.40, 0.45, 0.80], falling)
    o = report.overfitting(records)
    assert (o["best_step"], o["best_loss"], o["step"], o["loss"]) == (100, 0.40, 200, 0.80)
    assert o["train_to"] < o["train_from"]
    note = report.overfitting_note(records)
    assert note.startswith("Overfitting: the validation loss rose from its lowest, 0.400 at step 100, to 0.800 at step 200")
    for advice in ("fewer epochs", "checkpoint kept", "add training examples", "lower the learning rate"):
        assert advice in note
    # Three rises in a row, below 1.5x the lowest, count too.
    rising = metric_records([0.50, 0.44, 0.46, 0.50, 0.55], falling)
    assert report.overfitting_note(rising).startswith(
        "Overfitting: the validation loss rose 3 evaluations in a row, from 0.440 at step 100 to 0.550 at step 250")
    # Not overfitting: both losses fall; validation rises only twice; both rise (a learning rate too high);
    # noise-sized rises (a random model's constant 0.6931 loss, as a real tiny run logs it).
    assert report.overfitting(metric_records([0.6, 0.5, 0.45, 0.44], falling)) is None
    assert report.overfitting(metric_records([0.5, 0.44, 0.46, 0.50], falling)) is None
    assert report.overfitting(metric_records([0.5, 0.4, 0.7, 0.9], [0.5, 0.6, 0.8, 1.2])) is None
    flat = [0.69313, 0.693131, 0.693132, 0.693134, 0.693136]
    assert report.overfitting(metric_records(flat, [0.693135, 0.693134, 0.693133])) is None
    assert report.overfitting([]) is None and report.overfitting(metric_records([0.4], falling)) is None


def test_overfitting_reads_damaged_and_resumed_records():
    records = metric_records([0.55, 0.40, 0.45, 0.80], [0.7, 0.5, 0.3, 0.1])
    # A visitor may have written metrics.jsonl: odd values are skipped, never a crash or markup in the note.
    damaged = [*records, "x", {"kind": "eval", "step": "<b>", "eval_loss": 9.0}, {"kind": "eval", "step": 500,
               "eval_loss": float("nan")}, {"kind": "eval", "step": True, "eval_loss": 1.0}, {"step": 600, "loss": None}]
    assert report.overfitting_note(damaged) == report.overfitting_note(records)
    # A resumed run logs some steps twice: the later line wins (here the validation loss then went back down).
    resumed = [*records, {**records[-1], "eval_loss": 0.39}]
    assert report.overfitting(resumed) is None


def test_missed_note_asks_the_run_s_task_and_survives_a_damaged_eval_json():
    matrix = [[50, 0, 1], [2, 40, 0], [8, 1, 0]]
    test = {"confusion_matrix": matrix, "labels": ["a", "b", "<b>rare</b>"]}  # eval.json's shape
    assert report.missed_note(None, test).startswith("Class <b>rare</b> (0 of 9 test examples)")  # plain text: pages md() it
    per_class = {"a": {"support": 4, "recall": 0.0, "f1": 0.0}, "b": {"support": 3, "recall": 1.0, "f1": 1.0}}
    assert report.missed_note("multi_label_classification", {"per_class": per_class}).startswith("1 of 2 labels is never")
    for problem_type, metrics in (("no-such-task", test), (None, "x"), (None, None), (None, {}), (None, {"labels": 3})):
        assert report.missed_note(problem_type, metrics) == ""
