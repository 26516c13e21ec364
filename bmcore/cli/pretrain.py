"""``python -m bmcore pretrain``: continue masked-language-model pretraining on unlabelled text (the Pretrain page's command)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import runs, train
from ..config import REPORT_TO, PretrainConfig
from ..errors import BmcoreError
from ..limits import check_jobs
from ..pretrain import check_config, pretrain_run_name


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="domain-adaptive masked-LM pretraining on unlabelled text (foreground)",
                       description="Continue a checkpoint's masked-language-model training on your own text; "
                                   "fine-tune from RUN_DIR afterwards (train --model RUN_DIR).")
    d = PretrainConfig(dataset="-")  # the defaults shown in --help
    p.add_argument("--data", required=True, help="a prepared dataset (labels ignored) or a .txt file: one document "
                                                 "per line, or per blank-line block")
    p.add_argument("--model", default=d.model_name_or_path, help=f"base model reference (default {d.model_name_or_path})")
    p.add_argument("--out", help="run folder to create (default: a new pretrain-... folder in the workspace)")
    p.add_argument("--mlm-probability", type=float, default=d.mlm_probability, help="share of tokens masked (default 0.15)")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help=f"optimizer steps (default {d.max_steps})")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help=f"peak learning rate (default {d.learning_rate:g})")
    p.add_argument("--max-seq-length", type=int, default=d.max_seq_length, help=f"tokens per block (default {d.max_seq_length})")
    p.add_argument("--per-device-train-batch-size", type=int, default=d.per_device_train_batch_size,
                   help=f"blocks per step (default {d.per_device_train_batch_size})")
    p.add_argument("--eval-steps", type=int, default=d.eval_steps, help=f"steps between perplexity evaluations (default {d.eval_steps})")
    p.add_argument("--logging-steps", type=int, default=d.logging_steps, help=f"steps between progress lines (default {d.logging_steps})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default=d.precision, help="numeric precision")
    p.add_argument("--report-to", choices=REPORT_TO, default=d.report_to,
                   help="experiment tracker, as train --report-to: none, tensorboard or mlflow (default none)")
    p.add_argument("--tracking-uri", help="with --report-to mlflow: the MLflow store (default: WORKSPACE/mlflow.db)")
    p.add_argument("--experiment-name", help="with --report-to mlflow: the MLflow experiment (default: the data's name)")
    p.add_argument("--background", action="store_true", help="start the job in the background and return")
    p.set_defaults(func=_run)


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """The :class:`PretrainConfig` of the command's flags."""
    return PretrainConfig(model_name_or_path=args.model, dataset=args.data, mlm_probability=args.mlm_probability,
                          max_steps=args.max_steps, learning_rate=args.learning_rate, max_seq_length=args.max_seq_length,
                          per_device_train_batch_size=args.per_device_train_batch_size, eval_steps=args.eval_steps,
                          logging_steps=args.logging_steps, seed=args.seed, precision=args.precision,
                          report_to=args.report_to, tracking_uri=args.tracking_uri, experiment_name=args.experiment_name)


def _run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_config(config)  # bad data or model: one line, exit 2, and no run folder written
    if args.background:
        check_jobs(runs.active_runs())  # every job slot taken: refused before a run folder exists
    run_dir = runs.create_run(config, run_dir=args.out) if args.out else runs.create_run(config, pretrain_run_name(config))
    print(json.dumps({"run_dir": str(run_dir)}), flush=True)
    if args.background:
        print(json.dumps({"run_dir": str(run_dir), "pid": runs.launch_new(run_dir)}))
        return 0
    try:
        status = train.run_training(run_dir)
    except BmcoreError:
        raise
    except Exception as exc:  # recorded in status.json and train.log; one line here
        raise SystemExit(f"error: pretraining failed: {exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}") from exc
    print(json.dumps({k: status.get(k) for k in ("state", "perplexity_before", "perplexity_after", "error")
                      if status.get(k) is not None}))
    if Path(run_dir, runs.MODEL_DIR).is_dir():
        print(f"fine-tune from it: python -m bmcore train --data DATASET --model {run_dir}")
    return 0 if status.get("state") in (runs.COMPLETED, runs.CANCELLED) else 1
