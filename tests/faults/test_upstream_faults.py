"""Upstream faults, end to end: whatever the upstream does, the client gets an answer in time.

client → genroute (in process, with a key, a ledger and metrics) → FaultyUpstream, which
resets connections, hangs, sends garbage, 10 MB bodies, a byte at a time, HTML, JSON cut
short or an SSE stream cut in the middle. For every fault, with and without a fallback
group, generateContent and its stream:

- the client gets a Google-shaped error (502, 503 or 504), or the fallback's answer; a
  stream whose first chunk was sent ends with an error event instead; never a 500;
- within the configured timeouts (0.5 s for a call, 0.3 s for a stream's chunks);
- the call is recorded once, with that status, in the request log, the metrics and the
  spend ledger;
- the upstream connection of a request given up on is closed, and a 10 MB body is not read
  past the limit (`max_response_size_mb`: 1 here).
"""

from __future__ import annotations

import gc
import http.client
import json
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import InProcessGateway
from tests.fakes.faulty_upstream import FaultyUpstream

MASTER = "sk-faults-master"
TIMEOUT, STREAM_TIMEOUT = 0.5, 0.3
SLACK = 1.5  # seconds allowed over a timeout, on a busy machine
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello faults"}]}]}

# fault, its options, whether it is asked for on a stream, what the client gets without a
# fallback ("error" code: an HTTP error; "event" code: a 200 stream ending in an error
# event) and with one ("ok": the fallback's answer).
CASES: list[tuple[str, dict[str, Any], bool, tuple[str, int], tuple[str, int]]] = [
    ("reset", {}, False, ("error", 503), ("ok", 200)),
    ("reset", {}, True, ("error", 503), ("ok", 200)),
    ("hang", {}, False, ("error", 504), ("ok", 200)),
    ("hang", {}, True, ("error", 504), ("ok", 200)),
    ("garbage", {}, False, ("error", 503), ("ok", 200)),
    ("garbage", {}, True, ("error", 503), ("ok", 200)),
    ("big", {}, False, ("error", 502), ("ok", 200)),
    ("big", {}, True, ("error", 502), ("ok", 200)),
    ("big", {"chunked": True}, False, ("error", 502), ("ok", 200)),
    ("big", {"chunked": True}, True, ("error", 502), ("ok", 200)),
    ("trickle", {}, False, ("error", 504), ("ok", 200)),
    ("trickle", {}, True, ("error", 504), ("ok", 200)),
    ("trickle", {"events": 1}, True, ("event", 504), ("event", 504)),
    ("html", {}, False, ("error", 502), ("ok", 200)),
    ("html", {}, True, ("error", 502), ("ok", 200)),
    ("malformed", {}, False, ("error", 502), ("ok", 200)),
    ("malformed", {}, True, ("error", 502), ("ok", 200)),
    ("truncated_sse", {"events": 0}, True, ("error", 503), ("ok", 200)),
    ("truncated_sse", {"events": 1}, True, ("event", 503), ("event", 503)),
]


def _id(case: tuple[str, dict[str, Any], bool, Any, Any]) -> str:
    fault, opts, stream, _, _ = case
    extra = "-".join(f"{k}={v}" for k, v in opts.items())
    return "-".join(p for p in (fault, extra, "stream" if stream else "generate") if p)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with FaultyUpstream() as fake:
        yield fake


def config(upstream: FaultyUpstream, tmp: Path) -> dict[str, Any]:
    params = {
        "model": "gemini/gemini-2.5-flash",
        "api_key": "upstream-key",
        "api_base": upstream.base_url,
        "timeout": TIMEOUT,
        "stream_timeout": STREAM_TIMEOUT,
    }
    return {
        "model_list": [
            {"model_name": "bare", "params": params},
            {"model_name": "guarded", "params": params},
            {"model_name": "safety-net", "params": {"model": "demo/echo"}},
            {"model_name": "retried", "params": {**params, "num_retries": 2}},
        ],
        "router_settings": {
            "fallbacks": [{"guarded": ["safety-net"]}, {"retried": ["safety-net"]}],
            "disable_cooldowns": True,  # each case on its own, whatever ran before
            "max_response_size_mb": 1,
            "retry_backoff_base": 0.001,
        },
        "general_settings": {
            "master_key": MASTER,
            "database_url": f"sqlite:///{tmp / 'ledger.db'}",
            "spend_flush_interval": 0.05,
        },
        "observability": {"logs": {"destination": str(tmp / "requests.log"), "format": "json"}},
    }


