"""What the Export section of the Evaluate page (and the export CLI) shows: the command behind an export and the
sentences that sum up an ONNX parity check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import runs
from ..display import md
from ..export.onnx import PARITY_ATOL, OnnxExport
from ..export.run import is_image_model_folder


def export_command(run_dir: str | Path, formats: list[str]) -> list[str]:
    """The CLI command behind an export, for the UI to show."""
    cmd = ["python", "-m", "bmcore", "export", str(run_dir)]
    for f in formats:
        cmd += ["--format", f]
    return cmd


def parity_summary(parity: dict[str, Any]) -> str:
    """One line for a parity result: verdict, max |logit diff| (a regression model's: |score diff|), the share of
    examples whose prediction agrees (label or score agreement, as the model's task compared them) and what was
    compared."""
    verdict = "passed" if parity.get("passed") else "FAILED"
    key = next((k for k in parity if k.endswith("_agreement")), "label_agreement")
    agree = parity.get(key)
    n = parity.get("n", 0)
    total = parity.get("split_size", n)
    what = f"all {n:,}" if n == total else f"the first {n:,} of {total:,}"
    return (f"ONNX parity {verdict}: max |{parity.get('output') or 'logit'} diff| "
            f"{parity.get('max_abs_diff', float('nan')):.2e} (tolerance {parity.get('atol', PARITY_ATOL):.0e}), "
            f"{key.replace('_', ' ')} {'-' if agree is None else f'{agree:.1%}'} on {what} test examples")


def onnx_note(run_dir: Path, onnx: OnnxExport) -> str:
    """The page's note on an ONNX export (Markdown-escaped): the parity line, and where the tokenizer (or image
    processor) and config were written beside ``model.onnx``."""
    helper = "image processor" if is_image_model_folder(Path(run_dir) / runs.MODEL_DIR) else "tokenizer"
    return md(parity_summary(onnx.parity) + f". The {helper} and config are in {onnx.path.parent}.")
