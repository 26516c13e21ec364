"""Reading and writing the JSON files of run, job, model and evaluation folders: one home for both."""

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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
