"""``python -m bmcore jobs {run,list,show,cancel}``: the background jobs that are not training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import jobs, runs
from ..errors import BmcoreError
from ..workspace import inside, jobs_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="background jobs besides training: scoring, ONNX export, Hub push, time estimate")
    jsub = p.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True
    run = jsub.add_parser("run", help="run a job folder (the pages start this in the background)")
    run.add_argument("job", help="job folder or job name")
    run.set_defaults(func=_run)
    jsub.add_parser("list", help="list the jobs in the workspace, newest first").set_defaults(func=_list)
    show = jsub.add_parser("show", help="print one job's status as JSON")
    show.add_argument("job", help="job folder or job name")
    show.set_defaults(func=lambda a: print(json.dumps(jobs.read(_find(a.job)), indent=2)))
    cancel = jsub.add_parser("cancel", help="stop a queued or running job")
    cancel.add_argument("job", help="job folder or job name")
    cancel.set_defaults(func=lambda a: jobs.cancel(_find(a.job)) or print(json.dumps({"cancelled": a.job})))


def _find(name_or_path: str) -> Path:
    p = Path(name_or_path).expanduser()
    if not (p / runs.STATUS_FILE).is_file():
        p = inside(jobs_dir(), name_or_path)
    if not (p / runs.CONFIG_FILE).is_file():
        raise BmcoreError(f"no job {name_or_path!r}: not a job folder, nor a job in {jobs_dir()}")
    return p


def _run(args: argparse.Namespace) -> int:
    status = jobs.run_job(_find(args.job))
    return 0 if status.get("state") in (runs.COMPLETED, runs.CANCELLED) else 1


def _list(args: argparse.Namespace) -> int:
    for path in jobs.list_jobs():
        info = jobs.read(path)
        print(json.dumps({"name": path.name, **{k: info.get(k) for k in ("kind", "state", "created", "message", "error")}}))
    return 0
