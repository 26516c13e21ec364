"""The benchmark runs and reports its ratios (speed itself is never asserted in a test)."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def test_bench_quick_inference_prints_the_summary_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bmcore", "bench", "--quick", "--only", "inference",
                          "--json-out", str(tmp_path / "bench.json")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"predict_p50_vs_pipeline", "batch_predict_vs_pipeline", "explain_p50_ms"} <= set(summary)
    assert "one prediction" in out.stdout and "pipeline" in out.stdout
    full = json.loads((tmp_path / "bench.json").read_text())
    assert round(full["inference"]["predict_p50_vs_pipeline"], 3) == summary["predict_p50_vs_pipeline"]
