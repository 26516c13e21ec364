"""``python -m bmcore label {new,give,clear,status,step,export,simulate}``: the labelling loop's steps
(:mod:`bmcore.labelling`), each ending with one JSON line."""

from __future__ import annotations

import argparse
import json
import sys

from ..data.storage import is_prepared
from ..errors import BmcoreError
from ..fewshot import NAME_EXAMPLES, NAME_TEMPLATE
from ..labelling.export import export_dataset
from ..labelling.project import clear_label, counts, create_project, give_label, labels, load_project
from ..labelling.simulate import simulate
from ..labelling.step import (LOOP_BATCH, LOOP_MAX_STEPS, LOOP_MIN_STEPS, LOOP_MODEL, STEPS_PER_ROW, STRATEGIES,
                              read_curve, read_picks, run_step)

NO_NAMES_HELP = (f"do not learn from the class names (by default each name that is a word becomes {NAME_EXAMPLES} "
                 f"examples '{NAME_TEMPLATE.format('NAME')}' of its class)")

STEPS_HELP = (f"the most steps of 16 pairs the few-shot model trains (default {LOOP_MAX_STEPS}); it trains "
              f"{STEPS_PER_ROW} a labelled row, at least {LOOP_MIN_STEPS}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label texts with a few-shot model picking what to label next")
    lsub = p.add_subparsers(dest="label_command", metavar="ACTION")
    lsub.required = True
    q = lsub.add_parser("new", help="start a labelling project on a file of texts")
    q.add_argument("name", help="the project's name")
    q.add_argument("--file", required=True, help="CSV, TSV, JSON, JSONL, Parquet, Excel, or .txt (one text per line)")
    q.add_argument("--text-column", help="the column of texts (default: detected)")
    q.add_argument("--label-column", help="a column with labels for some rows (default: one named label, class...)")
    q.add_argument("--classes", help="the class names in order, separated by commas (default: the label column's)")
    q.add_argument("--sheet", help="Excel sheet name")
    q.set_defaults(func=_new)
    q = lsub.add_parser("give", help="label one row (rows count from 0)")
    q.add_argument("name")
    q.add_argument("row", type=int)
    q.add_argument("label")
    q.set_defaults(func=_give)
    q = lsub.add_parser("clear", help="clear one row's label")
    q.add_argument("name")
    q.add_argument("row", type=int)
    q.set_defaults(func=_give)
    q = lsub.add_parser("status", help="labelled rows per class, and the last point of the learning curve")
    q.add_argument("name")
    q.set_defaults(func=_status)
    q = lsub.add_parser("step", help="retrain the few-shot model on the labels and pick the next rows to label")
    q.add_argument("name")
    q.add_argument("--strategy", choices=STRATEGIES, default="uncertainty")
    q.add_argument("--batch", type=int, default=LOOP_BATCH, help=f"rows to pick (default {LOOP_BATCH})")
    q.add_argument("--max-steps", type=int, default=LOOP_MAX_STEPS, help=STEPS_HELP)
    q.add_argument("--model", default=LOOP_MODEL, help=f"the body to train (default {LOOP_MODEL})")
    q.add_argument("--no-label-names", dest="label_names", action="store_false", help=NO_NAMES_HELP)
    q.set_defaults(func=_step)
    q = lsub.add_parser("export", help="save the labelled rows as a prepared dataset (NAME-v2... when taken)")
    q.add_argument("name")
    q.add_argument("--name", dest="dataset", help="the dataset's name (default: the project's)")
    q.set_defaults(func=_export)
    _register_simulate(lsub)


