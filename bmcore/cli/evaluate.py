"""``python -m bmcore evaluate --model REF --data SOURCE_OR_PREPARED_NAME [--split test] --out DIR``.

Prints one JSON line: the split's headline metrics next to the baseline's, as the model's task sums them up
(:meth:`bmcore.tasks.base.Task.summary`): accuracy, macro F1 and the calibration error for a classifier; for a
multi-label model micro, macro and samples F1, subset accuracy and Hamming loss, with ``per_label`` (each label's
precision, recall, F1, support, predicted count and threshold); for a regression model Pearson and Spearman
correlation, RMSE, MAE and R².
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from ..data.readers import SPLIT_ALIASES
from ..data.resolve import resolve_dataset
from ..data.storage import is_prepared, load_prepared
from ..errors import BmcoreError
from ..evaluate import evaluate_model
from ..models import load_config, resolve_model
from ..scoring import whole_dataset
from ..tasks import task_of_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model on a split: metrics.json and predictions.csv, next to a baseline")
    p.add_argument("--model", required=True, help="builtin:minilm, a run folder, a model folder or a Hub id")
    p.add_argument("--data", required=True,
                   help="a prepared dataset name, a folder of split files (scored on --split), one file (scored whole), "
                        "or a folder or .zip of image class folders (every image scored, or the split folder --split names)")
    p.add_argument("--split", help="split of a prepared dataset or folder (default test; image class folders: all)")
    p.add_argument("--out", required=True, help="folder for metrics.json, predictions.csv (spreadsheet-safe) and predictions.parquet (raw)")
    p.add_argument("--text-column", action="append", help="text column (twice for text pairs)")
    p.add_argument("--label-column", help="label column")
    p.add_argument("--baseline-train", help="prepared dataset or source whose train split trains the baseline "
                                           "(default: the data's own train split; a single file has none)")
    p.add_argument("--max-seq-length", type=int, help="tokens (default: what training saved, else 256)")
    p.add_argument("--batch-size", type=int, default=64, help="inference batch size (default 64)")
    p.add_argument("--no-calibration", action="store_true", help="do not fit temperature scaling on the validation split")
    p.add_argument("--save-temperature", action="store_true", help="save the fitted temperature into the model folder")
    p.add_argument("--seed", type=int, default=42, help="seed for splits made from a folder without them")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise BmcoreError("--batch-size must be a positive number")
    if args.max_seq_length is not None and args.max_seq_length < 1:
        raise BmcoreError("--max-seq-length must be a positive number of tokens")
    mref = resolve_model(args.model)  # fail fast on a missing model, before reading data
    notes: list[str] = []
    config = load_config(mref)
    task = task_of_model(config)
    if is_prepared(args.data):
        ds, split = load_prepared(args.data), args.split or "test"
    else:  # the model's task reads the source: text by its columns, images by their class folders
        labels = [str(config.id2label[i]) for i in sorted(config.id2label)]
        ds, split = whole_dataset(args.data, task, labels,
                                  split=args.split, text_columns=args.text_column, label_column=args.label_column,
                                  seed=args.seed)
        notes = ds.notes
    split = SPLIT_ALIASES.get(split.lower(), split)
    baseline_train: pd.DataFrame | None = None
    if args.baseline_train:
        baseline_train = resolve_dataset(args.baseline_train).splits["train"]

    def progress(done: int, total: int) -> None:
        print(f"\rscoring {done}/{total}", end="", file=sys.stderr, flush=True)

    result = evaluate_model(mref, ds, split, args.out, fit_calibration=not args.no_calibration,
                            save_temperature=args.save_temperature, baseline_train=baseline_train,
                            progress=progress if sys.stderr.isatty() else None,
                            batch_size=args.batch_size, max_seq_length=args.max_seq_length, notes=notes)
    m = result.metrics
    # The model's task says what sums up its evaluation (accuracy and calibration, F1 per label, correlations), with
    # the baseline's same figures.
    summary = {"out": str(result.out_dir), "split": m["split"], "n": m["n"], **task.summary(m), "notes": m["notes"]}
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(json.dumps(summary))
    return 0
