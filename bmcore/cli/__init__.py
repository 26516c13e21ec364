"""Command line: ``python -m bmcore {data,train,runs,evaluate,predict,label,...}``.

Each command lives in its own module here with ``register(subparsers)``. Bad input
raises :class:`bmcore.errors.BmcoreError` (or ``ValueError``), which becomes one line
on stderr and exit code 2 - never a traceback. So does any OS error a user can cause (a read-only
workspace, a full disk, a file where a folder belongs): one line that names the path.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import os_error_message

COMMANDS = ("data", "pretrain", "train", "tune", "runs", "jobs", "evaluate", "predict", "serve", "export", "bench",
            "label")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as argparse does, without the usage dump
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available command registered."""
    parser = _Parser(prog="python -m bmcore", description="bmcore: fine-tune, evaluate and explain text classifiers.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"bmcore.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bmcore.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # BmcoreError, and UnicodeDecodeError and the like from a library
        if args.debug:
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError, ENOSPC, EROFS...
        if args.debug:
            raise
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
