"""Does a rare class survive the default fine-tune? Emotion with `surprise` cut to a rare share, trained per class-weight mode.

Builds `emotion-rare` from ../shared/data/emotion: a sample of train with the rare class cut to --rare-share of the
rows (the official validation and test splits unchanged), then runs `python -m bmcore train` once per mode in
--modes with every other setting at its default, and prints each run's test recall per class, macro F1 and the
TF-IDF baseline's macro F1 on the same split.

    BMCORE_WORKSPACE=/tmp/imb python scripts/imbalance_experiment.py --modes none sqrt balanced
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bmcore import data as bdata  # noqa: E402
from bmcore.workspace import runs_dir  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "emotion"


def build(rows: int, rare: str, share: float, seed: int) -> str:
    train = pd.read_csv(DATA / "train.csv")
    n_rare = max(1, round(rows * share))
    rest = train[train["label"] != rare].sample(rows - n_rare, random_state=seed)
    sub = pd.concat([rest, train[train["label"] == rare].sample(n_rare, random_state=seed)]).sample(frac=1, random_state=seed)
    frames = {"train": sub, "validation": pd.read_csv(DATA / "val.csv"), "test": pd.read_csv(DATA / "test.csv")}
    name = f"emotion-rare-{rows}"
    bdata.save_prepared(bdata.prepare(bdata.RawData(name, frames), name, use_source_splits=True, seed=seed))
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["none", "sqrt", "balanced"])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rare", default="surprise")
    parser.add_argument("--rare-share", type=float, default=0.016)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train flags for every run")
    args = parser.parse_args()
    name = build(args.rows, args.rare, args.rare_share, args.seed)
    rows = []
    for mode in args.modes:
        out = runs_dir() / f"{name}-{mode}-{time.strftime('%H%M%S')}"
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "bmcore", "train", "--data", name, "--class-weights", mode,
                               "--seed", str(args.seed), "--out", str(out), *args.extra],
                              cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-2000:])
            continue
        m = json.loads((out / "evaluation" / "test" / "metrics.json").read_text())
        recall = {k: round(v["recall"], 3) for k, v in m["per_class"].items()}
        rows.append({"mode": mode, "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
                     "baseline_macro_f1": round(m["baseline"]["macro_f1"], 4), f"recall_{args.rare}": recall[args.rare],
                     "min_recall": min(recall.values()), "seconds": round(time.time() - t0)})
        print(json.dumps(rows[-1]), flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
