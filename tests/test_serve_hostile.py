"""Hostile requests against a real uvicorn server (issue 31): wrong types, huge bodies, 10,000 inputs, invalid UTF-8,
PNG bombs, wrong API keys, slow clients holding connections, too many at once. Each gets a 4xx with a one-line JSON
error, never a 500 or a traceback, and the server stays healthy: ``/health`` answers 200 after every one, and a good
request is still answered right at the end.

The server runs with small limits (a 256 KB body, 16 inputs, 1,000 characters, 1,000,000 pixels, 4 requests at once,
a 1 s read timeout) so each limit is reached quickly; its transport is real (sockets, h11), not a test client."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import time
import zlib
from pathlib import Path

import pytest
from _serve import call, post_json, running, tiny_text_model

from bmcore.serve.limits import ServeLimits
from bmcore.serve.scorer import load_torch_scorer

KEY = "k3y-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIMITS = ServeLimits(max_body_mb=0.25, max_inputs=16, max_text_chars=1000, max_image_pixels=1_000_000,
                     max_concurrent=4, read_timeout_s=1, keep_alive_s=1)
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory):
    model = tiny_text_model(tmp_path_factory.mktemp("hostile") / "model", ["negative", "positive"])
    with running(load_torch_scorer(str(model), precision="fp32"), LIMITS, key=KEY) as (url, service):
        yield url, service


@pytest.fixture(scope="module")
def image_server(tiny_vit: Path):
    with running(load_torch_scorer(str(tiny_vit), precision="fp32"), LIMITS) as (url, service):
        yield url, service


def assert_refused(answer: tuple[int, object], status: int, says: str = "") -> None:
    code, body = answer
    assert code == status, (code, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    line = body["error"]
    assert "\n" not in line and "Traceback" not in line and says in line, line


def assert_healthy(url: str) -> None:
    status, body = call(url, "GET", "/health", timeout=5)
    assert status == 200 and body["status"] == "ok"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` 1-bit pixels and whose data is all zero rows: a decompression
    bomb (400,000,000 pixels in about 50 KB at 20,000 x 20,000)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


TEXT_CASES = [  # (what, body, headers, status, part of the message)
    ("no API key", '{"inputs": "hi"}', JSON, 401, "needs an API key"),
    ("a wrong API key", '{"inputs": "hi"}', {**JSON, "Authorization": "Bearer nope"}, 401, "wrong API key"),
    ("a key in the wrong scheme", '{"inputs": "hi"}', {**JSON, "Authorization": f"Basic {KEY}"}, 401, "API key"),
    ("not JSON", "inputs=hello", AUTH, 400, "not valid JSON"),
    ("invalid UTF-8", b'{"inputs": "\xff\xfe\xfa"}', {**JSON, **AUTH}, 400, "not valid UTF-8"),
    ("an empty body", "", {**JSON, **AUTH}, 400, "empty"),
    ("a JSON array", '["hi"]', {**JSON, **AUTH}, 422, "JSON object"),
    ("no inputs", '{"parameters": {}}', {**JSON, **AUTH}, 422, 'no "inputs"'),
    ("an unknown field", '{"inputs": "hi", "input": "typo"}', {**JSON, **AUTH}, 422, "unknown field 'input'"),
    ("a number as input", '{"inputs": 5}', {**JSON, **AUTH}, 422, "must be a string"),
    ("null among the inputs", '{"inputs": ["hi", null]}', {**JSON, **AUTH}, 422, "text 2 of 2 must be a string"),
    ("an empty list", '{"inputs": []}', {**JSON, **AUTH}, 422, "inputs is empty"),
    ("an empty text", '{"inputs": "   "}', {**JSON, **AUTH}, 422, "empty"),
    ("10,000 inputs", json.dumps({"inputs": ["a"] * 10_000}), {**JSON, **AUTH}, 413, "10,000 inputs"),
    ("a text over the limit", json.dumps({"inputs": "a" * 5000}), {**JSON, **AUTH}, 413, "5,000 characters"),
    ("JSON nested 100,000 deep", "[" * 100_000 + "]" * 100_000, {**JSON, **AUTH}, 400, "not JSON"),
    ("a 5,000-digit number", '{"inputs": ' + "9" * 5000 + "}", {**JSON, **AUTH}, 400, "not JSON"),
    ("a lone surrogate", '{"inputs": "bad \\ud800 text"}', {**JSON, **AUTH}, 422, "surrogate"),
    ("an unknown parameter", '{"inputs": "hi", "parameters": {"temperature": 2}}', {**JSON, **AUTH}, 422,
     "unknown parameter"),
    ("a negative top_k", '{"inputs": "hi", "parameters": {"top_k": -1}}', {**JSON, **AUTH}, 422, "top_k"),
    ("a boolean top_k", '{"inputs": "hi", "parameters": {"top_k": true}}', {**JSON, **AUTH}, 422, "top_k"),
    ("an unknown function", '{"inputs": "hi", "parameters": {"function_to_apply": "relu"}}', {**JSON, **AUTH}, 422,
     "function_to_apply"),
    ("parameters as a list", '{"inputs": "hi", "parameters": [1]}', {**JSON, **AUTH}, 422, "parameters"),
    ("a pair without text", '{"inputs": {"text_pair": "b"}}', {**JSON, **AUTH}, 422, "text_pair"),
    ("a pair with a number", '{"inputs": {"text": "a", "text_pair": 3}}', {**JSON, **AUTH}, 422, "must be a string"),
    ("an image sent to a text model", b"\x89PNG\r\n\x1a\n", {"Content-Type": "image/png", **AUTH}, 415, "text"),
    ("a Content-Length of 100 MB", None, {**JSON, **AUTH, "Content-Length": str(100 * 1024 * 1024)}, 413,
     "more than the limit"),
]


@pytest.mark.parametrize("what, body, headers, status, says", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_a_hostile_request_gets_a_4xx_and_the_server_stays_healthy(text_server, what, body, headers, status, says):
    url, _ = text_server
    if body is None:  # the headers alone: the answer comes before any of the 100 MB is sent
        answer = raw_exchange(url, "POST / HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                              + "\r\n")
    else:
        answer = call(url, body=body, headers=headers)
    assert_refused(answer, status, says)
    assert_healthy(url)


def raw_exchange(url: str, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, object]:
    """Send ``head`` (and ``body``) on a raw socket; the status and JSON of the answer."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode("latin-1") + body)
        return parse_answer(read_all(s))


