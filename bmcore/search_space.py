"""What a search may vary: one :class:`SearchParam` per TrainConfig setting, in bmcore's words.

Tasks and modalities say which settings a search varies and over what range (``search_space``); :mod:`bmcore.tune`
turns each into Optuna's ``trial.suggest_*``. Kept free of Optuna, so a task or a page can name a space without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOG, FLOAT, INT, CHOICE = "log", "float", "int", "choice"


@dataclass(frozen=True)
class SearchParam:
    """One setting a search varies: ``name`` is a TrainConfig field; ``kind`` log (a float on a log scale), float,
    int (both ends included) or choice (one of ``choices``)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @classmethod
    def log(cls, name: str, low: float, high: float) -> SearchParam:
        return cls(name, LOG, float(low), float(high))

    @classmethod
    def floats(cls, name: str, low: float, high: float) -> SearchParam:
        return cls(name, FLOAT, float(low), float(high))

    @classmethod
    def ints(cls, name: str, low: int, high: int) -> SearchParam:
        return cls(name, INT, int(low), int(high))

    @classmethod
    def choice(cls, name: str, choices: tuple[Any, ...]) -> SearchParam:
        return cls(name, CHOICE, choices=tuple(choices))

    def describe(self) -> str:
        """The range in a few words: "1e-05 to 0.001 (log)", "one of 16, 32"."""
        if self.kind == CHOICE:
            return "one of " + ", ".join("auto" if c is None else str(c) for c in self.choices)
        return f"{self.low:g} to {self.high:g}" + (" (log scale)" if self.kind == LOG else "")
