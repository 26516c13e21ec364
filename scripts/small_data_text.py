"""Small data, text (issue 27): builtin:minilm with every default against TF-IDF + logistic regression on cuts
(regression, ``stsb``: Pearson correlation against TF-IDF ridge).

For each shared set and training size, draws a stratified sample of that many training rows (seeded; GoEmotions, which
is multi-label, a random one), a validation split of a fifth as many rows from rows the training sample does not hold,
and scores on a fixed 500-row sample of the official test split (SST-2 and GoEmotions: their dev split). Each run is a real job (``bmcore.train.run_training``) in a
scratch workspace; its ``eval.json`` gives the model's test macro F1 and the TF-IDF baseline's on the same split,
trained on the same rows. One JSON line per run goes to --out; --table prints the Markdown table of a results file.

    BMCORE_WORKSPACE=/tmp/sd python scripts/small_data_text.py --sets emotion sst2 --sizes 300 600 --seeds 0 1 2 \
        --variant before --out /tmp/sd/results.jsonl
    python scripts/small_data_text.py --table /tmp/sd/results.jsonl

Variants: ``before`` reproduces the defaults before issue 27 (3 epochs, batch_growth 4: ``num_train_epochs 3`` set
explicitly turns the small-data rule off); ``after`` is every default of this checkout; ``rule`` sets the rule's
epochs and batch_growth 1 explicitly (the same training, on a checkout without the rule); ``--set KEY=VALUE`` adds
settings (a hand-tuned run). Wall times are in the results file, not the table: they say more about the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = next((p for p in (ROOT.parent / "shared" / "data", Path("/work/shared/data")) if p.is_dir()), Path("/work/shared/data"))
TEST_ROWS = 500  # scoring costs a third of training per row; 500 keeps a run on 2 loaded cores within minutes
VARIANTS = {"before": {"num_train_epochs": 3.0}, "after": {}}
SHOWN = {"rule": "after"}  # the rule's settings set explicitly train exactly as the rule resolves them


def _read(rel: str) -> pd.DataFrame:
    return pd.read_csv(DATA / rel, keep_default_na=False)


def pools(name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(training pool, validation pool, test sample) of a shared set; a pool may equal another (rows are kept apart)."""
    if name == "sst2":
        train = _read("sst2/train.csv")
        return train, train, _stratified(_read("sst2/dev.csv"), TEST_ROWS, 0)  # dev is the test: GLUE's test has no labels
    if name == "emotion":
        return _read("emotion/train.csv"), _read("emotion/val.csv"), _stratified(_read("emotion/test.csv"), TEST_ROWS, 0)
    if name == "goemotions":  # multi-label: random samples (a label set is no stratum), dev is the test
        train = _read("goemotions/train.csv")
        return train, train, _read("goemotions/dev.csv").sample(TEST_ROWS, random_state=0)
    if name == "stsb":  # regression (a similarity score 0-5 per sentence pair): dev is the test, as published results
        train = _read("stsb/train.csv")
        return train, train, _read("stsb/dev.csv").sample(TEST_ROWS, random_state=0)
    if name in ("ag_news", "sms_spam"):
        everything = _read("ag_news/test.csv" if name == "ag_news" else "sms_spam/all.csv")
        test = _stratified(everything, TEST_ROWS, 0)
        rest = everything.drop(test.index)
        return rest, rest, test
    raise SystemExit(f"unknown set {name}; choose sst2, emotion, ag_news, sms_spam, goemotions or stsb")