def read_all(s: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            part = s.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            break
        data += part
        if b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
            if length and len(rest) >= length[0]:
                break
    return data


def parse_answer(data: bytes) -> tuple[int, object]:
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    try:
        return status, json.loads(rest) if rest else None
    except ValueError:
        return status, rest.decode("latin-1")


def test_a_chunked_body_over_the_limit_is_refused(text_server):
    url, _ = text_server
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"  # 320 KB, no Content-Length
    answer = raw_exchange(url, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               f"Content-Type: application/json\r\nAuthorization: Bearer {KEY}\r\n\r\n", body)
    assert_refused(answer, 413, "more than")
    assert_healthy(url)


def test_headers_too_large_are_refused(text_server):
    url, _ = text_server
    status, _ = raw_exchange(url, "POST / HTTP/1.1\r\nHost: x\r\nX-Pad: " + "a" * 200_000 + "\r\n\r\n")
    assert 400 <= status < 500
    assert_healthy(url)


def slow_client(url: str, sent: int = 10, declared: int = 100) -> socket.socket:
    """A client that sends its headers and ``sent`` of ``declared`` body bytes, then nothing."""
    port = int(url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {KEY}\r\n"
               f"Content-Length: {declared}\r\n\r\n").encode() + b'{"inputs":'[:sent])
    return s


def test_a_slow_client_blocks_nobody_and_gets_408(text_server):
    url, _ = text_server
    s = slow_client(url)
    try:
        t0 = time.monotonic()
        status, answer = post_json(url, {"inputs": "others are served meanwhile"}, AUTH)
        assert status == 200 and time.monotonic() - t0 < 1.0  # answered while the slow client holds its connection
        assert_healthy(url)
        assert_refused(parse_answer(read_all(s)), 408, "did not arrive within 1 s")
    finally:
        s.close()
    assert_healthy(url)


