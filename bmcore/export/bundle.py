"""The model zip: a finished run's ``model/`` folder (card included) as ``export/<run>-model.zip``.

Files sit at the archive's root, so ``transformers.pipeline`` loads the folder once it is unzipped.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .. import runs
from ..files import atomic_path
from .card import write_model_card
from .run import SKIPPED, export_dir, finished_run


def zip_path(run_dir: str | Path) -> Path:
    """Where the model zip of a run is written."""
    return export_dir(run_dir) / f"{Path(run_dir).name}-model.zip"


def export_zip(run: str | Path, out: str | Path | None = None) -> Path:
    """Zip a finished run's ``model/`` folder (files at the archive's root, card included) and return the zip's path."""
    run_dir = finished_run(run)
    write_model_card(run_dir)
    model_dir = run_dir / runs.MODEL_DIR
    target = Path(out) if out is not None else zip_path(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for p in sorted(model_dir.rglob("*")):
            rel = p.relative_to(model_dir)
            if p.is_file() and p.name not in SKIPPED and not any(part.startswith(".") for part in rel.parts):
                zf.write(p, rel.as_posix())
    return target
