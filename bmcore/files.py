"""Reading and writing the JSON files of run, job, model and evaluation folders, and a source file's bytes with a
one-line error: one home for each."""

from __future__ import annotations

import json
import os
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


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON object, raising :class:`BmcoreError` when it is missing or damaged."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BmcoreError(f"{path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise BmcoreError(f"{path.name} in {path.parent.name} is damaged ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise BmcoreError(f"{path.name} in {path.parent.name} is not a JSON object")
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
