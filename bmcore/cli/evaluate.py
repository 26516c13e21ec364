"""``python -m bmcore evaluate --model REF --data SOURCE_OR_PREPARED_NAME [--split test] --out DIR``.

Prints one JSON line: the split's headline metrics next to the baseline's. For a multi-label model those are
micro, macro and samples F1, subset accuracy and Hamming loss, with ``per_label`` (each label's precision, recall,
F1, support, predicted count and threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .. import data as bdata
from ..errors import BmcoreError
from ..tasks import MULTI_LABEL


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model on a split: metrics.json and predictions.csv, next to a baseline")
    p.add_argument("--model", required=True, help="builtin:minilm, a run folder, a model folder or a Hub id")
    p.add_argument("--data", required=True,
                   help="a prepared dataset name, a folder of split files (scored on --split), or one file (scored whole)")
    p.add_argument("--split", default="test", help="split of a prepared dataset or folder (default test)")
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


def _single_file(args: argparse.Namespace, raw: bdata.RawData) -> bdata.PreparedDataset:
    """A one-file source as a dataset whose only non-empty split is ``all``."""
    df = raw.frames["all"]
    guess = bdata.detect_columns(df) if not (args.text_column and args.label_column) else None
    if guess is not None and not (args.text_column or args.label_column):
        cols = guess
    else:  # columns named on the command line: the label shape is still read from the data
        cols = bdata.Columns(list(args.text_column or guess.text), args.label_column or guess.label)  # type: ignore[union-attr]
        if cols.label in df.columns:
            cols = bdata.detect_label_shape(df, cols)[0]
    bdata._check_columns(df, cols, raw.source)
    std, dropped = bdata._standardise(df, cols, raw.source)
    if std.empty:
        raise BmcoreError(f"{raw.source} has no rows with both a text and a label")
    if cols.problem_type == MULTI_LABEL:  # label sets, stored as prepared datasets store them (JSON lists)
        names = bdata.order_labels({n for ls in std["label"] for n in ls} | set(cols.label_columns or []))
        std["label"] = [bdata.encode_label_set(ls) for ls in std["label"]]
    else:
        names = bdata.order_labels(std["label"])
    empty = std.iloc[0:0]
    notes = list(raw.notes) + ([f"dropped {dropped} rows with an empty text or label"] if dropped else [])
    return bdata.PreparedDataset(name=Path(raw.source).stem, source=raw.source, columns=cols, label_names=names,
                                 splits={"train": empty, "validation": empty, "all": std}, notes=notes,
                                 problem_type=cols.problem_type)


MULTI_LABEL_KEYS = ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss")


def multi_label_summary(result: Any) -> dict[str, Any]:
    """What ``evaluate`` prints for a multi-label model: micro, macro and samples F1, subset accuracy, Hamming loss,
    the thresholds' source, and one row per label (precision, recall, F1, support, predicted, threshold)."""
    m = result.metrics
    base = m.get("baseline")
    per_label = {n: {k: v.get(k) for k in ("precision", "recall", "f1", "support", "predicted", "threshold")}
                 for n, v in m["per_class"].items()}
    return {"out": str(result.out_dir), "split": m["split"], "n": m["n"], "problem_type": MULTI_LABEL,
            **{k: m[k] for k in MULTI_LABEL_KEYS}, "thresholds_fitted_on": (m.get("thresholds") or {}).get("fitted_on"),
            "per_label": per_label, "baseline": {k: base.get(k) for k in MULTI_LABEL_KEYS} if base else None,
            "notes": m["notes"]}


def _run(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_model
    from ..models import resolve_model

    if args.batch_size < 1:
        raise BmcoreError("--batch-size must be a positive number")
    if args.max_seq_length is not None and args.max_seq_length < 1:
        raise BmcoreError("--max-seq-length must be a positive number of tokens")
    mref = resolve_model(args.model)  # fail fast on a missing model, before reading data
    split = args.split
    if bdata.is_prepared(args.data):
        ds = bdata.load_prepared(args.data)
    else:
        raw = bdata.load_source(args.data)
        if raw.has_splits:
            cols = None
            if args.text_column or args.label_column:
                guess = bdata.detect_columns(next(iter(raw.frames.values())))
                cols = bdata.Columns(list(args.text_column or guess.text), args.label_column or guess.label)
            ds = bdata.prepare(raw, name=Path(args.data).stem or "dataset", columns=cols, seed=args.seed)
        else:
            ds = _single_file(args, raw)
            split = "all"
    split = bdata.SPLIT_ALIASES.get(split.lower(), split)
    baseline_train: pd.DataFrame | None = None
    if args.baseline_train:
        baseline_train = bdata.resolve_dataset(args.baseline_train).splits["train"]

    def progress(done: int, total: int) -> None:
        print(f"\rscoring {done}/{total}", end="", file=sys.stderr, flush=True)

    result = evaluate_model(mref, ds, split, args.out, fit_calibration=not args.no_calibration,
                            save_temperature=args.save_temperature, baseline_train=baseline_train,
                            progress=progress if sys.stderr.isatty() else None,
                            batch_size=args.batch_size, max_seq_length=args.max_seq_length)
    m = result.metrics
    base = m.get("baseline")
    summary = multi_label_summary(result) if m.get("problem_type") == MULTI_LABEL else {"out": str(result.out_dir), "split": m["split"], "n": m["n"], "accuracy": m["accuracy"],
               "f1_macro": m["f1_macro"], "ece": m["ece"], "temperature": m["temperature"],
               "temperature_reason": (m.get("calibration") or {}).get("reason"), "ece_calibrated": m["ece_calibrated"],
               "baseline": {"accuracy": base["accuracy"], "f1_macro": base["f1_macro"]} if base else None,
               "notes": m["notes"]}
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(json.dumps(summary))
    return 0
