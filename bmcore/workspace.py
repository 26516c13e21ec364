"""The workspace folder: prepared datasets, runs and background jobs live here, and nowhere else."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import BmcoreError, os_error_message

WORKSPACE_ENV = "BMCORE_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"
DATASETS_DIR = "datasets"
RUNS_DIR = "runs"
JOBS_DIR = "jobs"
LABELLING_DIR = "labelling"

# Names become folder names, so they are restricted to a safe alphabet.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def workspace_dir() -> Path:
    """The workspace folder: ``$BMCORE_WORKSPACE`` or ``./workspace``, created on demand."""
    path = Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe folder name, else raise a one-line error."""
    name = name or ""
    if name != name.strip():  # " data" or "data\n" would be saved as "data" but shown and recorded as typed
        raise BmcoreError(f"invalid {what} {name!r}: it starts or ends with a space or line break; remove it")
    if not _NAME_RE.match(name) or name in {".", ".."} or ".." in name:
        raise BmcoreError(
            f"invalid {what} {name!r}: use 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def inside(base: Path, *parts: str) -> Path:
    """Join ``parts`` onto ``base`` and refuse any result that escapes ``base`` (``..``, absolute paths, symlinks)."""
    base = base.resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise BmcoreError(f"path {'/'.join(parts)!r} escapes the workspace {base}")
    return path


def datasets_dir() -> Path:
    """Folder holding prepared datasets, one subfolder each."""
    path = workspace_dir() / DATASETS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Folder holding training runs, one subfolder each."""
    path = workspace_dir() / RUNS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def jobs_dir() -> Path:
    """Folder holding background jobs other than training (scoring, export, push, estimate), one subfolder each."""
    path = workspace_dir() / JOBS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def labelling_dir() -> Path:
    """Folder holding labelling projects (:mod:`bmcore.labelling`), one subfolder each."""
    path = workspace_dir() / LABELLING_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_regular(path: str | Path) -> None:
    """Refuse a path that is neither a regular file nor a folder, from ``os.stat`` alone (following links): a FIFO
    would block forever when opened, and ``/dev/zero`` never ends. A path that does not exist passes."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BmcoreError(f"cannot read {os_error_message(exc)}") from exc
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    raise BmcoreError(f"{path} is {kind}, not a regular file or folder; save the data to a file first")
