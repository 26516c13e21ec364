"""Few labels on emotion: few-shot training against today's fine-tuning defaults and logistic regression on frozen
embeddings, on the same k examples per class (issue 30's bar).

For each k in --per-class and each seed: k training rows per class drawn from ../shared/data/emotion's train split
with the seed, a seeded sample of --validation rows of the official validation split (fine-tuning keeps its best
epoch on it; few-shot does not use it), and the official test split (2,000 rows). Three models, test accuracy and
seconds each:

* ``python -m bmcore train --data D --few-shot`` (SetFit, bmcore's defaults);
* ``python -m bmcore train --data D`` (fine-tuning, every default: the small-data rule sets the epochs);
* logistic regression (scikit-learn defaults, max_iter 1000) on frozen builtin:minilm embeddings (mean-pooled,
  normalised: bmcore.quality.features.embed_texts).

Writes bench/few-shot-emotion-DATE.{md,json}. Usage: python scripts/few_shot_small_data.py [--per-class 8,16]
[--seeds 0,1,2] [--validation 300]. Run it on a quiet machine: the seconds are reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = next((p for p in (ROOT.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), Path("/work/shared/data")) / "emotion"


def build(ws: Path, k: int, seed: int, validation: int) -> str:
    """Prepare emotion with k training rows per class as ``emo-k{k}-s{seed}`` in workspace ``ws``."""
    name = f"emo-k{k}-s{seed}"
    folder = ws.parent / name
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(DATA / "train.csv", keep_default_na=False)
    train.groupby("label").sample(n=k, random_state=seed).to_csv(folder / "train.csv", index=False)
    val = pd.read_csv(DATA / "val.csv", keep_default_na=False)
    val.sample(n=validation, random_state=seed).to_csv(folder / "validation.csv", index=False)
    shutil.copy(DATA / "test.csv", folder / "test.csv")
    subprocess.run([sys.executable, "-m", "bmcore", "data", "prepare", str(folder), "--name", name], check=True, cwd=ROOT,
                   capture_output=True)
    return name


def train(ws: Path, dataset: str, run: str, *flags: str) -> tuple[float, float]:
    """Test accuracy and seconds (the run's own start to end) of one ``bmcore train`` run."""
    run_dir = ws / "runs" / run
    done = subprocess.run([sys.executable, "-m", "bmcore", "train", "--data", dataset, "--out", str(run_dir), *flags],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{run} failed: {done.stderr[-2000:]}")
    status = json.loads((run_dir / "status.json").read_text())
    return float(status["test_accuracy"]), float(status["ended_ts"]) - float(status["started_ts"])


def frozen(ws: Path, dataset: str, names: bool = False) -> tuple[float, float]:
    """Logistic regression on frozen builtin:minilm embeddings: test accuracy and seconds. ``names``: with the
    class-name examples few-shot training adds (bmcore.fewshot.NAME_EXAMPLES of each), for a fair comparison."""
    from sklearn.linear_model import LogisticRegression

    from bmcore.data import load_prepared
    from bmcore.fewshot import NAME_EXAMPLES, NAME_TEMPLATE
    from bmcore.quality.features import embed_texts

    ds = load_prepared(dataset)
    t0 = time.time()
    texts, labels = ds.splits["train"]["text"].astype(str).tolist(), ds.splits["train"]["label"].astype(str).tolist()
    if names:
        texts += [NAME_TEMPLATE.format(n) for n in ds.label_names for _ in range(NAME_EXAMPLES)]
        labels += [str(n) for n in ds.label_names for _ in range(NAME_EXAMPLES)]
    x_train = embed_texts("builtin:minilm", texts)
    x_test = embed_texts("builtin:minilm", ds.splits["test"]["text"].astype(str).tolist())
    clf = LogisticRegression(max_iter=1000).fit(x_train, labels)
    accuracy = float(np.mean(clf.predict(x_test) == ds.splits["test"]["label"].astype(str).to_numpy()))
    return accuracy, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", default="8,16")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--validation", type=int, default=300)
    ap.add_argument("--rows", help="a JSON-lines file of finished results: kept, appended to, and not run again")
    ap.add_argument("--baselines", help="a bench JSON of an earlier run: its fine-tuning and frozen-embedding figures "
                                        "for the same draws are taken, not run again (their code did not change)")
    ap.add_argument("--tag", default="", help="a word in the output's name (bench/few-shot-emotion[-TAG]-DATE)")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="few-shot-bench-"))
    ws = scratch / "workspace"
    ws.mkdir()
    os.environ.update(BMCORE_WORKSPACE=str(ws), HF_HUB_OFFLINE="1")
    done = Path(args.rows) if args.rows else None
    rows = [json.loads(line) for line in done.read_text().splitlines() if line.strip()] if done and done.exists() else []
    earlier = {(r["per_class"], r["seed"]): r for r in json.loads(Path(args.baselines).read_text())} if args.baselines else {}
    try:
        for k in [int(v) for v in args.per_class.split(",")]:
            for seed in [int(v) for v in args.seeds.split(",")]:
                if any(r["per_class"] == k and r["seed"] == seed for r in rows):
                    continue
                dataset = build(ws, k, seed, args.validation)
                old = earlier.get((k, seed))
                lr = (old["frozen_lr"], old["frozen_lr_s"]) if old else frozen(ws, dataset)
                lr_names = frozen(ws, dataset, names=True)
                few = train(ws, dataset, f"few-{dataset}", "--few-shot", "--seed", str(seed))
                tuned = (old["fine_tune"], old["fine_tune_s"]) if old else train(ws, dataset, f"ft-{dataset}", "--seed", str(seed))
                rows.append({"per_class": k, "seed": seed, "few_shot": few[0], "few_shot_s": few[1],
                             "fine_tune": tuned[0], "fine_tune_s": tuned[1], "frozen_lr": lr[0], "frozen_lr_s": lr[1],
                             "frozen_lr_names": lr_names[0], "baselines_from": args.baselines if old else None})
                print(json.dumps(rows[-1]), flush=True)
                if done:
                    with done.open("a") as f:
                        f.write(json.dumps(rows[-1]) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write(rows, args)


def write(rows: list[dict], args: argparse.Namespace) -> None:
    df = pd.DataFrame(rows)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    today = datetime.date.today().isoformat()
    if "frozen_lr_names" not in df:
        df["frozen_lr_names"] = np.nan
    reused = sorted({r["baselines_from"] for r in rows if r.get("baselines_from")})
    lines = [f"# scripts/few_shot_small_data.py, {today} (checkout {head}, {os.cpu_count()} cores)", "",
             f"Emotion, k training rows per class (seeded), {args.validation} validation rows, the official test split "
             "(2,000 rows). Test accuracy; seconds from the run's start to its end (scoring included). The last column: "
             "logistic regression on frozen embeddings with the class-name examples few-shot training adds."
             + (f" Fine-tuning and frozen-embedding figures taken from {', '.join(reused)} (same draws, same code)."
                if reused else ""), "",
             "| per class | seed | few-shot | s | fine-tuning defaults | s | LR on frozen embeddings | s | LR frozen + names |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.per_class} | {r.seed} | {r.few_shot:.4f} | {r.few_shot_s:.0f} | {r.fine_tune:.4f} | "
              f"{r.fine_tune_s:.0f} | {r.frozen_lr:.4f} | {r.frozen_lr_s:.0f} | {r.frozen_lr_names:.4f} |"
              for r in df.itertuples()]
    lines += ["", "| per class | few-shot (mean) | fine-tuning | LR frozen | few-shot minus the better other |", "|---|---|---|---|---|"]
    for k, g in df.groupby("per_class"):
        few, tuned, lr = g.few_shot.mean(), g.fine_tune.mean(), g.frozen_lr.mean()
        lines.append(f"| {k} | {few:.4f} | {tuned:.4f} | {lr:.4f} | {100 * (few - max(tuned, lr)):+.1f} points |")
    out = ROOT / "bench" / f"few-shot-emotion{'-' + args.tag if args.tag else ''}-{today}"
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