def _stratified(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    from sklearn.model_selection import train_test_split

    part, _ = train_test_split(df, train_size=n, stratify=df["label"] if "label" in df else None, random_state=seed)
    return part


def build_cut(name: str, n: int, seed: int, folder: Path) -> Path:
    """Write train/validation/test CSVs of one cut into ``folder`` (a data source the job reads as its splits)."""
    train_pool, val_pool, test = pools(name)
    train = _stratified(train_pool, n, seed)
    val_pool = val_pool.drop(train.index, errors="ignore") if val_pool is train_pool else val_pool
    val = _stratified(val_pool, max(n // 5, 50), seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, df in (("train", train), ("validation", val), ("test", test)):
        keep = ["text", "label" if "label" in df else "labels"] if "text" in df else list(df.columns)  # stsb: pairs
        df[keep].to_csv(folder / f"{split}.csv", index=False)
    return folder


def run_one(name: str, n: int, seed: int, variant: str, settings: dict, scratch: Path) -> dict:
    """Train one cut with ``settings`` over the defaults; the test score of the model and of TF-IDF: macro F1, or for
    a regression set (stsb) the task's headline metric (Pearson correlation; the baseline is TF-IDF ridge)."""
    from bmcore import runs
    from bmcore.config import TrainConfig
    from bmcore.defaults import task_defaults
    from bmcore.train import run_training

    source = build_cut(name, n, seed, scratch / "cuts" / f"{name}-{n}-s{seed}")
    if variant == "rule":  # the small-data rule spelled out, for a checkout without it: batch_growth 1, epochs for 150 steps
        settings = {"batch_growth": 1, "num_train_epochs": float(min(30, max(3, -(-150 // -(-n // 32))))), **settings}
    config = TrainConfig.from_dict(task_defaults({"dataset": str(source), "seed": seed, **settings}))
    run_dir = runs.create_run(config, run_dir=scratch / "runs" / f"{name}-{n}-s{seed}-{variant}-{time.time_ns()}")
    t0 = time.time()
    status = run_training(run_dir)
    result = runs.read_eval(run_dir)
    metric = "macro_f1" if "macro_f1" in result["test"] else result["headline"]
    return {"set": name, "n": n, "seed": seed, "variant": variant, "settings": settings, "metric": metric,
            "score": result["test"][metric], "tfidf_score": (result.get("baseline") or {}).get(metric),
            "accuracy": result["test"].get("accuracy", result["test"].get("subset_accuracy")),
            "steps": status.get("total_steps"), "schedule": status.get("schedule"), "wall_s": round(time.time() - t0, 1),
            "run_dir": str(run_dir)}


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tfn" else value
    return out


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"


def _read_results(path: Path) -> list[dict]:
    """A results file's records; those written before ``score`` (macro F1 under its own name) read the same."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        r.setdefault("score", r.get("macro_f1"))
        r.setdefault("tfidf_score", r.get("tfidf_macro_f1"))
    return rows


def table(path: Path) -> str:
    """The Markdown table of a results file: per set and size, TF-IDF, then each variant (mean ± spread over seeds)."""
    rows = _read_results(path)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    keys = sorted({(r["set"], r["n"]) for r in rows})
    head = ["set", "train rows", "seeds", "TF-IDF", *(f"{SHOWN.get(v, v)} (steps)" for v in variants)]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, n in keys:
        mine = [r for r in rows if (r["set"], r["n"]) == (name, n)]
        tfidf = {r["seed"]: r["tfidf_score"] for r in mine if r["tfidf_score"] is not None}
        cells = []
        for v in variants:
            vr = [r for r in mine if r["variant"] == v]
            steps = "/".join(sorted({str(r["steps"]) for r in vr}))
            cells.append(f"{_cell([r['score'] for r in vr])} ({steps})" if vr else "-")
        metric = mine[0].get("metric", "macro_f1").replace("_", " ").replace("macro f1", "macro F1")
        out.append(f"| {name} ({metric}) | {n} | {len(tfidf)} | {_cell(list(tfidf.values()))} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["emotion", "sst2"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[300, 600, 1000, 2000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--variant", default="after", help="before, after, or a name for the --set settings")
    parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE settings over the variant's (a hand-tuned run)")
    parser.add_argument("--out", type=Path, help="results file (JSON lines, appended)")
    parser.add_argument("--table", type=Path, help="print the table of a results file and exit")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    scratch = Path(os.environ.get("BMCORE_WORKSPACE") or "/tmp/small-data-text")
    settings = {**VARIANTS.get(args.variant, {}), **_parse_set(args.set)}
    out = args.out or scratch / "results.jsonl"
    for n in args.sizes:
        for name in args.sets:
            for seed in args.seeds:
                rec = run_one(name, n, seed, args.variant, settings, scratch)
                with open(out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps({k: rec[k] for k in ("set", "n", "seed", "variant", "metric", "score", "tfidf_score",
                                                      "steps", "wall_s")}), flush=True)


if __name__ == "__main__":
    main()
