"""Domain-adaptive pretraining, measured: does continuing MLM training on the domain's text help fine-tuning?

1. prepare a labelled dataset from ../shared/data (default: emotion, its own train/val/test files);
2. pretrain ``builtin:minilm`` with the masked-LM objective on the train texts (labels ignored),
   measuring perplexity on the validation texts before and after;
3. fine-tune twice with identical settings and seed on a fixed subset of the train split: once from
   ``builtin:minilm``, once from the pretrained run folder; report the test accuracy of both.

    BMCORE_WORKSPACE=/tmp/dapt python scripts/dapt_experiment.py --data ../shared/data/emotion --steps 300

One seed, so a difference of a point or two is within noise. Prints a Markdown table and writes
``dapt_results.json`` in the workspace.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from bmcore import data as bdata
from bmcore import runs
from bmcore.config import PretrainConfig, TrainConfig
from bmcore.train import run_training
from bmcore.workspace import workspace_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "emotion"))
    p.add_argument("--model", default="builtin:minilm")
    p.add_argument("--steps", type=int, default=300, help="pretraining steps")
    p.add_argument("--eval-steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--pretrain-lr", type=float, default=1e-4)
    p.add_argument("--train-subset", type=int, default=4000, help="labelled training examples for each fine-tune")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    started = time.time()
    ds = bdata.resolve_dataset(args.data, seed=args.seed)
    bdata.save_prepared(ds)
    train = ds.splits["train"].sample(min(args.train_subset, len(ds.splits["train"])), random_state=args.seed)
    small = dataclasses.replace(ds, name=f"{ds.name}-{len(train)}", splits={**ds.splits, "train": train})
    bdata.save_prepared(small)
    print(f"data {ds.name}: {len(ds.splits['train'])} train texts for pretraining; fine-tuning on {small.name}", flush=True)

    pre = runs.create_run(PretrainConfig(model_name_or_path=args.model, dataset=ds.name, max_steps=args.steps,
                                         eval_steps=args.eval_steps, per_device_train_batch_size=args.batch,
                                         max_seq_length=args.max_seq_length, learning_rate=args.pretrain_lr,
                                         seed=args.seed), f"dapt-pretrain-{ds.name}")
    t0 = time.time()
    status = run_training(pre)
    pre_s = time.time() - t0
    print(f"pretraining: {status['state']}, perplexity {status['perplexity_before']:.1f} -> {status['perplexity_after']:.2f}",
          flush=True)

    results = {}
    for label, model in (("from base", args.model), ("from domain-adapted", str(pre))):
        cfg = TrainConfig(model_name_or_path=model, dataset=small.name, num_train_epochs=args.epochs, seed=args.seed,
                          per_device_train_batch_size=args.batch, max_seq_length=args.max_seq_length)
        run = runs.create_run(cfg, f"dapt-finetune-{'base' if label == 'from base' else 'adapted'}-{ds.name}")
        st = run_training(run)
        results[label] = {"run": run.name, "test_accuracy": st["test_accuracy"], "test_macro_f1": st["test_macro_f1"]}
        print(f"fine-tune {label}: test accuracy {st['test_accuracy']:.4f}, macro F1 {st['test_macro_f1']:.4f}", flush=True)

    evals = [m for m in runs.read_metrics(pre) if m.get("kind") == "eval"]
    out = {"date": time.strftime("%Y-%m-%d"), "data": ds.name, "model": args.model, "pretrain_steps": args.steps,
           "pretrain_batch": args.batch, "max_seq_length": args.max_seq_length, "pretrain_lr": args.pretrain_lr,
           "train_subset": len(train), "epochs": args.epochs, "seed": args.seed,
           "perplexity_curve": [(m["step"], m["eval_perplexity"]) for m in evals],
           "perplexity_before": status["perplexity_before"], "perplexity_after": status["perplexity_after"],
           "pretrain_seconds": round(pre_s), "total_seconds": round(time.time() - started), "finetune": results}
    (workspace_dir() / "dapt_results.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    print("\n| | held-out perplexity | test accuracy | test macro F1 |\n|---|---|---|---|")
    print(f"| fine-tuned from {args.model} | {status['perplexity_before']:.1f} | "
          f"{results['from base']['test_accuracy']:.4f} | {results['from base']['test_macro_f1']:.4f} |")
    print(f"| fine-tuned from the domain-adapted checkpoint ({args.steps} MLM steps) | {status['perplexity_after']:.2f} | "
          f"{results['from domain-adapted']['test_accuracy']:.4f} | {results['from domain-adapted']['test_macro_f1']:.4f} |")


if __name__ == "__main__":
    main()
