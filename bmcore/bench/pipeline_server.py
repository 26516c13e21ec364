"""The endpoint users would write themselves, the baseline of ``bench --only serve``: FastAPI and uvicorn around
``transformers.pipeline("text-classification", model=DIR)``, as the FastAPI and transformers tutorials write it.

The pipeline is built once at start-up; one request is one pipeline call. The handler is a plain ``def``, so FastAPI
runs it in its thread pool (the tutorials' advice for blocking work; an ``async def`` would hold the event loop and
serve one request at a time). ``GET /health`` answers 200 once the pipeline is loaded; ``POST /`` takes
``{"inputs": "text"}`` and returns the pipeline's list of ``{"label", "score"}``, the Hugging Face Inference API's
shape. Nothing here batches, caps or checks anything beyond what FastAPI does by default: it is the baseline.

Run as a subprocess: ``python -m bmcore.bench.pipeline_server --model DIR [--host 127.0.0.1] [--port 8000]``.
"""

import argparse
import sys
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class PipelineRequest(BaseModel):
    """The body the Hugging Face Inference API takes for one text."""

    inputs: str


def pipeline_app(model_dir: str) -> FastAPI:
    """The FastAPI app around a ``text-classification`` pipeline on ``model_dir`` (loaded here, once)."""
    from transformers import pipeline

    pipe = pipeline("text-classification", model=model_dir)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/")
    def classify(request: PipelineRequest) -> Any:
        return pipe(request.inputs)

    return app


def serve_pipeline(argv: list[str] | None = None) -> int:
    """Parse the arguments, load the pipeline, and serve until stopped."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bmcore.bench.pipeline_server", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a save_pretrained model folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    uvicorn.run(pipeline_app(args.model), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(serve_pipeline())
