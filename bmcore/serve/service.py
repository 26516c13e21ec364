"""What each route does, apart from the web framework: the API key, the concurrency cap, reading the body within its
size and time limits, parsing it, scoring through the batcher, and the answer's shape. :mod:`bmcore.serve.app` wires
it to FastAPI; every refusal is an :class:`~bmcore.serve.inputs.ApiError` (a 4xx and one line).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import BmcoreError
from ..export.run import read_or_empty
from .batcher import Batcher
from .inputs import ApiError, ApiRequest, parse_image_request, parse_text_request
from .limits import ServeLimits
from .scorer import Scorer
from .shapes import label_scores


class Service:
    """The server's state and routes: one model (``scorer``), its batcher, the limits and the optional API key."""

    def __init__(self, scorer: Scorer, limits: ServeLimits, key: str | None = None) -> None:
        self.scorer = scorer
        self.limits = limits
        self.key = key
        self.batcher = Batcher(scorer.logits, max_batch=limits.max_batch, max_wait_s=limits.max_wait_ms / 1000)
        self.in_flight = 0  # POST / requests being read or scored now (the event loop's thread alone changes it)
        self.refused = 0  # requests refused as too many at once

    def check_key(self, headers: Mapping[str, str]) -> None:
        """Refuse (401) a request without the API key, when one is set: ``Authorization: Bearer KEY``, compared in
        constant time."""
        if self.key is None:
            return
        scheme, _, given = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "this server needs an API key: send the header Authorization: Bearer KEY")
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.key.encode("utf-8")):
            raise ApiError(401, "wrong API key")

    def health(self) -> dict[str, Any]:
        """``GET /health``: the model is loaded and answering; batches scored so far."""
        return {"status": "ok", "model": self.scorer.source, "backend": self.scorer.backend,
                "task": self.scorer.task.problem_type, "in_flight": self.in_flight, "refused_busy": self.refused,
                **self.batcher.stats()}

    def metadata(self) -> dict[str, Any]:
        """``GET /metadata``: labels, task, thresholds, a summary of the model card, the limits and the batching."""
        s = self.scorer
        thresholds = s.task.thresholds(s.label_names, s.meta)
        return {"model": s.source, "backend": s.backend, "task": s.task.problem_type, "task_title": s.task.title,
                "inputs": s.modality.name, "labels": s.label_names,
                "thresholds": dict(zip(s.label_names, thresholds, strict=True)) if thresholds is not None else None,
                "max_seq_length": s.max_seq_length, "card": card_summary(s), "limits": self.limits.as_dict(),
                "batching": {"max_batch": self.limits.max_batch, "max_wait_ms": self.limits.max_wait_ms}}

    async def predict(self, headers: Mapping[str, str], stream: AsyncIterator[bytes]) -> Any:
        """``POST /``: the Hugging Face Inference API's answer for the body ``stream`` delivers."""
        self.check_key(headers)
        if self.in_flight >= self.limits.max_concurrent:
            self.refused += 1
            raise ApiError(503, f"the server is busy: {self.in_flight} requests in progress, the limit "
                                "(BMCORE_SERVE_MAX_CONCURRENT); retry in a moment")
        self.in_flight += 1
        try:
            body = await read_body(headers, stream, self.limits)
            request = self.parse(body, headers.get("content-type") or "")
            results = await self.batcher.submit(request.inputs)
            return self.answer(request, results)
        finally:
            self.in_flight -= 1

    def parse(self, body: bytes, content_type: str) -> ApiRequest:
        """The request's inputs and parameters, by what the model reads (texts, or image files)."""
        if self.scorer.modality.pictures:
            return parse_image_request(body, content_type, self.limits)
        if content_type.lower().startswith(("image/", "audio/", "video/")):
            raise ApiError(415, f"this model classifies text, not {content_type.split(';')[0]}; "
                                'send JSON such as {"inputs": "a text"}')
        return parse_text_request(body, self.limits)

    def answer(self, request: ApiRequest, results: list[Any]) -> Any:
        """The answer per input (see :mod:`bmcore.serve.shapes`); the first refused input refuses the request."""
        n = len(results)
        for i, result in enumerate(results):
            if isinstance(result, BmcoreError):
                raise ApiError(422, f"input {i + 1} of {n}: {result}" if n > 1 else str(result))
            if isinstance(result, BaseException):  # a failure of the model's own: logged by the batcher
                raise ApiError(500, f"the model failed on this request ({result.__class__.__name__}); "
                                    "see the server's log") from result
        s = self.scorer
        answers = label_scores(results, s.task, s.label_names, s.meta, top_k=request.top_k,
                               function_to_apply=request.function_to_apply)
        # An image sent alone gets one list, as the Inference API answers; texts always a list per input.
        return answers[0] if request.single and s.modality.pictures else answers


async def read_body(headers: Mapping[str, str], stream: AsyncIterator[bytes], limits: ServeLimits) -> bytes:
    """The body, refused when it is larger than ``max_body_mb`` (from Content-Length before reading, then while
    reading chunked bodies: 413) or slower than ``read_timeout_s`` to arrive (408: a slow client frees its slot)."""
    cap = limits.max_body_bytes
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, f"Content-Length {declared[:20]!r} is not a number")
        if int(declared) > cap:
            raise ApiError(413, f"the body is {int(declared):,} bytes, more than the limit of {cap:,} "
                                f"({limits.max_body_mb:g} MB, BMCORE_SERVE_MAX_BODY_MB)")
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in stream:
            size += len(chunk)
            if size > cap:
                raise ApiError(413, f"the body is more than {cap:,} bytes, the limit ({limits.max_body_mb:g} MB, "
                                    "BMCORE_SERVE_MAX_BODY_MB)")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), limits.read_timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the body did not arrive within {limits.read_timeout_s:g} s "
                            "(BMCORE_SERVE_READ_TIMEOUT_S)") from None
    return b"".join(chunks)


def card_summary(scorer: Scorer) -> dict[str, Any]:
    """What the model card says in brief, from the run the model came from (when it is one's ``model/``): the run,
    its dataset and base model, and the test split's headline metrics."""
    model_dir = scorer.model_dir
    out: dict[str, Any] = {"dataset": scorer.meta.get("dataset"), "base_model": scorer.meta.get("base_model")}
    if model_dir is None or not runs.is_run_dir(Path(model_dir).parent):
        return out
    run_dir = Path(model_dir).parent
    config = read_or_empty(run_dir / runs.CONFIG_FILE)
    test = (read_or_empty(run_dir / runs.EVAL_FILE).get("test") or {})
    return {"run": run_dir.name, "dataset": out["dataset"] or config.get("dataset"),
            "base_model": out["base_model"] or config.get("model_name_or_path"),
            "test": {k: test[k] for k in scorer.task.headline if isinstance(test, dict) and k in test}}
