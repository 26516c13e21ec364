"""The figures of scripts/gpu_check.sh: ``env`` records the machine, ``render`` writes the Markdown report.

    python scripts/gpu_report.py env --out env.json
        device, versions, and the matmul peak at 8192^3 timed with CUDA events (bench's own peak stops at 2048^3,
        which on a large GPU measures launch overhead as much as the tensor cores)
    python scripts/gpu_report.py render --dir DIR [--run RUN_DIR] [--data SOURCE] [--bench FILE] --out report.md
        DIR holds what gpu_check.sh wrote (env.json, steps.tsv, tests.xml, bench.json), each optional; RUN_DIR is
        the SST-2 run folder, summarised into DIR/sst2-run.json. MFU is stated against the bf16 peak.

Text that comes from data, logs or errors is written as code or escaped, never as Markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEAK_N = 8192


def matmul_peak_cuda(dtype: Any, n: int = PEAK_N, warmup: int = 3, timed: int = 10) -> float:
    """FLOP/s of an n x n x n matmul on random data: the mean of ``timed`` products after ``warmup``, CUDA events."""
    import torch

    a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
    for _ in range(warmup):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(timed):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * timed / (start.elapsed_time(end) / 1000)


def environment() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "python": platform.python_version(),
                           "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cuda_available": torch.cuda.is_available(), "gpus": torch.cuda.device_count()}
    for mod in ("transformers", "accelerate"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    if not torch.cuda.is_available():
        env["device"] = f"CPU ({platform.processor() or platform.machine()})"
        return env
    props = torch.cuda.get_device_properties(0)
    env.update(device=torch.cuda.get_device_name(0), capability=f"{props.major}.{props.minor}",
               memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
               cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
    try:
        env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        env["driver"] = None
    env["peak_n"] = PEAK_N
    env["peak_flops"] = {name: matmul_peak_cuda(dtype) for name, dtype in
                         (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32))}
    return env


# --- rendering ---------------------------------------------------------------------------------------------


def cell(value: Any) -> str:
    """A table cell that shows ``value`` as text: no Markdown, HTML or line breaks survive."""
    text = " ".join(str(value).split())
    for ch in "\\`*_[]<>|#~$":
        text = text.replace(ch, "\\" + ch)
    return text


def code(text: str) -> str:
    """A fenced block that no content can close early."""
    fence = "~" * max(4, max((len(run) for run in text.split() if set(run) == {"~"}), default=0) + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tflops(x: float | None) -> str:
    return "-" if not x else f"{x / 1e12:.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:.0f} GFLOP/s"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def steps_section(path: Path) -> list[str]:
    if not path.is_file():
        return ["## Steps", "", "not recorded (no steps.tsv)"]
    lines = ["## Steps", "", "| step | result | seconds | timeout |", "| --- | --- | ---: | ---: |"]
    tails = []
    for row in path.read_text(encoding="utf-8").splitlines()[1:]:
        name, rc, secs, limit, log = (row.split("\t") + [""] * 5)[:5]
        result = "ok" if rc == "0" else "skipped" if rc == "skipped" else \
            f"timed out ({limit} s)" if rc in ("124", "137") else f"FAILED (exit {rc})"
        lines.append(f"| {cell(name)} | {result} | {secs} | {limit} |")
        if rc not in ("0", "skipped") and log and Path(log).is_file():
            tail = "\n".join(Path(log).read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
            tails += ["", f"Last lines of `{cell(name)}`:", "", code(tail)]
    return lines + tails


def tests_section(path: Path) -> list[str]:
    if not path.is_file():
        return ["## CUDA tests (tests/test_cuda.py)", "", "not run or not finished (no tests.xml)"]
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return ["## CUDA tests (tests/test_cuda.py)", "", f"tests.xml unreadable: {cell(exc)}"]
    cases = list(root.iter("testcase"))
    rows, counts = [], {"passed": 0, "failed": 0, "skipped": 0}
    for case in cases:
        outcome, note = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                note = (el.get("message") or el.text or "").strip().splitlines()[0][:200] if (el.get("message") or el.text) else ""
                break
        counts[outcome] += 1
        rows.append(f"| {cell(case.get('name'))} | {outcome} | {float(case.get('time') or 0):.1f} | {cell(note)} |")
    return ["## CUDA tests (tests/test_cuda.py)", "",
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped", "",
            "| test | result | seconds | note |", "| --- | --- | ---: | --- |", *rows]


def bf16_peak(env: dict[str, Any] | None, bench: dict[str, Any] | None) -> tuple[float | None, str]:
    """The bf16 peak MFU is stated against: the 8192^3 one from env.json, else bench's own."""
    if env and (env.get("peak_flops") or {}).get("bf16"):
        return env["peak_flops"]["bf16"], f"bf16 matmul {PEAK_N}x{PEAK_N}x{PEAK_N}, CUDA events"
    peaks = ((bench or {}).get("training") or {}).get("peak_flops") or {}
    if peaks.get("bf16"):
        n = (((bench or {}).get("training") or {}).get("peak") or {}).get("bf16", {}).get("n")
        return peaks["bf16"], f"bench's bf16 matmul peak{f' ({n}x{n})' if n else ''}"
    return None, "no bf16 peak measured"


