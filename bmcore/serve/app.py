"""The FastAPI app: ``POST /`` (the Hugging Face Inference API), ``GET /health``, ``GET /metadata``, and the OpenAPI
docs at ``/docs``. Every error is JSON ``{"error": "one line"}`` with a 4xx status (a failure of the model itself,
which no request should cause, is a 500 with one line and the traceback in the server's log, never in the answer).

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations (``request: Request``) at
definition, and ``Request`` is imported inside :func:`create_app`, so the CLI's ``--help`` loads no FastAPI.
"""

from typing import Any

from .inputs import ApiError
from .service import Service

LABEL_SCORE = {"type": "object", "required": ["label", "score"], "properties": {
    "label": {"type": "string"}, "score": {"type": "number"},
    "threshold": {"type": "number", "description": "multi-label: the label's decision threshold"},
    "predicted": {"type": "boolean", "description": "multi-label: the score reaches the threshold (the label is on)"}}}
TEXT_INPUT = {"oneOf": [{"type": "string"}, {"type": "object", "required": ["text"], "properties": {
    "text": {"type": "string"}, "text_pair": {"type": "string"}}}]}
PARAMETERS_DOC = {"type": "object", "properties": {
    "top_k": {"type": "integer", "minimum": 1, "description": "the best k labels only (default: all, best first)"},
    "function_to_apply": {"type": "string", "enum": ["softmax", "sigmoid", "none"],
                          "description": "default: the model's own (softmax; multi-label sigmoid; regression none)"}}}
PREDICT_DOC = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["inputs"], "properties": {
            "inputs": {"oneOf": [TEXT_INPUT, {"type": "array", "items": TEXT_INPUT}],
                       "description": "texts (or text pairs); an image model takes base64 image bytes here"},
            "parameters": PARAMETERS_DOC}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                "description": "an image model: the image file's bytes"}}}},
    "responses": {"200": {"description": "per input, its labels and scores, best first", "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "array", "items": LABEL_SCORE}}}}},
        **{str(code): {"description": what, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"error": {"type": "string"}}}}}}
           for code, what in ((400, "not JSON, or invalid UTF-8"), (401, "missing or wrong API key"),
                              (408, "the body arrived too slowly"), (413, "over a size limit"),
                              (415, "an image sent to a text model"), (422, "wrong types, empty or unreadable inputs"),
                              (503, "too many requests at once"))}},
}


def error_response(status: int, message: str) -> Any:
    """``{"error": message}`` with ``status`` (503 also says when to retry)."""
    from fastapi.responses import JSONResponse

    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def _handlers(app: Any) -> None:
    """Every error as ``{"error": ...}``: ours, the framework's (404, 405), and anything unexpected."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def refused(request: Any, exc: ApiError) -> Any:
        return error_response(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def framework(request: Any, exc: HTTPException) -> Any:
        what = {404: f"no route {request.url.path}; POST / to predict, GET /health, /metadata or /docs",
                405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
        return error_response(exc.status_code, str(what))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Any, exc: RequestValidationError) -> Any:
        first = (exc.errors() or [{}])[0]
        return error_response(422, f"{'.'.join(str(x) for x in first.get('loc', ()))}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Any, exc: Exception) -> Any:
        return error_response(500, f"internal error ({exc.__class__.__name__}); see the server's log")


def create_app(service: Service) -> Any:
    """The FastAPI app serving ``service``'s model."""
    from fastapi import FastAPI, Request

    s = service.scorer
    app = FastAPI(title="bmcore prediction API", version="1",
                  description=f"{s.task.title} of {s.modality.name} with {s.source} ({s.backend}). Request and "
                              "answer shapes are the Hugging Face Inference API's.")
    app.state.service = service
    _handlers(app)

    @app.get("/health", summary="the model is loaded and answering")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/metadata", summary="labels, task, thresholds, model card summary, limits")
    async def metadata(request: Request) -> dict[str, Any]:
        service.check_key(request.headers)
        return service.metadata()

    @app.post("/", summary="predict (Hugging Face Inference API shapes)", openapi_extra=PREDICT_DOC)
    async def predict(request: Request) -> Any:
        from fastapi.responses import JSONResponse
        from starlette.requests import ClientDisconnect

        try:
            return JSONResponse(await service.predict(request.headers, request.stream()))
        except ClientDisconnect:  # the client went away mid-body: nobody reads this answer
            return error_response(400, "the client closed the connection before the body arrived")

    return app
