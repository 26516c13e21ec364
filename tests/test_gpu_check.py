"""scripts/gpu_check.sh and scripts/gpu_report.py, as far as a machine without a GPU can check them: the plan, the
one-line refusal without CUDA, the report from real bench JSON and a real run folder, and test_cuda.py skipping."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SHARED_DATA
from test_train import tiny_config

from bmcore import runs

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
REPORT = ROOT / "scripts" / "gpu_report.py"
STORED_BENCH = ROOT / "bench" / "results-2026-11-28-evening.json"


def sh(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def render(directory: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, str(REPORT), "render", "--dir", str(directory), *args,
                          "--out", str(directory / "report.md")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return (directory / "report.md").read_text()


def test_dry_run_prints_the_plan_and_exits_0(tmp_path):
    out = sh("--dry-run", "--out", str(tmp_path / "check"), "--skip", "tests")
    assert out.returncode == 0, out.stderr
    plan = out.stdout
    for step in ("1 detect", "2 install", "3 tests   (120 s) SKIPPED", "4 bench", "5 sst2", "6 report"):
        assert step in plan, plan
    assert "bench --quick" in plan and "--num-train-epochs 1" in plan and str(tmp_path / "check") in plan
    budget = int(re.search(r"budget (\d+) s", plan).group(1))
    assert budget < 8 * 60 and sum(int(s) for s in re.findall(r"\((\d+) s\)", plan)) <= budget + 30
    assert not (tmp_path / "check").exists()  # a dry run writes nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_exits_2_with_one_line(tmp_path):
    out = sh("--out", str(tmp_path / "check"))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == ["gpu_check: no CUDA device here (torch.cuda.is_available() is False); "
                                               "run this on a machine with an NVIDIA GPU"]
    assert not (tmp_path / "check").exists()


@pytest.mark.parametrize("args, message", [
    (["--skip", "lint"], "--skip takes tests, bench or sst2, not lint"),
    (["--max-steps", "0"], "--max-steps needs a positive whole number"),
    (["--data", "/no/such/folder"], "--data /no/such/folder has no train.csv"),
    (["--frobnicate"], "unknown argument --frobnicate"),
])
def test_bad_arguments_exit_2_with_one_line(args, message):
    out = sh(*args, "--dry-run")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and message in out.stderr


@pytest.mark.slow
def test_cuda_tests_collect_and_skip_cleanly_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: gpu_check.sh runs them")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rs",
                          "tests/test_cuda.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    assert re.search(r"\b5 skipped\b", out.stdout) and "needs a CUDA device" in out.stdout
    assert "error" not in out.stdout.lower() and "passed" not in out.stdout


def test_report_from_the_stored_bench_results(tmp_path):
    bench = json.loads(STORED_BENCH.read_text())
    text = render(tmp_path, "--bench", str(STORED_BENCH))
    peaks = bench["training"]["peak_flops"]
    assert f"| bf16 | {peaks['bf16'] / 1e9:.0f} GFLOP/s |" in text
    for kind in ("short", "long"):
        for recipe, r in bench["training"][kind].items():
            vs_bf16 = r["mfu"] * peaks[r["precision"]] / peaks["bf16"]
            assert f"| {recipe} | {r['precision']} |" in text
            row = next(line for line in text.splitlines() if line.startswith(f"| {recipe} | {r['precision']} |")
                       and f"{r['samples_per_s']:.1f}" in line)
            assert f"| {r['mfu']:.1%} | {vs_bf16:.1%} |" in row
    inf = bench["inference"]
    assert f"| one prediction p50 | {inf['predict_p50_ms']:.1f} ms | {inf['pipeline_p50_ms']:.1f} ms |" in text
    assert "not recorded (no steps.tsv)" in text and "not run or not finished (no tests.xml)" in text and "not run (no run folder)" in text


@pytest.fixture(scope="module")
def tiny_bench() -> Path:
    """A real ``bench`` JSON measured on this kind of machine (the full run of 2026-11-28, stored in bench/): the
    bench itself is covered by tests/test_bench.py; here only its rendering is."""
    return ROOT / "bench" / "results-2026-11-28-evening.json"


@pytest.mark.slow
def test_report_from_a_real_bench_run_and_a_finished_run_folder(tiny_model, tiny_bench, bbc_small, tmp_path):
    from bmcore.train import run_training

    run_dir = runs.create_run(tiny_config(tiny_model, bbc_small, max_steps=10, eval_steps=5), "tiny-epoch")
    assert run_training(run_dir)["state"] == runs.COMPLETED
    check = tmp_path / "check"
    check.mkdir()
    (check / "steps.tsv").write_text("step\trc\tseconds\ttimeout\tlog\n" "tests\tskipped\t0\t0\t-\n"
                                     f"bench\t0\t41\t130\t-\nsst2\t124\t120\t120\t{tmp_path / 'sst2.log'}\n")
    (tmp_path / "sst2.log").write_text("step 1 of 500\n<b>cut off</b> | at *120 s*\n")
    text = render(check, "--bench", str(tiny_bench), "--run", str(run_dir), "--data", "builtin:bbc-news")
    bench = json.loads(tiny_bench.read_text())
    peak = bench["training"]["peak_flops"]
    mfu_peak = peak.get("bf16") or None
    rows = bench["training"]["short"]
    assert f"{rows['bmcore']['samples_per_s']:.1f}" in text and "| seed | fp32 | 32 |" in text
    assert "| sst2 | timed out (120 s) | 120 | 120 |" in text and "| tests | skipped |" in text
    assert "~~~~\nstep 1 of 500\n<b>cut off</b> | at *120 s*\n~~~~" in text  # the log tail as code, not Markdown
    summary = json.loads((check / "sst2-run.json").read_text())
    evals = json.loads((run_dir / runs.EVAL_FILE).read_text())
    train = [m for m in runs.read_metrics(run_dir) if m["kind"] == "train"][-1]
    assert summary["state"] == "completed" and summary["steps"] == 10
    assert summary["validation_accuracy"] == evals["validation"]["accuracy"] and summary["test_n"] == evals["test"]["n"]
    assert summary["samples_per_s"] == pytest.approx(train["examples"] / train["train_s"])
    assert f"| dev accuracy (validation split) | {evals['validation']['accuracy']:.4f} (n {evals['validation']['n']}) |" in text
    assert f"| test accuracy (held-out split) | {evals['test']['accuracy']:.4f} |" not in text  # n follows it
    assert f"| test accuracy (held-out split) | {evals['test']['accuracy']:.4f} (n {evals['test']['n']}) |" in text
    if mfu_peak:  # a CPU with bf16 (this one): the epoch's MFU is stated against bench's bf16 peak
        assert summary["mfu_vs_bf16_peak"] == pytest.approx(summary["train_flops_per_s"] / mfu_peak)
        assert f"| MFU vs bf16 peak | {summary['mfu_vs_bf16_peak']:.1%} |" in text


def test_report_cells_show_text_not_markdown():
    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_report import cell, code

    assert cell("<b>x</b> | *y* `z`\nnext") == "\\<b\\>x\\</b\\> \\| \\*y\\* \\`z\\` next"
    assert code("a\n~~~~\nb").startswith("~~~~~\n") and code("a\n~~~~\nb").endswith("\n~~~~~")


def test_bench_reads_sst2_from_the_folder_the_check_carries(tmp_path):
    """gpu_check.sh points BMCORE_SST2_DIR at the SST-2 it unpacked: bench's texts come from there."""
    import pandas as pd

    if not (SHARED_DATA / "sst2" / "dev.csv").is_file():
        pytest.skip("../shared/data is not present")
    pd.read_csv(SHARED_DATA / "sst2" / "dev.csv").tail(5).to_csv(tmp_path / "dev.csv", index=False)
    out = subprocess.run([sys.executable, "-c", "import json; from bmcore.bench.texts import sentences; print(json.dumps(sentences()))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "BMCORE_SST2_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    texts, labels, _ = json.loads(out.stdout.strip().splitlines()[-1])
    expected = pd.read_csv(tmp_path / "dev.csv")
    assert texts == expected["text"].astype(str).tolist() and labels == expected["label"].astype(str).tolist()
