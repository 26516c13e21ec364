"""``python -m bmcore train``: create and run a fine-tuning job (the same command the Train page launches)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import typing
from pathlib import Path

from .. import launch, report, runs, train
from ..config import TrainConfig, config_fields
from ..defaults import task_defaults
from ..errors import BmcoreError
from ..limits import check_jobs

_SKIP = {"model_name_or_path", "dataset", "text_column", "label_columns"}


def _flag_type(f: dataclasses.Field) -> typing.Callable[[str], typing.Any]:
    hint = str(f.type)
    if "float" in hint:
        return float
    if "int" in hint:
        return int
    return str


def _help(f: dataclasses.Field) -> str:
    return f.metadata["help"].replace("%", "%%")  # argparse formats help strings: "3%" would break --help


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a model (foreground; the Train page runs the same command)",
                       description="Run a run folder's job, or create one from --data/--model/--config and run it.")
    p.add_argument("run_dir", nargs="?", help="an existing run folder to run or resume, or where to create one")
    p.add_argument("--data", help="prepared dataset name or data source")
    p.add_argument("--model", help="model reference (default builtin:minilm, or builtin:efficientnet-lite0 for image data)")
    p.add_argument("--out", help="run folder to create (default: a new folder in the workspace)")
    p.add_argument("--config", help="a JSON file with TrainConfig fields")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint (optimizer, scheduler, RNG)")
    p.add_argument("--background", action="store_true", help="start the job in the background and return")
    p.add_argument("--text-column", action="append", help="text column of a raw source (twice for pairs)")
    p.add_argument("--label-columns", type=lambda v: [c.strip() for c in v.split(",") if c.strip()], metavar="A,B,...",
                   help="multi-label raw source: several 0/1 columns, one per label (e.g. toxic,obscene,insult)")
    for f in config_fields():
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=_help(f))
        else:
            p.add_argument(flag, type=_flag_type(f), default=None, choices=f.metadata.get("choices"),
                           help=_help(f), metavar=f.name.upper())
    p.set_defaults(func=_run)


def _overrides(args: argparse.Namespace) -> dict[str, typing.Any]:
    out = {f.name: getattr(args, f.name) for f in config_fields() if f.name not in _SKIP and getattr(args, f.name, None) is not None}
    if args.text_column:
        out["text_column"] = args.text_column
    if args.label_columns:
        out["label_columns"] = args.label_columns
    if args.data:
        out["dataset"] = args.data
    if args.model:
        out["model_name_or_path"] = args.model
    return out


def _wait_for_folder(run_dir: Path, timeout: float = 300) -> Path:
    deadline = time.time() + timeout
    while not (run_dir / runs.CONFIG_FILE).exists():
        if time.time() > deadline:
            raise BmcoreError(f"rank 0 did not create {run_dir} within {timeout:.0f} s")
        time.sleep(0.2)
    return run_dir.resolve()


def _run(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    existing = args.run_dir and (Path(args.run_dir) / runs.CONFIG_FILE).exists()
    if existing:
        if overrides or args.config or args.out:
            raise BmcoreError(f"{args.run_dir} is an existing run; run it as it is (or --resume), or create a new one with --out")
        run_dir = Path(args.run_dir)
        if int(os.environ.get("RANK", "0")) == 0:  # other torchrun ranks join the job rank 0 has just claimed
            runs.check_rerun(run_dir, resume=args.resume)
        if args.resume:  # resuming is the answer to an earlier cancel: its stop request must not stop this job too
            (run_dir / runs.STOP_FILE).unlink(missing_ok=True)
    else:
        if args.resume:
            raise BmcoreError(f"--resume needs an existing run folder; {args.run_dir or '(none given)'} is not one")
        base = TrainConfig.load(args.config).to_dict() if args.config else {}
        if not (base or overrides.get("dataset")):
            raise BmcoreError("say what to train on: --data NAME_OR_SOURCE (e.g. builtin:bbc-news), --config FILE, or a RUN_DIR")
        if overrides.get("num_train_epochs") is not None and overrides.get("max_steps") is not None:
            raise BmcoreError("give either --num-train-epochs or --max-steps, not both")
        if "max_steps" in overrides:
            base.pop("num_train_epochs", None)
        if "num_train_epochs" in overrides:
            base.pop("max_steps", None)
        config = TrainConfig.from_dict(task_defaults({**base, **overrides}))  # e.g. multi-label starts from its own
        # Check the model, max_seq_length and a raw source before a run folder exists: bad input writes nothing.
        if args.background:
            check_jobs(runs.active_runs())
        notice = launch.preflight(config)
        if notice and int(os.environ.get("RANK", "0")) == 0:
            print(f"notice: {notice}", file=sys.stderr, flush=True)
        target = args.out or args.run_dir
        if int(os.environ.get("RANK", "0")) > 0:
            # Under torchrun every rank runs this command; rank 0 creates the folder, the others join it.
            if not target:
                raise BmcoreError("under torchrun, give the run folder with --out so all ranks share it")
            run_dir = _wait_for_folder(Path(target))
        else:
            run_dir = runs.create_run(config, run_dir=target) if target else runs.create_run(config)
            print(json.dumps({"run_dir": str(run_dir)}), flush=True)
            if steps_note := report.run_schedule_note(config):  # after every check: an error stays one line
                print(f"notice: {steps_note}", file=sys.stderr, flush=True)  # the Train page's line on few steps
    if args.background:
        pid = runs.launch(run_dir, resume=args.resume) if existing else runs.launch_new(run_dir)
        print(json.dumps({"run_dir": str(run_dir), "pid": pid}))
        return 0
    try:
        status = train.run_training(run_dir, resume=args.resume)
    except (BmcoreError, OSError):  # bad input, or a read-only run folder: one line from the CLI, exit 2
        raise
    except Exception as exc:  # recorded in status.json and train.log; one line here
        raise SystemExit(f"error: training failed: {exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}") from exc
    if status:
        shown = {k: v for k, v in status.items() if k in ("state", "error") or k.startswith(runs.TEST_PREFIX)}
        print(json.dumps({k: v for k, v in shown.items() if v is not None}))  # state, test_<headline metrics>, error
    return 0 if not status or status.get("state") in (runs.COMPLETED, runs.CANCELLED) else 1
