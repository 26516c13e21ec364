"""``python -m bmcore serve --model RUN_OR_DIR [--host 127.0.0.1] [--port 8000] [--onnx]``: an HTTP prediction API
with the Hugging Face Inference API's shapes (see :mod:`bmcore.serve`). ``GET /health`` answers once the model is
loaded. With ``--onnx`` the model runs in ONNX Runtime: a run folder without an ONNX export is exported first (once;
the export is kept in ``<run>/export/onnx`` with its parity check); a folder holding ``model.onnx`` is served as is."""

from __future__ import annotations

import argparse

from ..errors import BmcoreError
from ..serve.server import serve


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0 picks a free one)")
    return port


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model over HTTP (Hugging Face Inference API shapes, dynamic batching)")
    p.add_argument("--model", required=True, help="a run folder or its model/ folder, a model folder, builtin:minilm; "
                                                  "with --onnx also a folder holding model.onnx")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--onnx", action="store_true", help="run the model's ONNX export in ONNX Runtime (exported first "
                                                       "when the run has none)")
    p.add_argument("--precision", default="auto", help="PyTorch only: auto, fp32, fp16 or bf16 (default auto)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.onnx and args.precision != "auto":
        raise BmcoreError("--precision is for PyTorch; an ONNX export runs in fp32")
    return serve(args.model, host=args.host, port=args.port, onnx=args.onnx, precision=args.precision)
