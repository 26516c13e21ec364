"""Issue 29's bar: does a search pay on small data? ``python -m bmcore tune`` on emotion cut to 2,000 training rows.

Builds ``emotion-2000`` in the workspace: 2,000 training rows drawn stratified (seed 0) from ../shared/data/emotion's
train split, with its official validation and test splits (2,000 rows each) unchanged. Runs a search with every
default (``--budget``, default 20m; the built-in model unless --models), then scores trial 0 (every default, the run
a user gets without a search) on the test split as well, for the comparison only, and prints the trial table and the
two test figures side by side. Writes the summary as JSON to --out.

    BMCORE_WORKSPACE=/tmp/search29 OMP_NUM_THREADS=2 python scripts/search_small_data.py --budget 20m \
        --out bench/search-emotion-2000.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = next((p for p in (ROOT.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), Path("/work/shared/data"))


def build(folder: Path, n: int, seed: int) -> str:
    from sklearn.model_selection import train_test_split

    from bmcore.data import is_prepared

    name = f"emotion-{n}"
    if is_prepared(name):
        return name
    train = pd.read_csv(DATA / "emotion" / "train.csv", keep_default_na=False)
    cut, _ = train_test_split(train, train_size=n, stratify=train["label"], random_state=seed)
    folder.mkdir(parents=True, exist_ok=True)
    cut.to_csv(folder / "train.csv", index=False)
    pd.read_csv(DATA / "emotion" / "val.csv", keep_default_na=False).to_csv(folder / "validation.csv", index=False)
    pd.read_csv(DATA / "emotion" / "test.csv", keep_default_na=False).to_csv(folder / "test.csv", index=False)
    subprocess.run([sys.executable, "-m", "bmcore", "data", "prepare", str(folder), "--name", name], check=True, cwd=ROOT)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--models", default="")
    parser.add_argument("--study", default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from bmcore import runs, studies
    from bmcore.train import score_test
    from bmcore.workspace import workspace_dir

    name = build(workspace_dir() / "sources" / f"emotion-{args.rows}", args.rows, 0)
    study = args.study or f"{name}-{time.strftime('%H%M')}"
    cmd = [sys.executable, "-m", "bmcore", "tune", "--data", name, "--budget", args.budget, "--study", study]
    if args.models:
        cmd += ["--models", args.models]
    t0 = time.time()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(out.stdout[-6000:], out.stderr[-2000:], sep="\n", flush=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    metric = summary["metric"]
    defaults_run = runs.runs_dir() / f"{study}-t0"
    defaults_test = score_test(defaults_run)["test"][metric]
    rows = studies.trial_table(study)
    print(f"\n| trial | outcome | validation {metric} | seconds | settings |\n|---|---|---|---|---|")
    for r in rows:
        value = f"{r['value']:.4f}" if r["value"] is not None else (f"({r['last_value']:.4f})" if r["last_value"] is not None else "")
        shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["params"].items() if k != "model")
        print(f"| {r['trial']} | {r['outcome'] or r['state']} | {value} | {r['seconds'] or ''} | {'defaults' if r['defaults'] else shown} |")
    gain = summary["best_test"] - defaults_test
    print(f"\nbest trial {summary['best_trial']}: validation {summary['best_validation']:.4f}, test {summary['best_test']:.4f}; "
          f"defaults (trial 0): test {defaults_test:.4f}; gain {gain:+.4f} test {metric}; wall {time.time() - t0:.0f} s")
    print(summary["bought"])
    if args.out:
        args.out.write_text(json.dumps({**summary, "defaults_test": defaults_test, "gain": gain, "table": rows,
                                        "wall_s": round(time.time() - t0, 1)}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
