"""Reading and writing the JSON files of run, job, model and evaluation folders, a source file's bytes with a
one-line error, and atomic writes of files and folders: one home for each."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import BmcoreError


def write_json_atomic(path: str | Path, data: Any, default: Any = None) -> None:
    """Write JSON through :func:`atomic_path`: readers never see half a file; an OS error names ``path``.

    ``default`` converts values ``json`` cannot (numpy numbers)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=default)
    except OSError as exc:  # a full disk or a file-size limit fails inside write(), whose error names no file
        raise named_os_error(exc, path) from exc


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path in ``target``'s folder to write a file at: when the block ends without an error the file is
    fsynced and ``os.replace``-d onto ``target`` (readers never see half a file); when it raises, the file is removed.

    For writers that want a path (a zip, ``torch.onnx.export``); :func:`write_text_atomic` and
    :func:`write_json_atomic` write through it."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) through :func:`atomic_path`; an OS error names ``path``, not the temporary file."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise named_os_error(exc, path) from exc


@contextlib.contextmanager
def atomic_folder(target: str | Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``target`` to fill: when the block ends without an error it takes ``target``'s place
    by renames (an existing ``target`` is moved aside first and removed after, so a crash mid-write leaves the previous
    folder whole); when it raises, the temporary folder is removed.

    With ``keep_existing``, a ``target`` that appeared meanwhile (another process filled it first) is kept and the new
    folder dropped: readers of the first are never disturbed."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if keep_existing:
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():  # not a lost race: a real failure
                    raise
        else:
            old = target.with_name(f".{target.name}.old-{time.time_ns()}")
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it took target's place


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


def append_json_lines(path: str | Path, records: list[Any], *, sync: bool = True) -> None:
    """Append ``records`` to a JSON-lines file in one ``write`` (concurrent writers never interleave): the one
    appender of bmcore's ``.jsonl`` files.

    A file whose last line was cut by a crash mid-write gets a newline first, so the torn line stays a line of its
    own (which :func:`read_json_lines` skips) and the new records stay whole. ``sync`` flushes and fsyncs before
    returning (a label is saved when the call returns); NaN is written as JSON's ``NaN``."""
    if not records:
        return
    path = Path(path)
    text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in records)
    try:
        with open(path, "a+b") as fh:
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    text = "\n" + text
            fh.write(text.encode("utf-8"))
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as exc:  # a full disk or a file-size limit: the error of write() names no file
        raise named_os_error(exc, path) from exc


def read_json_lines(path: str | Path, what: str, check: Callable[[Any], str | None]) -> list[dict[str, Any]]:
    """Every whole line of an append-only JSON-lines file, in order: the one reader of bmcore's ``.jsonl`` files.

    A missing file has no lines. A line without its newline (being written) and a line that is not JSON (torn by a
    crash mid-write; see :func:`append_json_lines`) were never confirmed as written and are skipped. ``check(record)``
    says what is wrong with a parsed line (``None``: nothing); a wrong one is a one-line :class:`BmcoreError`
    ("``what`` is damaged: line N ..."), so every consumer can trust the records it gets."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.endswith("\n"):
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                problem = check(record)
                if problem:
                    raise BmcoreError(f"{what} is damaged: line {number} {problem}")
                out.append(record)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise BmcoreError(f"{what} is unreadable ({exc.__class__.__name__})") from exc
    return out


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

