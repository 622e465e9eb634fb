"""Slow and idle clients, on raw sockets, against the server `genroute serve` runs (uvicorn
with `uvicorn_settings`: genroute's guarded httptools protocol), with the timeouts set small:

- a connection that sends nothing, or half its headers, or trickles them, is closed after
  `request_header_timeout` (a partial request gets a 408 first);
- a request whose body stops or trickles gets a 408 after `request_body_timeout`;
- a kept-alive connection left idle is closed after `keep_alive_timeout`;
- headers over 64 KiB get a 431; over `max_connections`, requests get Google's 503 JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from genroute.cli.serve import uvicorn_settings
from genroute.config import config_from_data
from genroute.server import create_app
from tests.fakes.sockets import tcp_listener

TIMEOUT = 0.3  # every timeout of the test gateway
SLACK = 3.0  # how much later than its timeout a connection may be closed, on a busy machine
BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
PATH = "/v1beta/models/demo:generateContent"


class Server(uvicorn.Server):
    """uvicorn in a thread, looking for `should_exit` every 5 ms."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.005)


class Guarded:
    """The app on uvicorn with `genroute serve`'s settings (asyncio's loop in a thread)."""

    def __init__(self, general: dict[str, Any]) -> None:
        config = config_from_data(
            {
                "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
                "general_settings": general,
                "observability": {"logs": {"enabled": False}},
            }
        )
        # Bound here and handed to uvicorn: no window in which another server takes it.
        self.socket = tcp_listener()
        self.port = int(self.socket.getsockname()[1])
        settings = uvicorn_settings(config, "127.0.0.1", self.port)
        settings.update(loop="asyncio", timeout_graceful_shutdown=1)
        self.server = Server(uvicorn.Config(create_app(config), **settings))
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.socket]))
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "did not start"
            time.sleep(0.005)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Guarded]:
    gw = Guarded(
        {
            "request_header_timeout": TIMEOUT,
            "request_body_timeout": TIMEOUT,
            "keep_alive_timeout": TIMEOUT,
        }
    )
    yield gw
    gw.stop()


def read_until_closed(sock: socket.socket, limit: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    sock.settimeout(limit)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic()


def status_and_json(data: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


def head(length: int, path: str = PATH) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: genroute\r\ncontent-type: application/json\r\n"
        f"content-length: {length}\r\n\r\n"
    ).encode()


def test_a_connection_that_sends_nothing_is_closed(gateway: Guarded) -> None:
    with gateway.connect() as sock:
        opened = time.monotonic()
        data, closed = read_until_closed(sock)
    assert data == b""
    assert TIMEOUT * 0.9 <= closed - opened < TIMEOUT + SLACK


def test_half_sent_headers_get_a_408_and_are_closed(gateway: Guarded) -> None:
    with gateway.connect() as sock:
        opened = time.monotonic()
        sock.sendall(b"POST /v1beta/models/demo:generateContent HTTP/1.1\r\nhost: g\r\n")
        data, closed = read_until_closed(sock)
    status, body = status_and_json(data)
    assert status == 408 and body["error"]["status"] == "DEADLINE_EXCEEDED"
    assert "request_header_timeout" in body["error"]["message"]
    assert TIMEOUT * 0.9 <= closed - opened < TIMEOUT + SLACK


def test_trickled_headers_are_cut_off_too(gateway: Guarded) -> None:
    request = head(len(BODY)) + BODY
    with gateway.connect() as sock:
        opened = time.monotonic()
        sent = 0
        try:
            while sent < len(request) and time.monotonic() - opened < 3:
                sock.sendall(request[sent : sent + 1])
                sent += 1
                time.sleep(0.04)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, closed = read_until_closed(sock)
    assert sent < len(request)
    assert status_and_json(data)[0] == 408
    assert closed - opened < TIMEOUT + SLACK


def test_a_half_sent_body_gets_a_408_and_is_closed(gateway: Guarded) -> None:
    with gateway.connect() as sock:
        sock.sendall(head(len(BODY)) + BODY[:10])
        sent = time.monotonic()
        data, closed = read_until_closed(sock)
    status, body = status_and_json(data)
    assert status == 408 and "request_body_timeout" in body["error"]["message"]
    assert TIMEOUT * 0.9 <= closed - sent < TIMEOUT + SLACK


def test_a_trickled_body_is_cut_off_at_the_deadline(gateway: Guarded) -> None:
    padded = BODY[:-1] + b" " * 200 + b"}"
    with gateway.connect() as sock:
        sock.sendall(head(len(padded)))
        started = time.monotonic()
        try:
            for byte in padded:
                sock.sendall(bytes([byte]))
                time.sleep(0.04)
                if time.monotonic() - started > 3:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, closed = read_until_closed(sock)
    assert status_and_json(data)[0] == 408
    assert closed - started < TIMEOUT + SLACK


def test_an_idle_kept_alive_connection_is_closed(gateway: Guarded) -> None:
    with gateway.connect() as sock:
        sock.sendall(head(len(BODY)) + BODY)
        data = b""
        while b'"finishReason"' not in data:
            data += sock.recv(65536)
        answered = time.monotonic()
        assert data.startswith(b"HTTP/1.1 200")
        _rest, closed = read_until_closed(sock)
    assert TIMEOUT * 0.9 <= closed - answered < TIMEOUT + SLACK


def test_a_kept_alive_connection_serves_the_next_request(gateway: Guarded) -> None:
    with gateway.connect() as sock:
        for _ in range(3):
            sock.sendall(head(len(BODY)) + BODY)
            data = b""
            while b'"finishReason"' not in data:
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200")


def test_headers_over_64_kib_get_a_431(gateway: Guarded) -> None:
    with gateway.connect() as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /health/liveness HTTP/1.1\r\nx-big: " + b"a" * 70_000)
        data, _ = read_until_closed(sock)
    assert status_and_json(data)[0] == 431


def test_150_slow_clients_are_all_let_go(gateway: Guarded) -> None:
    """50 idle, 50 with half their headers, 50 with half their body: none is held."""
    socks = []
    opened = time.monotonic()
    for i in range(150):
        sock = gateway.connect()
        if i % 3 == 1:
            sock.sendall(b"POST /v1beta/models/demo:generateContent HTTP/1.1\r\nhost: g\r\n")
        elif i % 3 == 2:
            sock.sendall(head(len(BODY)) + BODY[:10])
        socks.append(sock)
    latest = 0.0
    for sock in socks:
        _data, closed = read_until_closed(sock)
        latest = max(latest, closed - opened)
        sock.close()
    print(f"\nSLOW CLIENTS: 150 of 150 closed, the last {latest:.2f} s after opening")
    assert latest < TIMEOUT + SLACK + 1


def test_over_max_connections_requests_get_a_google_503() -> None:
    gw = Guarded({"max_connections": 4, "request_header_timeout": 30})
    try:
        held = [gw.connect() for _ in range(4)]
        time.sleep(0.05)
        with gw.connect() as sock:
            sock.sendall(head(len(BODY)) + BODY)
            data, _ = read_until_closed(sock)
        status, body = status_and_json(data)
        assert status == 503 and body["error"]["status"] == "UNAVAILABLE"
        assert "max_connections" in body["error"]["message"]
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 5
        while True:  # the held connections are let go as the server sees them close
            with gw.connect() as sock:
                sock.sendall(head(len(BODY)) + BODY)
                data = sock.recv(65536)
            if data.startswith(b"HTTP/1.1 200"):
                break
            assert time.monotonic() < deadline, data
            time.sleep(0.01)
    finally:
        gw.stop()