def _register_simulate(lsub: argparse._SubParsersAction) -> None:
    q = lsub.add_parser("simulate", help="hide a labelled dataset's labels and reveal them as each strategy asks")
    q.add_argument("--data", required=True, help="a prepared single-label text dataset")
    q.add_argument("--budget", type=int, default=200, help="labels revealed in the end (default 200)")
    q.add_argument("--step", type=int, default=20, help="labels revealed per round (default 20)")
    q.add_argument("--strategy", default=",".join(STRATEGIES), help="strategies, separated by commas "
                   f"(default {','.join(STRATEGIES)})")
    q.add_argument("--seeds", type=int, default=3, help="seeds (default 3)")
    q.add_argument("--pool", type=int, default=2000, help="train rows sampled as the unlabelled pool (default 2000)")
    q.add_argument("--eval", type=int, default=1000, help="test rows sampled to score the curves (default 1000)")
    q.add_argument("--max-steps", type=int, default=LOOP_MAX_STEPS, help=STEPS_HELP)
    q.add_argument("--model", default=LOOP_MODEL, help=f"the body to train (default {LOOP_MODEL})")
    q.add_argument("--no-label-names", dest="label_names", action="store_false", help=NO_NAMES_HELP)
    q.add_argument("--out", help="output folder (default: the dataset's simulation/ folder)")
    q.set_defaults(func=_simulate)


def _new(args: argparse.Namespace) -> int:
    project = create_project(args.name, args.file, args.text_column, args.label_column, args.classes, sheet=args.sheet)
    given = labels(project.name)
    for note in project.meta.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({"name": project.name, "path": str(project.folder), "rows": project.rows,
                      "classes": project.classes, "labelled": len(given)}))
    return 0


def _give(args: argparse.Namespace) -> int:
    label = getattr(args, "label", None)
    if label is None:
        clear_label(args.name, args.row)
    else:
        give_label(args.name, args.row, label)
    print(json.dumps({"name": args.name, "row": args.row, "label": label, "labelled": len(labels(args.name))}))
    return 0


def _status(args: argparse.Namespace) -> int:
    project = load_project(args.name)
    per_class, curve, picks = counts(args.name), read_curve(args.name), read_picks(args.name)
    width = max(len(c) for c in per_class)
    for name, n in per_class.items():
        print(f"{name:<{width}}  {n:>6}")
    labelled = sum(per_class.values())
    print(f"labelled {labelled} of {project.rows}")
    last = curve[-1] if curve else None
    if last is not None and last.get("accuracy") is not None:
        print(f"last step: validation accuracy {last['accuracy']:.3f} on {last['n_validation']} held-out rows, "
              f"trained on {last['trained_on']} for {last.get('steps', '?')} steps ({last['strategy']})")
    given = labels(args.name)
    pending = [r for r in (picks or {}).get("rows", []) if r not in given]
    print(json.dumps({"name": args.name, "rows": project.rows, "labelled": labelled, "counts": per_class,
                      "last": last, "pending_picks": pending}))
    return 0


def _step(args: argparse.Namespace) -> int:
    def progress(done: int, total: int, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run_step(args.name, strategy=args.strategy, batch=args.batch, max_steps=args.max_steps, model=args.model,
                      label_names=args.label_names, progress=progress)
    texts = load_project(args.name).texts.set_index("row")["text"]
    picks = read_picks(args.name) or {}
    suggested = picks.get("suggested") or [None] * len(result["rows"])
    for row, guess in zip(result["rows"], suggested, strict=False):
        text = "".join(ch if ch.isprintable() else " " for ch in " ".join(str(texts[row]).split()))
        print(f"{row:>7}  {'' if guess is None else guess + ':':<14} {text[:100]}")
    print(json.dumps(result))
    return 0


def _export(args: argparse.Namespace) -> int:
    print(json.dumps(export_dataset(args.name, args.dataset)))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    if not is_prepared(args.data):
        raise BmcoreError(f"no prepared dataset named {args.data!r} in the workspace; prepare it first")
    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]

    def progress(done: int, total: int, message: str) -> None:
        print(f"[{done}/{total}] {message}", file=sys.stderr, flush=True)

    summary = simulate(args.data, args.budget, args.step, strategies, args.seeds, args.pool, args.eval, args.max_steps,
                       model=args.model, label_names=args.label_names, out_dir=args.out, progress=progress)
    print(f"{'labels':>6}  " + "  ".join(f"{s:>11}" for s in summary["strategies"]))
    for point in summary["steps"]:
        print(f"{point['labels']:>6}  " + "  ".join(f"{point.get(s, float('nan')):>11.3f}" for s in summary["strategies"]))
    print(f"curves: {summary['csv']}\nplot: {summary['html']}")
    print(json.dumps(summary))
    return 0
