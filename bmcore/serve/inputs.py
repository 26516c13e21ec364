"""A request body read into inputs and parameters, as the Hugging Face Inference API takes them, or refused with an
:class:`ApiError`: a 4xx status and one line.

Text models take JSON: ``{"inputs": "text" | ["text", ...] | {"text": a, "text_pair": b} | [{...}, ...],
"parameters": {"top_k": N, "function_to_apply": "softmax" | "sigmoid" | "none"}}``. Image models take an image
file's raw bytes as the body (what ``InferenceClient.image_classification`` sends without parameters), or JSON with
``inputs`` the base64 of one image (what it sends with parameters) or a list of them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..tasks.base import FUNCTIONS_TO_APPLY
from .limits import ServeLimits

PARAMETERS = ("top_k", "function_to_apply")
PAIR_KEYS = ("text", "text_pair")


class ApiError(Exception):
    """A refused request: the HTTP status (4xx) and the one line its JSON body says (``{"error": ...}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


@dataclass
class ApiRequest:
    """What to score: ``inputs`` (texts as ``(text, text_pair or None)``, images as file bytes), whether one input
    came alone (not in a list: an image's answer is then one list, not a list of lists), and the parameters."""

    inputs: list[Any]
    single: bool
    top_k: int | None = None
    function_to_apply: str | None = None


def read_body_json(body: bytes) -> Any:
    """The body as JSON; invalid UTF-8, malformed JSON and absurd nesting are a 400 in one line."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not valid UTF-8 (byte {exc.start}); send JSON in UTF-8") from None
    if not text.strip():
        raise ApiError(400, 'the body is empty; send JSON such as {"inputs": "a text"}')
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number; arrays nested 100,000 deep
        raise ApiError(400, f"the body is not JSON this server reads ({exc.__class__.__name__})") from None


def _body_object(payload: Any) -> tuple[Any, dict[str, Any]]:
    """``inputs`` and ``parameters`` of a JSON body, checked for shape."""
    if not isinstance(payload, dict):
        raise ApiError(422, f'the body must be a JSON object with "inputs", not {type(payload).__name__}')
    # "options" (wait_for_model, use_cache) is what older Inference API clients send: accepted, and nothing to do here.
    unknown = sorted(set(payload) - {"inputs", "parameters", "options"})
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r}; the body takes inputs and parameters")
    if "inputs" not in payload:
        raise ApiError(422, 'the body has no "inputs"')
    params = payload.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApiError(422, f'"parameters" must be an object, not {type(params).__name__}')
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ApiError(422, f"unknown parameter {unknown[0]!r}; this server takes {', '.join(PARAMETERS)}")
    return payload["inputs"], params


def _parameters(params: dict[str, Any]) -> dict[str, Any]:
    top_k, function = params.get("top_k"), params.get("function_to_apply")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ApiError(422, f"top_k must be a whole number of at least 1, not {json.dumps(top_k)[:40]}")
    if function is not None and function not in FUNCTIONS_TO_APPLY:
        raise ApiError(422, f"function_to_apply must be one of {', '.join(FUNCTIONS_TO_APPLY)}, "
                            f"not {json.dumps(function)[:40]}")
    return {"top_k": top_k, "function_to_apply": function}


def _count(n: int, limits: ServeLimits, noun: str) -> None:
    if n == 0:
        raise ApiError(422, f"inputs is empty; give at least one {noun}")
    if n > limits.max_inputs:
        raise ApiError(413, f"{n:,} inputs in one request, more than the limit of {limits.max_inputs:,} "
                            "(BMCORE_SERVE_MAX_INPUTS); split them into several requests")


def _text(value: Any, where: str, limits: ServeLimits) -> str:
    if not isinstance(value, str):
        raise ApiError(422, f"{where} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ApiError(422, f"{where} is empty; send a sentence")
    if len(value) > limits.max_text_chars:
        raise ApiError(413, f"{where} has {len(value):,} characters, more than the limit of {limits.max_text_chars:,} "
                            "(BMCORE_SERVE_MAX_TEXT_CHARS)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" in JSON decodes to a lone surrogate, which no tokenizer reads
        raise ApiError(422, f"{where} holds an unpaired surrogate (\\ud800-\\udfff); send valid Unicode") from None
    return value


def _text_input(item: Any, where: str, limits: ServeLimits) -> tuple[str, str | None]:
    if isinstance(item, dict):
        unknown = sorted(set(item) - set(PAIR_KEYS))
        if unknown or "text" not in item:
            raise ApiError(422, f'{where} must be a string or {{"text": ..., "text_pair": ...}}')
        pair = item.get("text_pair")
        return (_text(item["text"], f"{where}'s text", limits),
                None if pair is None else _text(pair, f"{where}'s text_pair", limits))
    return _text(item, where, limits), None


def parse_text_request(body: bytes, limits: ServeLimits) -> ApiRequest:
    """A text model's request (see the module), every text checked."""
    inputs, params = _body_object(read_body_json(body))
    single = not isinstance(inputs, list)
    items = [inputs] if single else inputs
    _count(len(items), limits, "text")
    n = len(items)
    texts = [_text_input(x, "the text" if n == 1 else f"text {i + 1} of {n}", limits) for i, x in enumerate(items)]
    return ApiRequest(texts, single, **_parameters(params))


def _image_bytes(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(422, f"{where} must be base64 text (or send the image's bytes as the body), "
                            f"not {type(value).__name__}")
    if value.startswith(("http://", "https://")):
        raise ApiError(422, f"{where} is a URL; this server fetches nothing: send the image's bytes or base64")
    if value.startswith("data:") and "," in value:  # a data URL: data:image/png;base64,....
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, f"{where} is not valid base64") from None


def check_image(data: bytes, where: str, limits: ServeLimits) -> None:
    """Refuse bytes that are no image, or an image with more pixels than the limit, from its header alone: nothing
    is decoded here (a 50 KB PNG can hold 2,000,000,000 pixels)."""
    if not data:
        raise ApiError(422, f"{where} is empty (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the limit below decides
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise ApiError(413, f"{where} has more pixels than the limit of {limits.max_image_pixels:,} "
                            "(a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ApiError(422, f"{where} is not an image (PNG, JPEG, BMP, GIF, WebP or TIFF)") from None
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        raise ApiError(422, f"{where} is not a readable image ({exc.__class__.__name__})") from None
    if width * height > limits.max_image_pixels:
        raise ApiError(413, f"{where} is {width:,}x{height:,} pixels, more than the limit of "
                            f"{limits.max_image_pixels:,} (BMCORE_SERVE_MAX_IMAGE_PIXELS); resize it first")


def parse_image_request(body: bytes, content_type: str, limits: ServeLimits) -> ApiRequest:
    """An image model's request (see the module): raw bytes unless the body is declared JSON; every image's header
    checked."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        images, single, params = [body], True, {}
    else:
        inputs, raw = _body_object(read_body_json(body))
        single = not isinstance(inputs, list)
        items = [inputs] if single else inputs
        _count(len(items), limits, "image")
        n = len(items)
        images = [_image_bytes(x, "the image" if n == 1 else f"image {i + 1} of {n}") for i, x in enumerate(items)]
        params = _parameters(raw)
    n = len(images)
    for i, data in enumerate(images):
        check_image(data, "the image" if n == 1 else f"image {i + 1} of {n}", limits)
    return ApiRequest(images, single, **params)
