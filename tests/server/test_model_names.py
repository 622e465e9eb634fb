"""Model names from the path are echoed in response headers: a name with NUL, CR, LF or
another control character gets a 400 naming the model (never a dropped connection), an
odd but acceptable name (unicode, spaces) is served with a header-safe echo, and every
header value the gateway sends is safe whatever the client sent."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genroute.config import config_from_data
from genroute.server import create_app
from genroute.server.asgi import safe_headers
from tests.conftest import InProcessGateway
from tests.server.asgi_client import asgi_request, google_error

BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
CONFIG: dict[str, Any] = {
    "model_list": [
        {"model_name": "gemini-*", "params": {"model": "demo/echo"}},
        {"model_name": "demo", "params": {"model": "demo/echo"}},
    ],
}
# Percent-encoded in the path; uvicorn decodes them into the model name.
REFUSED = ["%00", "%0D", "%0A", "%0D%0A", "%0D%0Ax-evil:%201", "%7F", "%1B", "%C2%85"]
ACTIONS = ["generateContent", "streamGenerateContent", "countTokens", "embedContent"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    gw = InProcessGateway(CONFIG, Path(tmp_path_factory.mktemp("names")))
    yield gw
    gw.stop()


def exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one request on a kept-alive socket and read its (content-length) reply."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection dropped without a reply (got {data!r})"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "connection dropped mid-reply"
            rest += chunk
        return status, headers, rest
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection dropped mid-reply"
        rest += chunk
    return status, headers, rest


def post(path: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: genroute\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("bad", REFUSED)
def test_control_characters_get_a_400_naming_the_model(
    gateway: InProcessGateway, bad: str, action: str
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        status, headers, body = exchange(sock, post(f"/v1beta/models/gemini-a{bad}b:{action}"))
        assert status == 400, body
        error = json.loads(body)["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        assert error["message"].startswith("model: 'gemini-a")
        assert "control character" in error["message"]
        assert "x-evil" not in headers
        # The connection is still usable.
        status, _, _ = exchange(sock, post("/v1beta/models/demo:generateContent"))
        assert status == 200


@pytest.mark.parametrize("bad", REFUSED)
def test_get_model_and_vertex_paths_too(gateway: InProcessGateway, bad: str) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        request = f"GET /v1beta/models/gemini-{bad} HTTP/1.1\r\nhost: g\r\n\r\n".encode()
        status, _, body = exchange(sock, request)
        assert status == 400 and b"model: " in body
        vertex = f"/v1/projects/p/locations/l/publishers/x{bad}/models/demo:generateContent"
        status, _, body = exchange(sock, post(vertex))
        assert status == 400 and b"model: 'publishers/x" in body


@pytest.mark.parametrize(
    "name", ["gemini-%C3%A9t%C3%A9", "gemini-%F0%9F%98%80"], ids=["accents", "emoji"]
)
def test_acceptable_odd_names_are_served(gateway: InProcessGateway, name: str) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        for action in ("generateContent", "streamGenerateContent?alt=sse"):
            status, headers, _ = exchange(sock, post(f"/v1beta/models/{name}:{action}"))
            assert status == 200
            group = headers["x-genroute-model-group"]
            assert group.startswith("gemini-") and group.isascii() and group.isprintable()


@pytest.mark.parametrize(
    "name",
    ["gemini-a%20b", "gemini-a%09b", "gemini-%E2%80%A8x", "gemini-a%3Fb"],
    ids=["space", "tab", "line-separator", "question-mark"],
)
def test_names_no_model_has_get_a_400_naming_the_model(
    gateway: InProcessGateway, name: str
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        for action in ("generateContent", "streamGenerateContent?alt=sse"):
            status, _, body = exchange(sock, post(f"/v1beta/models/{name}:{action}"))
            assert status == 400
            assert json.loads(body)["error"]["message"].startswith("model")


def test_names_over_the_limit(gateway: InProcessGateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        status, _, body = exchange(sock, post(f"/v1beta/models/gemini-{'x' * 300}:countTokens"))
        assert status == 400
        assert json.loads(body)["error"]["message"].startswith("model: a name of 307 characters")
        status, _, _ = exchange(sock, post(f"/v1beta/models/gemini-{'x' * 249}:countTokens"))
        assert status == 200


def test_request_id_with_odd_bytes_is_cleaned(gateway: InProcessGateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        request = post("/v1beta/models/demo:countTokens").replace(
            b"host: genroute\r\n", b"host: genroute\r\nx-request-id: ab\xff\xc3\xa9 cd\r\n"
        )
        status, headers, _ = exchange(sock, request)
        assert status == 200 and headers["x-request-id"] == "abcd"


async def test_in_process_the_refusal_is_google_shaped() -> None:
    app = create_app(config_from_data(CONFIG))
    try:
        for name in ("gemini-a\x00b", "gemini-a\r\nb", "gemini-\x7f"):
            reply = await asgi_request(app, "POST", f"/v1beta/models/{name}:generateContent", BODY)
            assert reply.status == 400
            assert google_error(reply)["message"].startswith(f"model: {name!r}")
    finally:
        await app.pipeline.aclose()


def test_safe_headers_replaces_what_http_forbids() -> None:
    clean = [(b"a", b"plain"), (b"b", b"tab\tok")]
    assert safe_headers(clean) is clean
    dirty = [(b"a", b"x\r\ny"), (b"b", b"\x00\x7f"), (b"c", b"caf\xc3\xa9")]
    assert safe_headers(dirty) == [(b"a", b"x??y"), (b"b", b"??"), (b"c", b"caf\xc3\xa9")]
