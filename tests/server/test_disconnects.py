"""A client that leaves while a non-stream call runs cancels that call: the upstream
request is cancelled at once (not left to run to its timeout), the call is recorded as
499, and what the governed layer took (a parallel-request slot) is given back.

The ASGI app is called in process; the upstream is a MockTransport handler that hangs
until it is cancelled."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from genroute.config import config_from_data
from genroute.observability.records import CallRecord
from genroute.pipeline import build_pipeline
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from genroute.routing import Router
from genroute.server.app import GatewayApp
from genroute.store.spend import SpendFilter, spend_logs
from tests.fakes.mock_http import Upstream

MASTER = "sk-master-disconnects"
GENERATE = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
EMBED = {"content": {"parts": [{"text": "hello"}]}}

# (path, body) of every non-stream operation.
OPERATIONS = {
    "generateContent": ("/v1beta/models/flash:generateContent", GENERATE),
    "countTokens": ("/v1beta/models/flash:countTokens", GENERATE),
    "embedContent": ("/v1beta/models/embed:embedContent", EMBED),
    "batchEmbedContents": (
        "/v1beta/models/embed:batchEmbedContents",
        {"requests": [{"model": "models/embed", **EMBED}]},
    ),
    "predict": (
        "/v1/projects/p/locations/us-central1/publishers/google/models/embed:predict",
        {"instances": [{"content": "hello"}]},
    ),
}


@dataclass
class Hanging:
    """An upstream that answers normally, or hangs (until cancelled) while `hang` is set."""

    hang: bool = True
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled_at: float | None = None
    answer: Upstream = field(default_factory=lambda: Upstream("gemini"))

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.hang:
            return self.answer(request)
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled_at = time.monotonic()
            raise
        raise AssertionError("unreachable")


@dataclass
class Harness:
    app: GatewayApp
    upstream: Hanging
    records: list[CallRecord]


def config(tmp: Path | None, general: dict[str, Any] | None = None) -> dict[str, Any]:
    gemini = {"api_key": "upstream-key", "api_base": "http://upstream.invalid"}
    data: dict[str, Any] = {
        "model_list": [
            {"model_name": "flash", "params": {"model": "gemini/gemini-2.5-flash", **gemini}},
            {
                "model_name": "embed",
                "params": {"model": "gemini/text-embedding-004", **gemini},
                "model_info": {"mode": "embedding"},
            },
        ],
        "router_settings": {"num_retries": 0},
        "observability": {"logs": {"enabled": False}},
        "general_settings": dict(general or {}),
    }
    if tmp is not None:
        data["general_settings"].update(
            master_key=MASTER,
            database_url=f"sqlite:///{tmp / 'keys.db'}",
            spend_flush_interval=0.01,
        )
    return data


async def harness(tmp: Path | None, general: dict[str, Any] | None = None) -> Harness:
    loaded = config_from_data(config(tmp, general))
    upstream = Hanging()
    router = Router.from_config(
        loaded, allow_ad_hoc_models=False, transport=MockTransport(upstream)
    )
    records: list[CallRecord] = []

    async def record(rec: CallRecord) -> None:
        records.append(rec)

    pipeline = build_pipeline(loaded, router=router, callbacks=[record])
    await pipeline.start()
    return Harness(GatewayApp(pipeline, loaded), upstream, records)


@pytest.fixture
async def plain() -> AsyncIterator[Harness]:
    h = await harness(None)
    yield h
    await h.app.pipeline.aclose()


@pytest.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await harness(tmp_path)
    yield h
    await h.app.pipeline.aclose()


class Client:
    """One request into the app; `leave()` makes the client disconnect."""

    def __init__(self, app: GatewayApp, path: str, body: Any, key: str | None = None) -> None:
        raw = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json")]
        if key is not None:
            headers.append((b"x-goog-api-key", key.encode()))
        self.scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "query_string": b"",
            "headers": headers,
        }
        self.body = raw
        self.gone = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self._delivered = False
        self.task = asyncio.ensure_future(app(self.scope, self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        if not self._delivered:
            self._delivered = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def leave(self) -> float:
        self.gone.set()
        return time.monotonic()

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


async def wait_for(check: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_leaving_cancels_the_upstream_request(plain: Harness, operation: str) -> None:
    path, body = OPERATIONS[operation]
    client = Client(plain.app, path, body)
    await asyncio.wait_for(plain.upstream.started.wait(), 5)
    left = client.leave()
    await asyncio.wait_for(client.task, 1)
    assert plain.upstream.cancelled_at is not None, "the upstream request ran on"
    assert plain.upstream.cancelled_at - left < 0.1
    assert client.sent == []  # nobody to answer
    await wait_for(lambda: plain.records)
    (record,) = plain.records
    assert record.status_code == 499 and record.error_status == "CANCELLED"


async def test_a_call_that_ends_first_is_answered(plain: Harness) -> None:
    plain.upstream.hang = False
    path, body = OPERATIONS["generateContent"]
    client = Client(plain.app, path, body)
    await asyncio.wait_for(client.task, 5)
    assert client.status == 200
    client.leave()  # the watcher is gone: nothing happens


async def test_governed_call_released_and_ledgered_as_499(governed: Harness) -> None:
    assert governed.app.management is not None
    store = governed.app.management.store
    made = await store.create_key({"max_parallel_requests": 1, "key_alias": "one-at-a-time"})
    path, body = OPERATIONS["generateContent"]
    first = Client(governed.app, path, body, made["key"])
    await asyncio.wait_for(governed.upstream.started.wait(), 5)
    first.leave()
    await asyncio.wait_for(first.task, 1)
    assert governed.upstream.cancelled_at is not None
    # The parallel-request slot was given back: the next call is admitted.
    governed.upstream.hang = False
    second = Client(governed.app, path, body, made["key"])
    await asyncio.wait_for(second.task, 5)
    assert second.status == 200

    async def ledger() -> list[int]:
        rows = await spend_logs(store, SpendFilter(key_hash=made["key_hash"]))
        return [row["status_code"] for row in rows]

    deadline = time.monotonic() + 5
    while sorted(codes := await ledger()) != [200, 499]:
        assert time.monotonic() < deadline, codes
        await asyncio.sleep(0.01)


async def test_a_stream_whose_client_stops_reading_is_ended() -> None:
    """uvicorn's send waits while the client's buffer is full; a client that reads nothing
    for `response_write_timeout` ends the stream: the upstream stream is closed and the call
    recorded as 499, instead of both being held open for as long as the client stays."""
    h = await harness(None, {"response_write_timeout": 0.1})
    h.upstream.hang = False
    try:
        client = Client(h.app, "/v1beta/models/flash:streamGenerateContent", GENERATE)
        stuck = asyncio.Event()

        async def full(message: dict[str, Any]) -> None:
            client.sent.append(message)
            if message["type"] == "http.response.body":
                stuck.set()
                await asyncio.Event().wait()  # the client's buffer never drains

        client.task.cancel()
        client.task = asyncio.ensure_future(h.app(client.scope, client.receive, full))
        await asyncio.wait_for(stuck.wait(), 5)
        started = time.monotonic()
        await asyncio.wait_for(client.task, 2)
        assert time.monotonic() - started < 1
        assert client.sent[0]["type"] == "http.response.start"
        await wait_for(lambda: h.records)
        (record,) = h.records
        assert record.status_code == 499
    finally:
        await h.app.pipeline.aclose()
