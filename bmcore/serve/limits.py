"""The prediction server's limits, in one place: each with its default, its environment variable and a name.

==================================  ==========  =================================================================
variable                            default     what it caps
==================================  ==========  =================================================================
``BMCORE_SERVE_MAX_BODY_MB``        10          megabytes of one request body (checked from Content-Length, then
                                                while reading)
``BMCORE_SERVE_MAX_INPUTS``         64          texts or images in one request
``BMCORE_SERVE_MAX_TEXT_CHARS``     20000       characters in one text (a model reads about 2,000 at 512 tokens)
``BMCORE_SERVE_MAX_IMAGE_PIXELS``   25000000    pixels in one image, from its header before it is decoded
``BMCORE_SERVE_MAX_CONCURRENT``     128         requests being read or scored at once; more get 503
``BMCORE_SERVE_READ_TIMEOUT_S``     10          seconds to send a request's body; a slower client gets 408
``BMCORE_SERVE_KEEP_ALIVE_S``       5           seconds an idle connection is kept open (uvicorn)
``BMCORE_SERVE_MAX_BATCH``          32          inputs scored together in one batch
``BMCORE_SERVE_MAX_WAIT_MS``        5           milliseconds the first input of a batch waits for more
``BMCORE_API_KEY``                  (none)      when set, ``POST /`` and ``/metadata`` need ``Authorization: Bearer KEY``
==================================  ==========  =================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from ..errors import BmcoreError

API_KEY_ENV = "BMCORE_API_KEY"
PREFIX = "BMCORE_SERVE_"


@dataclass(frozen=True)
class ServeLimits:
    """The caps in force (see the module's table). Each field reads ``BMCORE_SERVE_<FIELD>`` in :func:`serve_limits`."""

    max_body_mb: float = 10
    max_inputs: int = 64
    max_text_chars: int = 20_000
    max_image_pixels: int = 25_000_000
    max_concurrent: int = 128
    read_timeout_s: float = 10
    keep_alive_s: float = 5
    max_batch: int = 32
    max_wait_ms: float = 5

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def lines(self) -> list[str]:
        """What the server prints at start: one line per limit, with the variable that sets it."""
        return [f"  {f.name} = {getattr(self, f.name):g}  ({PREFIX}{f.name.upper()})" if f.type == "float"
                else f"  {f.name} = {getattr(self, f.name)}  ({PREFIX}{f.name.upper()})" for f in fields(self)]

    def as_dict(self) -> dict[str, float]:
        """The limits as JSON-ready numbers (``/metadata``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def serve_limits(**overrides: float) -> ServeLimits:
    """The limits from the environment (``BMCORE_SERVE_<NAME>``), then ``overrides``; a value that is no positive
    number is refused in one line."""
    values: dict[str, float] = {}
    for f in fields(ServeLimits):
        name = f"{PREFIX}{f.name.upper()}"
        raw = (os.environ.get(name) or "").strip()
        if not raw:
            continue
        kind = int if f.type == "int" else float
        try:
            values[f.name] = kind(raw)
        except ValueError:
            raise BmcoreError(f"{name}={raw!r} is not a{'' if kind is float else ' whole'} number") from None
    values.update(overrides)
    for key, value in values.items():
        if not value > 0:
            raise BmcoreError(f"{PREFIX}{key.upper()} must be positive, not {value}")
    return ServeLimits(**values)


def api_key() -> str | None:
    """The API key from ``BMCORE_API_KEY`` (None or empty: no key needed)."""
    return os.environ.get(API_KEY_ENV) or None
