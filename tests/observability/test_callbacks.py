"""Callbacks run off the request path: slow or failing ones change nothing for the caller."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from genroute import Client
from genroute.config import ConfigError, config_from_data
from genroute.observability import Callback, CallRecord, Observability
from genroute.observability.callbacks import Dispatcher, Sink
from genroute.observability.sinks import JsonlFile, Webhook

DEMO = [{"model_name": "demo", "params": {"model": "demo/echo"}}]


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, CallRecord]] = []

    async def on_success(self, record: CallRecord) -> None:
        self.events.append(("success", record))

    async def on_failure(self, record: CallRecord) -> None:
        self.events.append(("failure", record))


class StreamRecorder(Recorder):
    async def on_stream_end(self, record: CallRecord) -> None:
        self.events.append(("stream_end", record))


class Raises(Callback):
    async def on_success(self, record: CallRecord) -> None:
        raise RuntimeError("callback bug")


class NeverReturns(Callback):
    async def on_success(self, record: CallRecord) -> None:
        await asyncio.Event().wait()


class BlocksInSyncCode:
    """A sync callback (run in a thread) that blocks until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def on_success(self, record: CallRecord) -> None:
        self.release.wait(10)


RECORDER = Recorder()


async def until(condition: Any, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_sdk_client_callbacks_success_and_stream_end() -> None:
    plain, streamed = Recorder(), StreamRecorder()
    client = Client(DEMO, callbacks=[plain, streamed])
    response = await client.agenerate_content(model="demo", contents="hi there", user="bob")
    assert "hi there" in (response.text or "")
    stream = await client.agenerate_content_stream(model="demo", contents="streamed")
    assert [c async for c in stream]
    await client.aclose()  # flushes the queues
    assert [kind for kind, _ in plain.events] == ["success", "success"]
    assert [kind for kind, _ in streamed.events] == ["success", "stream_end"]
    record = plain.events[0][1]
    assert record.model_group == "demo" and record.provider == "demo"
    assert record.end_user == "bob" and record.status_code == 200 and record.success
    assert record.input_tokens and record.output_tokens and record.latency_ms is not None
    assert plain.events[1][1].stream and plain.events[1][1].time_to_first_token_ms is not None


async def test_slow_and_failing_callbacks_leave_requests_unchanged() -> None:
    baseline = Client(DEMO)
    blocking = BlocksInSyncCode()
    busy = Client(DEMO, callbacks=[Raises(), NeverReturns(), blocking])
    obs = busy.pipeline.observability
    assert obs is not None and obs.callbacks is not None

    async def timed(client: Client) -> tuple[list[str | None], float]:
        texts: list[str | None] = []
        worst = 0.0
        for i in range(20):
            started = time.perf_counter()
            response = await client.agenerate_content(model="demo", contents=f"call {i}")
            worst = max(worst, time.perf_counter() - started)
            texts.append(response.text)
        return texts, worst

    try:
        expected, base_worst = await timed(baseline)
        texts, worst = await timed(busy)
        assert texts == expected
        assert worst < base_worst + 0.05, (worst, base_worst)  # the blocked callbacks never show
        raising = next(s for s in obs.callbacks.sinks if s.name == "Raises")
        await until(lambda: raising.errors == 20)
        await baseline.aclose()
        await obs.callbacks.aclose(drain_seconds=0.05)  # the blocked ones would never drain
        await busy.aclose()
    finally:
        blocking.release.set()


async def test_a_full_queue_drops_and_counts() -> None:
    release = asyncio.Event()
    seen: list[CallRecord] = []

    async def blocked(record: CallRecord) -> None:
        await release.wait()
        seen.append(record)

    dropped: list[str] = []
    sink = Sink("blocked", blocked, queue_size=2, on_drop=dropped.append)
    dispatcher = Dispatcher([sink])
    record = _record()
    for _ in range(10):
        dispatcher.emit(record)
    await asyncio.sleep(0.01)
    # One event is in the callback, two wait in the queue; the rest were dropped.
    assert 7 <= sink.dropped <= 8 and len(dropped) == sink.dropped
    release.set()
    await dispatcher.aclose()
    assert len(seen) == 10 - sink.dropped


async def test_queued_events_are_flushed_at_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "out" / "calls.jsonl"
    sink = Sink("jsonl", JsonlFile(str(path), batch_size=4, flush_interval=5.0))
    for i in range(10):
        sink.emit(_record(request_id=f"r{i}"))
    await sink.aclose(drain_seconds=5)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["request_id"] for x in lines] == [f"r{i}" for i in range(10)]


