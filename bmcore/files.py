"""Reading and writing the JSON files of run, job, model and evaluation folders, and a source file's bytes with a
one-line error: one home for each."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import BmcoreError


def write_json_atomic(path: str | Path, data: Any, default: Any = None) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then ``os.replace``: readers never see half a file.

    ``default`` converts values ``json`` cannot (numpy numbers)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk or a file-size limit fails inside write(), whose error names no file
        tmp.unlink(missing_ok=True)
        raise named_os_error(exc, path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def named_os_error(exc: OSError, path: str | Path) -> OSError:
    """``exc`` naming ``path`` (the file meant, not a temporary file beside it), of the same kind (PermissionError...)."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def read_json(path: str | Path, what: str | None = None, fix: str = "") -> dict[str, Any]:
    """Read a JSON object, raising a one-line :class:`BmcoreError` when it is missing or damaged: the one JSON reader.

    ``what`` names the file in the message (default ``NAME in FOLDER``); ``fix`` is appended to it (``; prepare it
    again``)."""
    path = Path(path)
    what = what or f"{path.name} in {path.parent.name}"
    fix = f"; {fix}" if fix else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BmcoreError(f"{what if what != f'{path.name} in {path.parent.name}' else path} does not exist{fix}") from exc
    except UnicodeDecodeError as exc:
        raise BmcoreError(f"{what} is not UTF-8 text (a byte at position {exc.start} is not){fix}") from exc
    except json.JSONDecodeError as exc:
        raise BmcoreError(f"{what} is damaged: not valid JSON ({exc.msg} at line {exc.lineno}){fix}") from exc
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"{what} is damaged ({exc.__class__.__name__}){fix}") from exc
    if not isinstance(data, dict):
        raise BmcoreError(f"{what} is not a JSON object{fix}")
    return data


def read_source_bytes(path: str | Path, shown: str | Path | None = None) -> bytes:
    """A source file's bytes; a missing or unreadable file is a one-line :class:`BmcoreError` naming ``shown``."""
    shown = shown if shown is not None else path
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise BmcoreError(f"{shown} does not exist") from exc
    except OSError as exc:
        raise BmcoreError(f"cannot read {shown}: {exc.strerror}") from exc


def resolve_path(path: str | Path, shown: str | Path | None = None) -> Path:
    """``Path(path).expanduser().resolve()``, with a link loop (``ln -s x.csv x.csv``) as a one-line
    :class:`BmcoreError` naming ``shown``: Python 3.11 raises ``RuntimeError("Symlink loop ...")`` there, 3.13 ``OSError``."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as exc:
        raise BmcoreError(f"{shown if shown is not None else path}: too many levels of symbolic links "
                          "(a link that leads back to itself); remove or fix the link") from exc


def write_with_atomic(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Write a file through ``write(temporary_path)`` (``frame.to_parquet``, ``frame.to_csv``...) into a temporary file
    in the same folder, then ``os.replace`` it onto ``path``: readers never see half a file, and a failed write leaves
    no temporary file behind (its error names ``path``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise named_os_error(exc, path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
