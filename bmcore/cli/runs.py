"""``python -m bmcore runs {list,show,cancel}``."""

from __future__ import annotations

import argparse
import dataclasses
import json

from .. import run_list, runs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list and inspect training runs")
    rsub = p.add_subparsers(dest="runs_command", metavar="ACTION")
    rsub.required = True
    rsub.add_parser("list", help="list the runs in the workspace").set_defaults(func=_list)
    show = rsub.add_parser("show", help="print one run's status as JSON")
    show.add_argument("run", help="run folder or run name")
    show.set_defaults(func=_show)
    cancel = rsub.add_parser("cancel", help="ask a queued or running job to stop (it saves and marks itself cancelled)")
    cancel.add_argument("run", help="run folder or run name")
    cancel.set_defaults(func=_cancel)


def _list(args: argparse.Namespace) -> int:
    for row in run_list.list_runs():
        print(json.dumps(dataclasses.asdict(row)))
    return 0


def _show(args: argparse.Namespace) -> int:
    run_dir = runs.find_run(args.run)
    status = runs.read_status(run_dir)
    prog = runs.progress(run_dir)
    out = {"run": run_dir.name, "path": str(run_dir), **status, "step": prog["step"], "total_steps": prog["total_steps"]}
    print(json.dumps(out, indent=2))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    run_dir = runs.find_run(args.run)
    runs.read_status(run_dir)  # a damaged status (a pid of -1) is refused with its one line, nothing written
    runs.request_stop(run_dir)
    print(json.dumps({"stop_requested": args.run}))
    return 0
