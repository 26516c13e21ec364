"""``python -m bmcore bench [--quick]``: speed against the recipes users would otherwise run."""

from __future__ import annotations

import argparse

from ..models import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed side by side against transformers' own recipes")
    p.add_argument("--quick", action="store_true", help="fewer texts and steps, no time-to-accuracy (under 5 minutes)")
    p.add_argument("--only", choices=("training", "accuracy", "inference"), help="run one part only")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model reference (default builtin:minilm)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..bench import run_bench

    run_bench(quick=args.quick, only=args.only, model=args.model)
    return 0