async def test_webhook_posts_batches() -> None:
    received: list[list[dict[str, Any]]] = []

    async def handle(request: web.Request) -> web.Response:
        assert request.headers["authorization"] == "Bearer hook-token"
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        hook = Webhook(
            f"http://127.0.0.1:{port}/hook",
            headers={"authorization": "Bearer hook-token"},
            batch_size=3,
            flush_interval=0.05,
        )
        sink = Sink("webhook", hook)
        for i in range(7):
            sink.emit(_record(request_id=f"w{i}"))
        await until(lambda: sum(len(b) for b in received) == 7)
        await sink.aclose()
    finally:
        await runner.cleanup()
    assert all(1 <= len(batch) <= 3 for batch in received)
    assert [r["request_id"] for batch in received for r in batch] == [f"w{i}" for i in range(7)]
    assert sink.errors == 0


def test_litellm_callback_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="langfuse"):
        config_from_data({"litellm_settings": {"success_callback": ["langfuse"]}})
    with pytest.raises(ConfigError, match=r"observability\.logs\.colour"):
        config_from_data({"observability": {"logs": {"colour": True}}})
    with pytest.raises(ConfigError, match="redact"):
        config_from_data({"observability": {"logs": {"redact_patterns": ["("]}}})
    config = config_from_data(
        {
            "litellm_settings": {
                "callbacks": "tests.observability.test_callbacks:RECORDER",
                "failure_callback": ["jsonl"],
            },
            "observability": {"logs": {"enabled": False}},
        }
    )
    obs = Observability.from_config(
        config, environ={"GENROUTE_CALLBACK_JSONL_PATH": str(tmp_path / "f.jsonl")}
    )
    assert obs.callbacks is not None
    assert [(s.name, s.events) for s in obs.callbacks.sinks] == [
        ("tests.observability.test_callbacks:RECORDER", "all"),
        ("jsonl", "failure"),
    ]
    bad = config_from_data({"litellm_settings": {"callbacks": ["no_such_module_xyz:thing"]}})
    with pytest.raises(ConfigError, match="cannot import"):
        Observability.from_config(bad, environ={})
    webhook = config_from_data({"litellm_settings": {"success_callback": ["generic_api"]}})
    with pytest.raises(ConfigError, match="GENERIC_LOGGER_ENDPOINT"):
        Observability.from_config(webhook, environ={})


def _record(**changes: Any) -> CallRecord:
    base: dict[str, Any] = {
        "timestamp": "2026-01-01T00:00:00.000Z",
        "request_id": "r",
        "operation": "generateContent",
        "stream": False,
        "model_group": "demo",
        "deployment_id": "d",
        "provider": "demo",
        "provider_model": "echo",
        "response_model": None,
        "key_alias": None,
        "team_id": None,
        "user_id": None,
        "end_user": None,
        "status_code": 200,
        "error_status": None,
        "error_message": None,
        "finish_reason": "STOP",
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "cost": None,
        "latency_ms": 1.0,
        "time_to_first_token_ms": None,
        "upstream_ms": None,
        "overhead_ms": None,
        "attempts": 1,
        "fallbacks": [],
    }
    base.update(changes)
    return CallRecord(**base)
