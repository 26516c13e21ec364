"""User-facing errors: one line that names the problem and, where it helps, the fix."""

from __future__ import annotations

import errno


class BmcoreError(ValueError):
    """A problem with the user's input or environment, explained in one line.

    The CLI prints it and exits with code 2; the UI shows it with ``st.error``.
    It subclasses ``ValueError`` so configuration checks can raise it directly.
    """

    def __init__(self, message: str) -> None:
        # Keep it to one line: tracebacks and multi-line dumps never reach users.
        super().__init__(" ".join(str(message).split()))


_OS_ERRORS = {
    errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
    errno.ENOTDIR: "is not a folder (a file is in the way)", errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists", errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is exceeded", errno.EFBIG: "the file is larger than allowed here (file size limit)", errno.ENOENT: "does not exist", errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many levels of symbolic links",
}


def os_error_message(exc: OSError, path: object = None) -> str:
    """One line for an OS error a user can cause (permissions, a read-only or full disk, a file where a folder
    belongs): the path (``path`` when given, e.g. a folder rather than a temporary file in it) and what went
    wrong, never the errno dump."""
    what = _OS_ERRORS.get(exc.errno or 0) or (exc.strerror or exc.__class__.__name__).lower()
    paths = [str(path)] if path is not None else [str(p) for p in (exc.filename, exc.filename2) if p]
    return " ".join(f"{' -> '.join(paths) + ': ' if paths else ''}{what}".split())


def error_line(exc: BaseException) -> str:
    """The one line a user sees for a refused action: an OS error through :func:`os_error_message` (the file and
    what went wrong, never ``[Errno 27]``), anything else as its message."""
    return os_error_message(exc) if isinstance(exc, OSError) else " ".join(str(exc).split())
