"""User-facing errors: one line that names the problem and, where it helps, the fix."""

from __future__ import annotations


class BmcoreError(ValueError):
    """A problem with the user's input or environment, explained in one line.

    The CLI prints it and exits with code 2; the UI shows it with ``st.error``.
    It subclasses ``ValueError`` so configuration checks can raise it directly.
    """

    def __init__(self, message: str) -> None:
        # Keep it to one line: tracebacks and multi-line dumps never reach users.
        super().__init__(" ".join(str(message).split()))
