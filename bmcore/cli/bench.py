"""``python -m bmcore bench [--quick] [--only PART]``: speed against the recipes users would otherwise run, and
``bmcore serve`` under load against the FastAPI + ``pipeline`` endpoint (``--only serve``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..bench.accuracy import TTA_SEEDS
from ..bench.suite import PARTS, run_bench
from ..models import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed side by side against transformers' own recipes")
    p.add_argument("--quick", action="store_true", help="fewer texts and steps, no time-to-accuracy (under 5 minutes)")
    p.add_argument("--only", choices=PARTS, help="run one part only")
    p.add_argument("--model", help=f"model reference (default {DEFAULT_MODEL}; for serve: a run or model folder, "
                                   "default the newest finished run)")
    p.add_argument("--texts", metavar="FILE", help="serve: the texts to send (one per line, or a table with a text "
                                                   "column; default the run's validation texts)")
    p.add_argument("--onnx", action="store_true", help="serve: start bmcore serve with --onnx")
    p.add_argument("--seeds", type=int, default=len(TTA_SEEDS), choices=range(1, len(TTA_SEEDS) + 1),
                   metavar=f"1-{len(TTA_SEEDS)}", help="seeds for time to accuracy (default all; the median ratio is reported)")
    p.add_argument("--json-out", metavar="PATH", help="also write every measurement (dev-accuracy curves included) to this JSON file")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    summary = run_bench(quick=args.quick, only=args.only, model=args.model, seeds=TTA_SEEDS[:args.seeds],
                        texts=args.texts, onnx=args.onnx)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return 0
