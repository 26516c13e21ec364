"""``python -m bmcore data {inspect,prepare,list,quality}``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..builtin_images import DEFAULT_IMAGE_MODEL
from ..data.columns import choose_columns
from ..data.label_values import label_notices
from ..data.preparation import drop_duplicates, prepare
from ..data.readers import load_source, with_test_file
from ..data.stats import compute_stats, warnings_for
from ..data.storage import check_replace, dataset_dir, is_prepared, list_prepared, load_prepared, save_prepared
from ..display import csv_frame
from ..errors import BmcoreError, os_error_message
from ..labels import LABEL_DELIMITERS
from ..modalities import get_modality
from ..models import DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MODEL
from ..problem_types import PREPARED_SHAPES
from ..quality.changes import read_changes, save_version
from ..quality.features import DEFAULT_ENCODER, DEFAULT_FOLDS, ENCODERS
from ..quality.job import run_quality
from ..quality.results import quality_dir
from ..tasks import get_task


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect and prepare datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    for action in ("inspect", "prepare"):
        q = dsub.add_parser(action, help="print stats as JSON" if action == "inspect" else "save a prepared dataset")
        q.add_argument("source", help="builtin:bbc-news, a file, a folder of split files, hub:NAME[:CONFIG], a prepared "
                       "name; images: builtin:fashion-mnist, a folder or .zip of class folders, a CSV/Parquet with an "
                       "image column")
        q.add_argument("--text-column", action="append", help="text column (twice for text pairs)")
        q.add_argument("--label-column", help="label column")
        q.add_argument("--label-columns", type=_names, metavar="A,B,...",
                       help="multi-label: several 0/1 columns, one per label (e.g. toxic,obscene,insult)")
        q.add_argument("--label-delimiter", choices=LABEL_DELIMITERS,
                       help="multi-label: the label column holds several labels separated by this (json: JSON lists)")
        q.add_argument("--single-label", action="store_true",
                       help="read the label column as one class per row, even when it looks multi-label or like scores")
        q.add_argument("--problem-type", choices=list(PREPARED_SHAPES),
                       help="what the labels are learnt as, instead of the detected: regression reads the label column "
                            "as a score to predict; single_label_classification as --single-label")
        q.add_argument("--max-seq-length", type=int, default=DEFAULT_MAX_SEQ_LENGTH,
                       help=f"tokens; texts longer are truncated (default {DEFAULT_MAX_SEQ_LENGTH}, as training)")
        q.add_argument("--tokenizer", default=DEFAULT_MODEL, help="model reference whose tokenizer counts tokens")
        q.add_argument("--seed", type=int, default=42, help="seed for new splits")
        q.add_argument("--new-splits", action="store_true", help="ignore the source's splits and make new stratified ones")
        q.add_argument("--ratios", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"))
        q.add_argument("--sheet", help="Excel sheet name")
        q.add_argument("--test-file", help="a separate file for the test split (the source's rows are then train and validation)")
        q.add_argument("--drop-duplicates", action="store_true",
                       help="drop texts repeated within a split, and train/validation texts that also occur in a later split")
        if action == "prepare":
            q.add_argument("--name", required=True, help="name in the workspace")
            q.add_argument("--overwrite", action="store_true",
                           help="replace a dataset of this name even when runs were trained on it")
            q.add_argument("--apply-changes", metavar="CSV",
                           help="a reviewed list of changes (columns split,row,action,new_label; action keep, relabel "
                                "or drop) applied to a prepared SOURCE; saved as a new version under --name")
        q.set_defaults(func=_run)
    ls = dsub.add_parser("list", help="list prepared datasets in the workspace")
    ls.set_defaults(func=lambda args: print(json.dumps(list_prepared(), indent=2)))
    q = dsub.add_parser("quality", help="score every row for how likely its label is wrong (confident learning)")
    q.add_argument("dataset", help="a prepared dataset's name")
    q.add_argument("--out", help="also write the scores to this CSV file")
    q.add_argument("--encoder", help="features for the cross-validated logistic regression: for texts, mean-pooled "
                   f"embeddings of a frozen encoder or TF-IDF ({', '.join(ENCODERS)}; default "
                   f"{DEFAULT_ENCODER}); for images, the built-in model's pooled features ({DEFAULT_IMAGE_MODEL})")
    q.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="cross-validation folds")
    q.add_argument("--seed", type=int, default=0, help="seed of the folds")
    q.set_defaults(func=_quality)


def _names(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give column names separated by commas")
    return names


def _quality(args: argparse.Namespace) -> int:
    if not is_prepared(args.dataset):
        raise BmcoreError(f"no prepared dataset named {args.dataset!r} in the workspace; prepare it first")
    if args.out and not Path(args.out).expanduser().parent.is_dir():  # said before minutes of scoring, not after
        raise BmcoreError(f"cannot write --out {args.out}: folder {Path(args.out).expanduser().parent} does not exist")
    shown = [-1]

    def progress(done: int, total: int, message: str) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != shown[0]:
            shown[0] = tenth
            print(message, file=sys.stderr, flush=True)

    result = run_quality(args.dataset, encoder=args.encoder, folds=args.folds, seed=args.seed, progress=progress)
    if args.out:
        try:
            csv_frame(result.scores).to_csv(Path(args.out).expanduser(), index=False)
        except OSError as exc:
            raise BmcoreError(f"cannot write --out {args.out}: {os_error_message(exc)} (the scores are saved with "
                              f"the dataset, in {quality_dir(args.dataset)})") from exc
    print(json.dumps({**result.summary, "path": str(quality_dir(args.dataset)),
                      **({"out": args.out} if args.out else {})}, indent=2))
    return 0


PROGRESS_MIN_ROWS = 100_000  # below this, counting tokens takes seconds and needs no progress lines


class _Progress:
    """Token counting progress on stderr, for large datasets: a line every 10%, with the elapsed time."""

    def __init__(self) -> None:
        self.start, self.shown = time.time(), 0

    def __call__(self, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if total >= PROGRESS_MIN_ROWS and tenth > self.shown:
            self.shown = tenth
            print(f"counting tokens: {done:,} of {total:,} rows ({tenth * 10}%, {time.time() - self.start:.0f} s)",
                  file=sys.stderr, flush=True)


def _apply_changes(args: argparse.Namespace) -> int:
    if not is_prepared(args.source):
        raise BmcoreError("--apply-changes works on a prepared dataset: give its name as SOURCE")
    new = save_version(load_prepared(args.source), read_changes(args.apply_changes), args.name)
    print(json.dumps({"name": new.name, "path": str(dataset_dir(new.name)), "version": new.version,
                      "splits": {s: len(df) for s, df in new.splits.items()}}))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.max_seq_length < 1:
        raise ValueError("--max-seq-length must be a positive number of tokens")
    if args.data_command == "prepare":
        dataset_dir(args.name)  # a bad name is refused before the source is read
        if args.apply_changes:
            return _apply_changes(args)
        # Refused before the source is read; save_prepared checks again.
        check_replace(args.name, args.overwrite or None, "choose another --name, or give --overwrite to replace it")
    if is_prepared(args.source):
        if args.test_file:
            raise ValueError(f"--test-file needs a file or folder source; {args.source!r} is a prepared dataset")
        ds = load_prepared(args.source)
    else:
        raw = load_source(args.source, sheet=args.sheet)
        if args.test_file:
            test = load_source(args.test_file, sheet=args.sheet)
            if test.modality != raw.modality:
                raise ValueError(f"--test-file {args.test_file} holds {test.modality}s, the source {raw.modality}s")
            raw = with_test_file(raw, test)
        cols, notes = None, []
        forced = PREPARED_SHAPES.get(args.problem_type or "")
        single, scores = args.single_label or forced == "single", forced == "score"
        chosen = args.text_column or args.label_column or args.label_columns or args.label_delimiter or single or scores
        if chosen and (fixed := get_modality(raw.modality).fixed_columns):
            raise ValueError(f"{args.source} {fixed}; leave out the column options")
        if chosen:
            cols, notes = choose_columns(next(iter(raw.frames.values())), args.text_column, args.label_column,
                                         label_columns=args.label_columns, label_delimiter=args.label_delimiter,
                                         single_label=single, scores=scores)
        ds = prepare(raw, name=getattr(args, "name", None) or "dataset", columns=cols,
                     use_source_splits=not args.new_splits, ratios=tuple(args.ratios), seed=args.seed)
        ds.notes[len(raw.notes):len(raw.notes)] = notes
    if args.drop_duplicates:
        drop_duplicates(ds)
    tokenizer = get_modality(ds.modality).counting_tokenizer(args.tokenizer)  # None: no tokens to count (images)
    stats = compute_stats(ds, tokenizer, args.max_seq_length if tokenizer is not None else DEFAULT_MAX_SEQ_LENGTH,
                          tokenizer_name=args.tokenizer, progress=_Progress())
    if args.data_command == "prepare":
        for warning in label_notices(ds.label_names):
            print(f"notice: {warning}", file=sys.stderr)
        path = save_prepared(ds, overwrite=args.overwrite or None)
        if said := get_task(ds.problem_type, ds.modality).data_note:
            print(f"note: {said}, {ds.columns.describe_labels()}", file=sys.stderr)
        print(json.dumps({"name": ds.name, "path": str(path), "splits": stats["rows"], "problem_type": ds.problem_type,
                          "modality": ds.modality, "label_names": ds.label_names}))
        return 0
    out = {"source": ds.source, "modality": ds.modality, "text_columns": ds.columns.text, "label_column": ds.columns.label,
           **({"label_columns": ds.columns.label_columns} if ds.columns.label_columns else {}),
           **({"label_delimiter": ds.columns.label_delimiter} if ds.columns.label_delimiter else {}),
           "label_shape": ds.columns.describe_labels(), "label_names": ds.label_names, "notes": ds.notes,
           "warnings": warnings_for(stats), **stats}
    print(json.dumps(out, indent=2))
    return 0