def test_too_many_at_once_get_503_then_the_slots_free(text_server):
    url, service = text_server
    holders = [slow_client(url) for _ in range(LIMITS.max_concurrent)]
    try:
        deadline = time.monotonic() + 5
        while service.in_flight < LIMITS.max_concurrent and time.monotonic() < deadline:
            time.sleep(0.01)
        status, body = post_json(url, {"inputs": "one too many"}, AUTH)
        assert_refused((status, body), 503, "busy")
        assert_healthy(url)  # health is never refused
        for s in holders:  # each times out after 1 s and frees its slot
            assert parse_answer(read_all(s))[0] == 408
    finally:
        for s in holders:
            s.close()
    assert post_json(url, {"inputs": "room again"}, AUTH)[0] == 200


def test_other_routes_and_methods_answer_json(text_server):
    url, _ = text_server
    assert_refused(call(url, "GET", "/"), 405, "not allowed")
    assert_refused(call(url, "GET", "/nowhere"), 404, "no route")
    assert_refused(call(url, "GET", "/metadata"), 401, "API key")  # the model's facts need the key too
    assert call(url, "GET", "/metadata", headers=AUTH)[0] == 200
    status, schema = call(url, "GET", "/openapi.json")  # what /docs draws, open without the key
    assert status == 200 and "post" in schema["paths"]["/"]
    assert_healthy(url)


def image_cases() -> list[tuple[str, bytes, dict, int, str]]:
    from PIL import Image

    big = io.BytesIO()
    Image.new("L", (1200, 1000)).save(big, format="PNG")  # 1,200,000 pixels: over this server's 1,000,000
    good = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(good, format="PNG")
    truncated = good.getvalue()[:60]
    return [
        ("a PNG bomb", png_header_only(20_000, 20_000), {"Content-Type": "image/png"}, 413, "pixels"),
        ("an image over the pixel limit", big.getvalue(), {"Content-Type": "image/png"}, 413, "1,200x1,000"),
        ("bytes that are no image", b"GIF89a but not really" * 10, {"Content-Type": "image/gif"}, 422, "not an image"),
        ("a truncated PNG", truncated, {"Content-Type": "image/png"}, 422, "image"),
        ("an empty body", b"", {"Content-Type": "image/png"}, 422, "empty"),
        ("invalid base64", json.dumps({"inputs": "%%%not base64%%%"}).encode(), JSON, 422, "not valid base64"),
        ("a URL to fetch", json.dumps({"inputs": "http://169.254.169.254/latest"}).encode(), JSON, 422, "URL"),
        ("a bomb in base64", json.dumps({"inputs": base64.b64encode(png_header_only(20_000, 20_000)).decode()}).encode(),
         JSON, 413, "pixels"),
        ("a number as image", json.dumps({"inputs": [1]}).encode(), JSON, 422, "base64"),
    ]


def test_hostile_images_get_a_4xx_and_the_server_stays_healthy(image_server):
    url, _ = image_server
    for what, body, headers, status, says in image_cases():
        answer = call(url, body=body, headers=headers)
        assert answer[0] == status, (what, answer)
        assert_refused(answer, status, says)
        assert_healthy(url)
    good = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 30, 30)).save(good, format="PNG")
    status, answer = call(url, body=good.getvalue(), headers={"Content-Type": "image/png"})
    assert status == 200 and {d["label"] for d in answer} == {"class_0", "class_1"}


def test_after_every_hostile_request_a_good_one_is_answered(text_server):
    url, service = text_server
    status, answer = post_json(url, {"inputs": ["still serving", {"text": "a", "text_pair": "b"}],
                                     "options": {"wait_for_model": True}}, AUTH)  # older clients' options: ignored
    assert status == 200 and len(answer) == 2 and all(len(a) == 2 for a in answer)
    assert service.batcher.stats()["batches"] >= 1
