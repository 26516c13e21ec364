"""``python -m bmcore tune``: search over models and settings under a time budget (the Train page's Search tab runs
the same command). Prints a line per trial as it goes and ends, like ``train``, with one JSON line: ``best_run`` (the
chosen run's folder, whose ``model/`` the other commands open) and ``trials``."""

from __future__ import annotations

import argparse
import json
import signal
from typing import Any

from .. import studies, tune
from ..config import REPORT_TO, TrainConfig
from ..errors import BmcoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search models and settings within a time budget (Optuna; trials are runs)",
                       description="Search over candidate models and training settings within a wall-clock budget. "
                                   "Trials are ordinary runs, compared on validation; the best one's test split is "
                                   "scored once at the end. Run it again with the same --study to continue.")
    p.add_argument("--data", required=True, help="prepared dataset name or data source")
    p.add_argument("--budget", default="30m", help="wall-clock budget for this run of the search: 30m, 90s, 1h (default 30m)")
    p.add_argument("--models", type=lambda v: [m.strip() for m in v.split(",") if m.strip()], default=[], metavar="A,B",
                   help="candidate models (built-ins, finished runs' model folders, local folders, Hub ids); default: "
                        "the data's built-in model")
    p.add_argument("--trials", type=int, help="at most this many trials in this run of the search")
    p.add_argument("--study", help="the study's name (default: DATASET-search); an existing one is continued")
    p.add_argument("--storage", help="an Optuna storage URL shared by several workers (default: SQLite in the study's folder)")
    p.add_argument("--seed", type=int, help="every trial's seed (default: TrainConfig's)")
    p.add_argument("--report-to", choices=REPORT_TO, help="every trial reports to this tracker, as train --report-to "
                                                          "(the chosen trial's test metrics join its record at the end)")
    p.add_argument("--tracking-uri", help="with --report-to mlflow: the MLflow store (default: WORKSPACE/mlflow.db)")
    p.add_argument("--experiment-name", help="with --report-to mlflow: the MLflow experiment (default: the dataset's name)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = {k: v for k in studies.TUNE_SETTINGS if (v := getattr(args, k)) is not None}
    TrainConfig(dataset=args.data, **settings)  # checked as a run checks them: one line, exit 2
    search = studies.Search(dataset=args.data, models=args.models, budget_s=studies.parse_budget(args.budget),
                         trials=args.trials, study=args.study, storage=args.storage, settings=settings)

    def on_sigterm(signum: int, frame: Any) -> None:  # a cancel from the page or `kill`: stop the trial, then end
        studies.request_search_stop(search.study)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        summary = tune.run_search(search, echo=lambda line: print(line, flush=True))
    except BmcoreError as exc:  # one line on stderr (bmcore.cli.main), and in the study's status for the page
        studies.mark_failed(search, str(exc))
        raise
    print(json.dumps({k: summary.get(k) for k in ("best_run", "best_trial", "best_validation", "best_test", "metric",
                                                  "bought", "trials")}), flush=True)
    return 0 if summary.get("best_run") else 1


