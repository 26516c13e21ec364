"""Rewrite the bad-input table in README.md from tests/catalogue.py (between the two marker comments)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from catalogue import readme_table  # noqa: E402

START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{readme_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
