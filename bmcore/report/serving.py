"""What the Playground and the Export section show about serving a model over HTTP (``python -m bmcore serve``): the
command that starts the server and a ``curl`` line that calls it, in the Hugging Face Inference API's shapes. The
server prints the same ``curl`` line when it starts (:mod:`bmcore.serve.server`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .. import runs
from ..export.run import is_image_model_folder

SERVE_URL = "http://127.0.0.1:8000"
SERVE_NOTE = ("Serve it over HTTP: `POST /` takes the Hugging Face Inference API's body, so "
              "`huggingface_hub.InferenceClient(base_url=...)` calls it unchanged; requests that arrive together are "
              "scored in one batch. `GET /health`, `/metadata` and `/docs` (OpenAPI) describe it; limits are set by "
              "`BMCORE_SERVE_*` variables and `BMCORE_API_KEY` requires a key (see README, Serve).")


def serve_command(model: str | Path, *, onnx: bool = False, port: int = 8000) -> str:
    """``python -m bmcore serve --model MODEL [--port N] [--onnx]``, shell-quoted."""
    return (f"python -m bmcore serve --model {shlex.quote(str(model))}"
            f"{f' --port {port}' if port != 8000 else ''}{' --onnx' if onnx else ''}")


def curl_command(pictures: bool, url: str = SERVE_URL, *, key: bool = False, text: str = "I loved it") -> str:
    """A ``curl`` line that calls the server: an image file's bytes for an image model, else JSON with one text;
    with ``key``, the Authorization header that ``BMCORE_API_KEY`` requires."""
    auth = ' -H "Authorization: Bearer $BMCORE_API_KEY"' if key else ""
    if pictures:
        return f"curl -X POST --data-binary @picture.jpg -H 'Content-Type: image/jpeg'{auth} {url}/"
    body = shlex.quote(json.dumps({"inputs": text}))
    return f"curl -X POST -H 'Content-Type: application/json'{auth} -d {body} {url}/"


def serve_snippet(model: str | Path, pictures: bool) -> str:
    """Shell lines: start the server on a model, then call it with ``curl`` (what the pages show)."""
    return "\n".join([serve_command(model), "# in another terminal, once it says 'listening on':",
                      curl_command(pictures)])


def run_serve_snippet(run_dir: str | Path) -> str:
    """:func:`serve_snippet` for a run (its model's inputs read from its folder), with the ONNX Runtime variant."""
    pictures = is_image_model_folder(Path(run_dir) / runs.MODEL_DIR)
    return "\n".join([serve_snippet(run_dir, pictures),
                      "# or on ONNX Runtime (exports the run to ONNX first if it has no export yet):",
                      serve_command(run_dir, onnx=True)])
