"""``python -m bmcore export RUN [--format zip|onnx|card|hub ...]``: ship a finished run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import BmcoreError
from ..export.bundle import export_zip, zip_path
from ..export.card import write_model_card
from ..export.hub import check_push, push_to_hub
from ..export.onnx import ONNX_DIR, PARITY_ATOL, PARITY_FILE, PARITY_MAX_EXAMPLES, export_onnx
from ..export.run import FORMATS, export_dir, finished_run
from ..report.export import parity_summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a finished run's model as a zip, a model card, ONNX (checked against PyTorch) "
                                      "or a Hugging Face Hub repo")
    p.add_argument("run", metavar="RUN_DIR", help="a completed run folder, or a run name in the workspace")
    p.add_argument("--format", action="append", choices=FORMATS, dest="formats",
                   help="zip: model/ as a zip; card: write model/README.md; onnx: model.onnx and its parity check; "
                        "hub: push model/ to the Hub. Repeat for several (default zip)")
    p.add_argument("--out", help="folder for the zip and onnx/ (default RUN_DIR/export)")
    p.add_argument("--max-examples", type=int, default=PARITY_MAX_EXAMPLES,
                   help=f"test examples the ONNX parity check compares, the first ones (default {PARITY_MAX_EXAMPLES}; "
                        "0 for all)")
    p.add_argument("--atol", type=float, default=PARITY_ATOL,
                   help=f"largest |logit difference| the parity check accepts (default {PARITY_ATOL:g})")
    p.add_argument("--repo-id", help="Hub repo for --format hub, as owner/name")
    p.add_argument("--token", help="Hub write token for --format hub (default: the HF_TOKEN variable, which keeps it out "
                                   "of your shell history)")
    p.add_argument("--public", action="store_true", help="create the Hub repo public (default private)")
    p.set_defaults(func=_run)


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _run(args: argparse.Namespace) -> int:
    formats = list(dict.fromkeys(args.formats or ["zip"]))
    if args.max_examples < 0:
        raise BmcoreError("--max-examples must be 0 (all) or a positive number of test examples")
    run_dir = finished_run(args.run)
    if "hub" in formats:
        check_push(args.repo_id or "", args.token)  # fail before the slow formats, not after them
    out = Path(args.out).expanduser() if args.out else export_dir(run_dir)
    status = 0
    for fmt in formats:
        if fmt == "card":
            print(f"model card: {write_model_card(run_dir)}")
        elif fmt == "zip":
            path = export_zip(run_dir, out / zip_path(run_dir).name)
            print(f"zip: {path} ({_size(path)})")
        elif fmt == "onnx":
            result = export_onnx(run_dir, out / ONNX_DIR, max_examples=args.max_examples or None, atol=args.atol)
            print(f"onnx: {result.path} ({_size(result.path)})")
            print(parity_summary(result.parity))
            print(f"parity: {result.path.parent / PARITY_FILE}")
            status = status or (0 if result.passed else 1)
        elif fmt == "hub":
            url = push_to_hub(run_dir, args.repo_id or "", args.token, private=not args.public)
            print(f"hub: {url}")
    return status
