"""Limits for hosting bmcore studio in public: a "public demo" switch and caps, all from environment variables.

``BMCORE_PUBLIC_DEMO=1`` turns the caps on with the demo defaults below; each cap can also be set
on its own (in or out of demo mode). Unset caps mean "no limit", the default on a private machine.

==========================  ============  =====================================================
variable                    demo default  what it caps
==========================  ============  =====================================================
``BMCORE_PUBLIC_DEMO``      (off)         1 turns the caps below on with their demo defaults
``BMCORE_MAX_TRAIN_ROWS``   5000          rows in a training split
``BMCORE_MAX_EPOCHS``       3             epochs of a run (and ``max_steps`` worth as many)
``BMCORE_MAX_JOBS``         2             training jobs queued or running at once
``BMCORE_ALLOW_HUB``        0             1 allows Hugging Face Hub model and dataset ids
``BMCORE_ALLOW_LOCAL_PATHS``  0           1 allows files and model folders outside the workspace
``BMCORE_MAX_UPLOAD_MB``    200           megabytes of one uploaded file (as server.maxUploadSize)
``BMCORE_MAX_FILE_ROWS``    200000        rows in one data file
``BMCORE_MAX_FILE_CHARS``   50000000      characters one data file decodes to (all its text cells)
``BMCORE_MAX_CELL_CHARS``   100000        characters in one cell (1,000,000 outside demo mode)
``BMCORE_MAX_IMAGE_PIXELS``  25000000     pixels in one image (89,478,485 outside demo mode, PIL's own)
``BMCORE_MAX_UNPACKED_MB``  1000          megabytes a zip of images unpacks to (4,096 outside demo mode)
``BMCORE_MAX_TOTAL_PIXELS``  250000000    pixels of all the images of one zip, folder, table or
                                          predict call together (10,000,000,000 outside demo mode)
==========================  ============  =====================================================

The file caps bound what a file *expands to*, checked before it is materialised: a 100 KB Parquet
or Excel file can decode to gigabytes of text, and the upload limit only sees the compressed bytes.
Parquet is checked from its footer (rows; unpacked bytes, fixed-width values counted at their decoded
width), then row group by row group with strings still dictionary-encoded; Excel from its zip directory
(unpacked bytes, at most twice the character cap), then cell by cell while streaming its sheets, before
pandas expands shared strings (:mod:`bmcore.bounded`); CSV, TSV and JSON from their decoded text (no
cell is longer than it), then from the cells read. The per-cell cap is on everywhere: no classifier
reads a million characters of one text. In a public demo, reading one file stays under 1.5 GB.

Images are capped one by one (``BMCORE_MAX_IMAGE_PIXELS``) and together (``BMCORE_MAX_TOTAL_PIXELS``), both
from their headers before a pixel is decoded: a 17 KB zip of solid 5000x5000 PNGs is 500,000,000 pixels. Decoding
then streams, so memory stays bounded whatever the total: a dataset reader holds one decoded image per thread
(at most 3 bytes x ``BMCORE_MAX_IMAGE_PIXELS``, 75 MB in demo mode) and keeps PNG bytes; predictions (the
Playground's batch, ``predict``, evaluation) decode one batch at a time, each image reduced on load to twice
the model's input side (JPEG in the decoder, others by a box filter), so a batch of 64 images adds a few MB.

On Streamlit Community Cloud or Hugging Face Spaces, set them as secrets or variables: ``app.py``
copies ``st.secrets`` entries named ``BMCORE_*`` into the environment at start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BmcoreError
from .files import resolve_path
from .workspace import workspace_dir

PUBLIC_DEMO = "BMCORE_PUBLIC_DEMO"
MAX_TRAIN_ROWS = "BMCORE_MAX_TRAIN_ROWS"
MAX_EPOCHS = "BMCORE_MAX_EPOCHS"
MAX_JOBS = "BMCORE_MAX_JOBS"
ALLOW_HUB = "BMCORE_ALLOW_HUB"
ALLOW_LOCAL_PATHS = "BMCORE_ALLOW_LOCAL_PATHS"
MAX_UPLOAD_MB = "BMCORE_MAX_UPLOAD_MB"
MAX_FILE_ROWS = "BMCORE_MAX_FILE_ROWS"
MAX_FILE_CHARS = "BMCORE_MAX_FILE_CHARS"
MAX_CELL_CHARS = "BMCORE_MAX_CELL_CHARS"
MAX_IMAGE_PIXELS = "BMCORE_MAX_IMAGE_PIXELS"
MAX_UNPACKED_MB = "BMCORE_MAX_UNPACKED_MB"
MAX_TOTAL_PIXELS = "BMCORE_MAX_TOTAL_PIXELS"
VARIABLES = (PUBLIC_DEMO, MAX_TRAIN_ROWS, MAX_EPOCHS, MAX_JOBS, ALLOW_HUB, ALLOW_LOCAL_PATHS, MAX_UPLOAD_MB,
             MAX_FILE_ROWS, MAX_FILE_CHARS, MAX_CELL_CHARS, MAX_IMAGE_PIXELS, MAX_UNPACKED_MB, MAX_TOTAL_PIXELS)

DEMO_DEFAULTS = {MAX_TRAIN_ROWS: 5000, MAX_EPOCHS: 3, MAX_JOBS: 2,
                 MAX_FILE_ROWS: 200_000, MAX_FILE_CHARS: 50_000_000, MAX_CELL_CHARS: 100_000,
                 MAX_IMAGE_PIXELS: 25_000_000, MAX_UNPACKED_MB: 1000, MAX_TOTAL_PIXELS: 250_000_000}
DEFAULT_MAX_CELL_CHARS = 1_000_000  # outside demo mode too
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's own warning threshold (a 0.25 GB RGB image): always on
DEFAULT_MAX_UNPACKED_MB = 4096  # a zip of images: always on, against zip bombs
DEFAULT_MAX_TOTAL_PIXELS = 10_000_000_000  # all images of one source: 200,000 images of 224x224; minutes of decoding
DEFAULT_MAX_UPLOAD_MB = 200  # the same as server.maxUploadSize in .streamlit/config.toml
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise BmcoreError(f"{name}={raw!r} is not a yes/no setting; use 1 or 0")
    return value in _TRUE


def _number(name: str, default: float | None, kind: type = int) -> float | None:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise BmcoreError(f"{name}={raw!r} is not a number") from exc
    if value <= 0:
        raise BmcoreError(f"{name} must be positive, not {raw}")
    return value


@dataclass(frozen=True)
class Limits:
    """The caps in force (None: no limit)."""

    public_demo: bool
    max_train_rows: int | None
    max_epochs: float | None
    max_jobs: int | None
    allow_hub: bool
    allow_local_paths: bool
    max_upload_mb: float
    max_file_rows: int | None = None
    max_file_chars: int | None = None
    max_cell_chars: int = DEFAULT_MAX_CELL_CHARS
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS

    def describe(self) -> str:
        """One line for the UI: what this deployment caps."""
        parts = []
        if self.max_train_rows:
            parts.append(f"at most {self.max_train_rows:,} training rows")
        if self.max_epochs:
            parts.append(f"{self.max_epochs:g} epochs")
        if self.max_jobs:
            parts.append(f"{self.max_jobs} jobs at once")
        if not self.allow_hub:
            parts.append("no Hugging Face Hub downloads")
        if not self.allow_local_paths:
            parts.append("no server paths outside the workspace")
        parts.append(f"uploads up to {self.max_upload_mb:g} MB")
        if self.max_file_rows:
            parts.append(f"data files up to {self.max_file_rows:,} rows")
        if self.max_file_chars:
            parts.append(f"{self.max_file_chars:,} characters")
        return ("Public demo: " if self.public_demo else "Limits: ") + ", ".join(parts) + "."

    @property
    def any(self) -> bool:
        """True when any cap beyond the default upload size is on."""
        return bool(self.public_demo or self.max_train_rows or self.max_epochs or self.max_jobs
                    or not self.allow_hub or not self.allow_local_paths)


def current() -> Limits:
    """The limits from the environment now (read on every call, so tests and hosts can change them)."""
    demo = _flag(PUBLIC_DEMO, False)
    d = DEMO_DEFAULTS if demo else {}
    return Limits(
        public_demo=demo,
        max_train_rows=_number(MAX_TRAIN_ROWS, d.get(MAX_TRAIN_ROWS)),  # type: ignore[arg-type]
        max_epochs=_number(MAX_EPOCHS, d.get(MAX_EPOCHS), float),
        max_jobs=_number(MAX_JOBS, d.get(MAX_JOBS)),  # type: ignore[arg-type]
        allow_hub=_flag(ALLOW_HUB, not demo),
        allow_local_paths=_flag(ALLOW_LOCAL_PATHS, not demo),
        max_upload_mb=_number(MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MB, float) or DEFAULT_MAX_UPLOAD_MB,
        max_file_rows=_number(MAX_FILE_ROWS, d.get(MAX_FILE_ROWS)),  # type: ignore[arg-type]
        max_file_chars=_number(MAX_FILE_CHARS, d.get(MAX_FILE_CHARS)),  # type: ignore[arg-type]
        max_cell_chars=_number(MAX_CELL_CHARS, d.get(MAX_CELL_CHARS, DEFAULT_MAX_CELL_CHARS)),  # type: ignore[arg-type]
        max_image_pixels=_number(MAX_IMAGE_PIXELS, d.get(MAX_IMAGE_PIXELS, DEFAULT_MAX_IMAGE_PIXELS)),  # type: ignore[arg-type]
        max_unpacked_mb=_number(MAX_UNPACKED_MB, d.get(MAX_UNPACKED_MB, DEFAULT_MAX_UNPACKED_MB), float),  # type: ignore[arg-type]
        max_total_pixels=_number(MAX_TOTAL_PIXELS, d.get(MAX_TOTAL_PIXELS, DEFAULT_MAX_TOTAL_PIXELS)),  # type: ignore[arg-type]
    )


def check_hub(what: str) -> None:
    """Refuse a Hub model or dataset id when Hub downloads are turned off."""
    if not current().allow_hub:
        raise BmcoreError(f"{what} is on the Hugging Face Hub, and Hub downloads are turned off here ({ALLOW_HUB}=0); "
                          "use builtin:minilm, builtin:bbc-news or an upload")


def check_local_path(path: Path, what: str) -> None:
    """Refuse a server path outside the workspace when local paths are turned off (public hosting)."""
    if current().allow_local_paths:
        return

    base = workspace_dir()
    resolved = resolve_path(path)
    if resolved != base and base not in resolved.parents:
        raise BmcoreError(f"{what} {path} is outside the workspace, and paths outside it are turned off here "
                          f"({ALLOW_LOCAL_PATHS}=0); upload a file instead")


def check_upload(name: str, size: int) -> None:
    """Refuse an uploaded file over the upload limit."""
    limit = current().max_upload_mb
    if size > limit * 1024 * 1024:
        raise BmcoreError(f"{name} is {size / 1024 / 1024:.1f} MB, over the upload limit of {limit:g} MB; "
                          "use a smaller sample, or a local path on your own machine")


def check_file_rows(name: str, rows: int) -> None:
    """Refuse a data file with more rows than the file cap (checked before the rows are read, where possible)."""
    cap = current().max_file_rows
    if cap and rows > cap:
        raise BmcoreError(f"{name} has more than {cap:,} rows, this deployment's limit ({MAX_FILE_ROWS}); "
                          "use a smaller sample")


def check_file_chars(name: str, chars: int) -> None:
    """Refuse a data file whose text cells add up to more characters than the cap."""
    cap = current().max_file_chars
    if cap and chars > cap:
        raise BmcoreError(f"{name} decodes to more than {cap:,} characters of text, this deployment's limit "
                          f"({MAX_FILE_CHARS}); use a smaller sample")


def check_unpacked(name: str, nbytes: int) -> None:
    """Refuse a compressed file (Parquet pages, an xlsx zip) that unpacks to more than twice the character cap."""
    cap = current().max_file_chars
    if cap and nbytes > 2 * cap:
        raise BmcoreError(f"{name} unpacks to {nbytes:,} bytes, more than this deployment's limit of {cap:,} characters "
                          f"of text allows ({MAX_FILE_CHARS}); use a smaller sample")


def check_cell_chars(name: str, longest: int) -> None:
    """Refuse a data file with a cell longer than the per-cell cap."""
    cap = current().max_cell_chars
    if longest > cap:
        raise BmcoreError(f"{name} has a cell of {longest:,} characters, more than the limit of {cap:,} ({MAX_CELL_CHARS}); "
                          "a model reads only the first few thousand characters of a text, so cut the long ones")


def check_image_pixels(name: str, width: int, height: int) -> None:
    """Refuse an image with more pixels than the cap, from its header, before it is decoded (a decompression bomb)."""
    cap = current().max_image_pixels
    if width * height > cap:
        raise BmcoreError(f"{name} is {width:,}x{height:,} pixels, more than the limit of {cap:,} pixels "
                          f"({MAX_IMAGE_PIXELS}); resize it first")


def check_total_pixels(name: str, total: int) -> None:
    """Refuse images that add up to more pixels than the cap, from their headers, before any is decoded."""
    cap = current().max_total_pixels
    if total > cap:
        raise BmcoreError(f"{name}: its images add up to more than {cap:,} pixels, the limit ({MAX_TOTAL_PIXELS}); "
                          "use fewer or smaller images")


def check_unpacked_images(name: str, nbytes: int) -> None:
    """Refuse a zip (or Parquet file) of images that unpacks to more than the cap (a zip bomb), before unpacking."""
    cap = current().max_unpacked_mb
    if nbytes > cap * 1024 * 1024:
        raise BmcoreError(f"{name} unpacks to {nbytes / 1024 / 1024:,.0f} MB, more than the limit of {cap:g} MB "
                          f"({MAX_UNPACKED_MB}); use a smaller sample")


def check_epochs(epochs: float | None, max_steps: int | None) -> None:
    """Refuse more epochs than the cap (``max_steps`` is checked against the data in :func:`check_training`)."""
    cap = current().max_epochs
    if cap and max_steps is None and epochs is not None and epochs > cap:
        raise BmcoreError(f"num_train_epochs {epochs:g} is above this deployment's limit of {cap:g} ({MAX_EPOCHS})")


def check_training(n_train: int, max_steps: int | None, examples_per_step: int) -> None:
    """Refuse a training split or a step count above the caps, once the data size is known."""
    lim = current()
    if lim.max_train_rows and n_train > lim.max_train_rows:
        raise BmcoreError(f"the training split has {n_train:,} rows, above this deployment's limit of "
                          f"{lim.max_train_rows:,} ({MAX_TRAIN_ROWS}); prepare a smaller sample")
    if lim.max_epochs and max_steps is not None and n_train > 0:
        epochs = max_steps * examples_per_step / n_train
        if epochs > lim.max_epochs + 1e-9:
            raise BmcoreError(f"max_steps {max_steps} is {epochs:.1f} epochs of this data, above this deployment's limit of "
                              f"{lim.max_epochs:g} ({MAX_EPOCHS})")


def check_jobs(active: int) -> None:
    """Refuse a new training job when ``active`` jobs are already queued or running and that is the cap."""
    cap = current().max_jobs
    if cap and active >= cap:
        raise BmcoreError(f"{active} training jobs are already queued or running, the limit here ({MAX_JOBS}={cap}); "
                          "wait for one to finish")