@pytest.fixture(scope="module")
def gateway(
    upstream: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    tmp = Path(tmp_path_factory.mktemp("faults"))
    gw = InProcessGateway(config(upstream, tmp), tmp)
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _fresh(upstream: FaultyUpstream) -> None:
    upstream.reset()


def send(
    gw: InProcessGateway, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body)
        sent = {"content-type": "application/json", "x-goog-api-key": MASTER, **headers}
        connection.request(method, path, data, sent)
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def call(gw: InProcessGateway, model: str, stream: bool) -> tuple[str, int, bytes, float]:
    """(request id, HTTP status, body, seconds taken) of one call."""
    rid = uuid.uuid4().hex
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    started = time.perf_counter()
    status, body, _ = send(gw, "POST", f"/v1beta/models/{model}:{action}", BODY, **{
        "x-request-id": rid
    })  # fmt: skip
    return rid, status, body, time.perf_counter() - started


def poll(check: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def logged(gw: InProcessGateway, rid: str) -> list[dict[str, Any]]:
    path = Path(gw.log_path).parent / "requests.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, filter(None, lines)) if r.get("request_id") == rid]


def ledger(gw: InProcessGateway, rid: str) -> list[dict[str, Any]]:
    status, body, _ = send(gw, "GET", "/spend/logs?limit=100000")
    assert status == 200, body
    return [row for row in json.loads(body) if row["request_id"] == rid]


def requests_by_status(gw: InProcessGateway) -> dict[str, float]:
    """genroute_requests_total by status code, over every model group."""
    _, body, _ = send(gw, "GET", "/metrics")
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "genroute_requests_total":
                code = sample.labels["status_code"]
                counts[code] = counts.get(code, 0) + sample.value
    return counts


def check_answer(status: int, body: bytes, stream: bool, expected: tuple[str, int]) -> int:
    """Assert the client got what `expected` says; return the status the call ends with."""
    kind, code = expected
    assert status != 500, body
    if kind == "error":
        error = json.loads(body)["error"]
        assert status == error["code"] == code and status in (502, 503, 504), body
        assert error["status"] in ("UNAVAILABLE", "DEADLINE_EXCEEDED") and error["message"]
        return code
    assert status == 200, body
    if not stream:
        assert json.loads(body)["candidates"][0]["content"]["parts"], body
        return 200
    events = [json.loads(e[len(b"data: ") :]) for e in body.split(b"\r\n\r\n") if e.strip()]
    assert events, body
    if kind == "ok":
        assert all("error" not in e for e in events) and events[-1]["candidates"]
        return 200
    assert all("error" not in e for e in events[:-1]) and len(events) >= 2
    assert events[-1]["error"]["code"] == code
    return code


@pytest.mark.parametrize("model", ["bare", "guarded"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_every_fault_gets_an_answer_in_time_recorded_once(
    gateway: InProcessGateway,
    upstream: FaultyUpstream,
    case: tuple[str, dict[str, Any], bool, tuple[str, int], tuple[str, int]],
    model: str,
) -> None:
    fault, opts, stream, bare, guarded = case
    before = requests_by_status(gateway)
    upstream.script(fault, **opts)
    rid, status, body, took = call(gateway, model, stream)
    ended = check_answer(status, body, stream, bare if model == "bare" else guarded)
    assert took < (STREAM_TIMEOUT if stream else TIMEOUT) + SLACK
    assert len(upstream.requests) == 1  # num_retries: 0
    records = poll(lambda: logged(gateway, rid))
    assert len(records) == 1 and records[0]["status_code"] == ended
    expect_fallback = ["safety-net"] if model == "guarded" and guarded[0] == "ok" else []
    assert records[0]["fallbacks"] == expect_fallback
    rows = poll(lambda: ledger(gateway, rid))
    assert len(rows) == 1 and rows[0]["status_code"] == ended
    after = requests_by_status(gateway)
    assert {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)} == {
        str(ended): 1.0
    }
    poll(lambda: upstream.active == 0)  # nothing left hanging upstream


def test_a_10_mb_body_is_not_read_past_the_limit(
    gateway: InProcessGateway, upstream: FaultyUpstream
) -> None:
    for chunked in (False, True):
        upstream.script("big", chunked=chunked)
        gc.collect()
        tracemalloc.start()
        try:
            _, status, body, _ = call(gateway, "bare", stream=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert status == 502 and b"max_response_size_mb" in body
        assert peak < 4 * 1024 * 1024, peak  # the limit is 1 MB; the body 10 MB
    upstream.script("big", size=512 * 1024)  # under the limit: served
    _, status, body, _ = call(gateway, "bare", stream=False)
    assert status == 200 and len(body) > 500_000


def test_malformed_json_is_retried_fallen_back_and_recorded_as_502(
    gateway: InProcessGateway, upstream: FaultyUpstream
) -> None:
    """The providers raise UpstreamMalformed (502, reason malformed) for a 200 that is not
    the API's shape: it is retried and fallen back like any upstream failure, and the call
    that ends with it is an error everywhere it is recorded, never a 200."""
    upstream.script("malformed", times=None)
    rid, status, body, _ = call(gateway, "retried", stream=False)
    assert status == 200 and len(upstream.requests) == 3  # num_retries: 2, then fallback
    record = poll(lambda: logged(gateway, rid))[0]
    assert record["attempts"] == 4 and record["fallbacks"] == ["safety-net"]
    upstream.reset()
    upstream.script("malformed", times=None, body=b'{"candidates": "not a list"}')
    before = requests_by_status(gateway)
    rid, status, body, _ = call(gateway, "bare", stream=False)
    assert status == 502 and json.loads(body)["error"]["status"] == "UNAVAILABLE"
    record = poll(lambda: logged(gateway, rid))[0]
    assert (record["status_code"], record["error_status"]) == (502, "UNAVAILABLE")
    assert "not a list" not in body.decode() and "candidates" in body.decode()
    assert record.get("input_tokens") is None and not record.get("cost")
    row = poll(lambda: ledger(gateway, rid))[0]
    assert (row["status_code"], row["error_status"]) == (502, "UNAVAILABLE") and row["cost"] == 0
    after = requests_by_status(gateway)
    assert after.get("502", 0) - before.get("502", 0) == 1
    assert after.get("200", 0) == before.get("200", 0)