def bench_section(bench: dict[str, Any] | None, env: dict[str, Any] | None) -> list[str]:
    if not bench:
        return ["## bench --quick", "", "not run or not finished (no bench.json)"]
    out = ["## bench --quick"]
    tr = bench.get("training") or {}
    peak, where = bf16_peak(env, bench)
    own = tr.get("peak_flops") or {}
    big = (env or {}).get("peak_flops") or {}
    out += ["", "Matmul peaks (the denominators of MFU):", "", f"| precision | bench's peak | {PEAK_N}^3 peak (CUDA events) |",
            "| --- | ---: | ---: |"]
    for p in sorted(set(own) | set(big)):
        n = (tr.get("peak") or {}).get(p, {}).get("n")
        out.append(f"| {p} | {tflops(own.get(p))}{f' ({n}^3)' if n else ''} | {tflops(big.get(p))} |")
    out += ["", f"MFU vs bf16 peak: achieved FLOP/s over {tflops(peak)} ({where}); "
            "MFU (own): over bench's peak of the recipe's own precision, as bench prints it."]
    for kind in ("short", "long"):
        rows = tr.get(kind)
        if not rows:
            continue
        out += ["", f"Training, {kind} texts:", "",
                "| recipe | precision | examples/step | samples/s | tokens/s | MFU (own) | MFU vs bf16 peak | peak RSS |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for recipe, r in rows.items():
            achieved = r["mfu"] * own[r["precision"]] if own.get(r.get("precision")) else None
            out.append(f"| {cell(recipe)} | {r.get('precision', '-')} | {r.get('examples_per_step', 32):.0f} | "
                       f"{r['samples_per_s']:.1f} | {r['tokens_per_s']:.0f} | {pct(r.get('mfu'))} | "
                       f"{pct(achieved / peak if achieved and peak else None)} | {r.get('peak_rss_mb', 0):.0f} MB |")
        ours = rows.get("bmcore", {}).get("samples_per_s")
        if ours:
            out.append("")
            out.append("bmcore vs " + ", ".join(f"{cell(k)} {ours / v['samples_per_s']:.2f}x" for k, v in rows.items()
                                               if k != "bmcore" and v.get("samples_per_s")))
    inf = bench.get("inference")
    if inf:
        out += ["", f"Inference ({cell(inf.get('texts', ''))}, {inf.get('precision', '-')}):", "",
                "| measure | bmcore | pipeline | ratio |", "| --- | ---: | ---: | ---: |",
                f"| one prediction p50 | {inf['predict_p50_ms']:.1f} ms | {inf['pipeline_p50_ms']:.1f} ms | "
                f"{inf['pipeline_p50_ms'] / inf['predict_p50_ms']:.2f}x |",
                f"| one prediction p95 | {inf['predict_p95_ms']:.1f} ms | {inf['pipeline_p95_ms']:.1f} ms | |",
                f"| batch | {inf['batch_texts_per_s']:.0f} texts/s | {inf['pipeline_texts_per_s']:.0f} texts/s | "
                f"{inf['batch_texts_per_s'] / inf['pipeline_texts_per_s']:.2f}x |",
                f"| explain p50 | {inf['explain_p50_ms']:.0f} ms | | |"]
    return out


def run_summary(run_dir: Path, peak: float | None) -> dict[str, Any] | None:
    """The figures of one finished (or failed) run folder."""
    from bmcore import runs

    status = read_json(run_dir / runs.STATUS_FILE)
    if status is None:
        return None
    config = read_json(run_dir / runs.CONFIG_FILE) or {}
    train = [m for m in runs.read_metrics(run_dir) if m.get("kind") == "train"]
    evals = read_json(run_dir / runs.EVAL_FILE) or {}
    out: dict[str, Any] = {"state": status.get("state"), "error": status.get("error"), "precision": status.get("precision"),
                           "world_size": status.get("world_size"), "model": config.get("model_name_or_path"),
                           "dataset": config.get("dataset")}
    if status.get("started_ts") and status.get("ended_ts"):
        out["job_s"] = status["ended_ts"] - status["started_ts"]
    if train:
        last = train[-1]
        out.update(steps=last.get("step"), epoch=last.get("epoch"), examples=last.get("examples"), tokens=last.get("tokens"),
                   train_s=last.get("train_s"), final_loss=last.get("loss"))
        if last.get("train_s") and last.get("examples"):
            out["samples_per_s"] = last["examples"] / last["train_s"]
            if last.get("tokens"):
                out["tokens_per_s"] = last["tokens"] / last["train_s"]
                try:
                    from bmcore.bench.peak import train_flops_per_token
                    from bmcore.models import load_config

                    per_token = train_flops_per_token(load_config(config["model_name_or_path"]), last["tokens"] / last["examples"])
                    out["train_flops_per_s"] = out["tokens_per_s"] * per_token
                    if peak:
                        out["mfu_vs_bf16_peak"] = out["train_flops_per_s"] / peak
                except Exception as exc:  # the model is needed for its shape; the other figures stand without it
                    out["mfu_error"] = f"{exc.__class__.__name__}: {exc}"
    for split in ("validation", "test"):
        if isinstance(evals.get(split), dict):
            out[f"{split}_accuracy"] = evals[split].get("accuracy")
            out[f"{split}_n"] = evals[split].get("n")
    return out


def sst2_section(summary: dict[str, Any] | None, step_s: str | None, data: str | None) -> list[str]:
    head = ["## The SST-2 epoch (python -m bmcore train --num-train-epochs 1)", ""]
    if summary is None:
        return [*head, "not run (no run folder)"]

    def num(key: str, fmt: str) -> str:
        v = summary.get(key)
        return "-" if v is None else format(v, fmt)

    rows = [("data", cell(data or summary.get("dataset") or "-")), ("model", cell(summary.get("model") or "-")),
            ("state", cell(summary.get("state")) + (f" ({cell(summary['error'])})" if summary.get("error") else "")),
            ("precision", cell(summary.get("precision") or "-")),
            ("wall time of the command", f"{step_s} s" if step_s else "-"), ("job time (start to end)", num("job_s", ".1f") + " s"),
            ("training time (evaluations excluded)", num("train_s", ".1f") + " s"),
            ("steps / examples / epochs", f"{num('steps', 'd')} / {num('examples', 'd')} / {num('epoch', '.2f')}"),
            ("samples/s (training)", num("samples_per_s", ".0f")), ("real tokens/s (training)", num("tokens_per_s", ".0f")),
            ("MFU vs bf16 peak", pct(summary.get("mfu_vs_bf16_peak"))),
            ("dev accuracy (validation split)", num("validation_accuracy", ".4f") + f" (n {num('validation_n', 'd')})"),
            ("test accuracy (held-out split)", num("test_accuracy", ".4f") + f" (n {num('test_n', 'd')})")]
    return [*head, "| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]


def render(directory: Path, run_dir: Path | None, data: str | None, bench_path: Path | None) -> str:
    env = read_json(directory / "env.json")
    bench = read_json(bench_path or directory / "bench.json")
    peak, _ = bf16_peak(env, bench)
    summary = run_summary(run_dir, peak) if run_dir and run_dir.is_dir() else None
    if summary is not None:
        (directory / "sst2-run.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    elif (directory / "sst2-run.json").is_file():
        summary = read_json(directory / "sst2-run.json")
    step_s = None
    if (directory / "steps.tsv").is_file():
        for row in (directory / "steps.tsv").read_text(encoding="utf-8").splitlines()[1:]:
            parts = row.split("\t")
            if parts[0] == "sst2" and len(parts) > 2 and parts[1] != "skipped":
                step_s = parts[2]
    lines = ["# bmcore GPU check", ""]
    if env:
        gpu = cell(env.get("device"))
        if env.get("gpus", 0) > 1:
            gpu += f" x{env['gpus']}"
        extra = ", ".join(x for x in (f"{env['memory_gib']} GiB" if env.get("memory_gib") else "",
                                      f"compute capability {env['capability']}" if env.get("capability") else "",
                                      f"driver {cell(env['driver'])}" if env.get("driver") else "") if x)
        lines += [f"- date: {cell(env.get('date'))}", f"- device: {gpu}" + (f" ({extra})" if extra else ""),
                  f"- python {cell(env.get('python'))}, torch {cell(env.get('torch'))}, CUDA {cell(env.get('cuda') or '-')}, "
                  f"cuDNN {cell(env.get('cudnn') or '-')}, transformers {cell(env.get('transformers') or '-')}, "
                  f"accelerate {cell(env.get('accelerate') or '-')}"]
    else:
        lines.append("- environment: not recorded (no env.json)")
    if bench and not env:
        tr = bench.get("training") or {}
        lines.append(f"- bench precision: {cell(tr.get('precision') or '-')}")
    lines += ["", *steps_section(directory / "steps.tsv"), "", *tests_section(directory / "tests.xml"), "",
              *bench_section(bench, env), "", *sst2_section(summary, step_s, data), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("env", help="record the device, versions and the matmul peak")
    e.add_argument("--out", required=True)
    r = sub.add_parser("render", help="write the Markdown report")
    r.add_argument("--dir", required=True, help="the folder gpu_check.sh wrote (env.json, steps.tsv, tests.xml, bench.json)")
    r.add_argument("--run", help="the SST-2 run folder")
    r.add_argument("--data", help="the data source of that run, as shown")
    r.add_argument("--bench", help="a bench JSON (default DIR/bench.json)")
    r.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "env":
        env = environment()
        Path(args.out).write_text(json.dumps(env, indent=1), encoding="utf-8")
        print(json.dumps(env))
        return 0
    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"gpu_report: {args.dir} is not a folder", file=sys.stderr)
        return 2
    text = render(directory, Path(args.run) if args.run else None, args.data, Path(args.bench) if args.bench else None)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
