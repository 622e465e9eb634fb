"""End to end: one structured record per proxied request, and /metrics, from the real server.

google-genai / raw HTTP → genroute (real process) → fake Gemini. Records are read from the
JSON log file and from the built-in JSON-lines callback, and checked field by field.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from google.genai import errors
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Gateway, InProcessGateway, refused_port
from tests.fakes.gemini_upstream import FakeGemini, build_generate_response
from tests.server.conftest import MASTER_KEY, UPSTREAM_KEY, client_for
from tests.server.test_gemini_e2e import BODY, post

pytestmark = pytest.mark.e2e


def config_for(fake: FakeGemini, tmp: Path) -> dict[str, Any]:
    def gemini(model: str) -> dict[str, Any]:
        return {"model": f"gemini/{model}", "api_key": UPSTREAM_KEY, "api_base": fake.base_url}

    return {
        "model_list": [
            {"model_name": "gemini-2.5-flash", "params": gemini("gemini-2.5-flash")},
            {"model_name": "flaky", "params": gemini("gemini-2.0-flash")},
        ],
        "router_settings": {"fallbacks": [{"flaky": ["gemini-2.5-flash"]}]},
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"json_logs": True},
        "observability": {
            "logs": {"destination": str(tmp / "requests.log")},
            "callbacks": [{"type": "jsonl", "path": str(tmp / "callback.jsonl")}],
            "metrics": {"label_limits": {"end_user": 2}},
        },
    }


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("obs"))


@pytest.fixture(scope="module")
def gateway(fake: FakeGemini, logdir: Path) -> Iterator[Gateway]:
    gw = InProcessGateway(config_for(fake, logdir), logdir)
    yield gw
    gw.stop()


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record_for(path: Path, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The one record of a request (waiting for it: streams are logged as they close)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in records(path) if r["request_id"] == request_id]
        if found:
            time.sleep(0.05)
            found = [r for r in records(path) if r["request_id"] == request_id]
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no record for {request_id} in {path}")


def test_success_record_field_by_field(gateway: Gateway, fake: FakeGemini, logdir: Path) -> None:
    status, headers, body = post(
        gateway,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        BODY,
        {"x-request-id": "rid-success-1", "x-genroute-end-user": "alice"},
    )
    assert status == 200 and headers["x-request-id"] == "rid-success-1"
    usage = json.loads(body)["usageMetadata"]
    expected = build_generate_response(BODY, "gemini-2.5-flash")["usageMetadata"]
    assert usage["promptTokenCount"] == expected["promptTokenCount"]
    rec = record_for(logdir / "requests.log", "rid-success-1")
    assert rec["operation"] == "generateContent" and rec["stream"] is False
    assert rec["model_group"] == "gemini-2.5-flash"
    assert rec["provider"] == "gemini" and rec["provider_model"] == "gemini-2.5-flash"
    assert rec["deployment_id"]
    assert rec["status_code"] == 200 and "error_status" not in rec
    assert rec["end_user"] == "alice"
    assert rec["input_tokens"] == usage["promptTokenCount"]
    assert rec["output_tokens"] == usage["candidatesTokenCount"] + usage.get(
        "thoughtsTokenCount", 0
    )
    assert rec["total_tokens"] == usage["totalTokenCount"]
    assert rec["finish_reason"] == "STOP"
    assert rec["attempts"] == 1 and rec["fallbacks"] == []
    assert rec["latency_ms"] > 0 and rec["upstream_ms"] > 0
    assert 0 <= rec["overhead_ms"] <= rec["latency_ms"]
    assert rec["timestamp"].endswith("Z")
    assert "request_contents" not in rec and "response_text" not in rec  # content is opt-in
    text = (logdir / "requests.log").read_text()
    assert MASTER_KEY not in text and UPSTREAM_KEY not in text
    # The callback got the same record, off the request path.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sent = [r for r in records(logdir / "callback.jsonl") if r["request_id"] == "rid-success-1"]
        if sent:
            break
        time.sleep(0.05)
    assert sent == [rec]


def test_upstream_error_record(gateway: Gateway, fake: FakeGemini, logdir: Path) -> None:
    fake.script("error", code=400, status="FAILED_PRECONDITION", message="not in your region")
    status, _, _ = post(
        gateway,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        BODY,
        {"x-request-id": "rid-error-1"},
    )
    assert status == 400
    rec = record_for(logdir / "requests.log", "rid-error-1")
    assert rec["status_code"] == 400 and rec["error_status"] == "FAILED_PRECONDITION"
    assert "not in your region" in rec["error_message"]
    assert rec["model_group"] == "gemini-2.5-flash" and rec["attempts"] == 1
    assert "input_tokens" not in rec


def test_fallback_record(gateway: Gateway, fake: FakeGemini, logdir: Path) -> None:
    fake.script("error", code=503, match="gemini-2.0-flash")
    status, headers, _ = post(
        gateway, "/v1beta/models/flaky:generateContent", BODY, {"x-request-id": "rid-fallback-1"}
    )
    assert status == 200 and headers["x-request-id"] == "rid-fallback-1"
    rec = record_for(logdir / "requests.log", "rid-fallback-1")
    assert rec["attempts"] == 2 and rec["fallbacks"] == ["gemini-2.5-flash"]
    assert rec["model_group"] == "gemini-2.5-flash"  # the group that served
    assert rec["provider_model"] == "gemini-2.5-flash" and rec["status_code"] == 200


def test_unknown_model_is_recorded_at_the_edge(gateway: Gateway, logdir: Path) -> None:
    status, _, _ = post(
        gateway, "/v1beta/models/no-such-model:generateContent", BODY, {"x-request-id": "rid-404"}
    )
    assert status == 404
    rec = record_for(logdir / "requests.log", "rid-404")
    assert rec["status_code"] == 404 and rec["error_status"] == "NOT_FOUND"
    assert rec["model_group"] == "no-such-model" and rec["attempts"] == 0


def test_stream_cut_off_by_the_client(gateway: Gateway, fake: FakeGemini, logdir: Path) -> None:
    fake.cancelled.clear()
    fake.script("slow_stream", interval=0.05, max_chunks=200)
    body = json.dumps(BODY).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            b"POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1\r\n"
            b"host: x\r\ncontent-type: application/json\r\nx-request-id: rid-cut-1\r\n"
            b"x-goog-api-key: "
            + MASTER_KEY.encode()
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        received = b""
        while received.count(b"data: ") < 2:
            received += sock.recv(65536)
    rec = record_for(logdir / "requests.log", "rid-cut-1")
    assert rec["stream"] is True and rec["operation"] == "streamGenerateContent"
    assert rec["status_code"] == 499 and rec["error_status"] == "CANCELLED"
    assert rec["time_to_first_token_ms"] > 0
    assert rec["latency_ms"] >= rec["time_to_first_token_ms"]
    assert rec["upstream_ms"] > 0


def test_sdk_stream_record(gateway: Gateway, logdir: Path) -> None:
    client = client_for(gateway)
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-flash", contents="stream me")
    )
    assert chunks
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        time.sleep(0.02)
        rows = [
            r
            for r in records(logdir / "requests.log")
            if r.get("stream") and r["status_code"] == 200
        ]
    assert rows, "no record for a completed stream"
    assert rows[-1]["time_to_first_token_ms"] > 0 and rows[-1]["finish_reason"] == "STOP"


def scrape(gateway: Gateway) -> dict[str, Any]:
    request = urllib.request.Request(
        gateway.base_url + "/metrics", headers={"x-goog-api-key": MASTER_KEY}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.headers["content-type"].startswith("text/plain")
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample_value(families: dict[str, Any], name: str, sample: str, **labels: str) -> float:
    total = 0.0
    for s in families[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


def test_metrics(gateway: Gateway, fake: FakeGemini) -> None:
    before = scrape(gateway)
    base = sample_value(
        before, "genroute_requests", "genroute_requests_total", model_group="gemini-2.5-flash"
    )
    for user in ("u1", "u2", "u3", "u4"):
        status, _, _ = post(
            gateway,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            BODY,
            {"x-genroute-end-user": user},
        )
        assert status == 200
    fams = scrape(gateway)
    ok = sample_value(
        fams,
        "genroute_requests",
        "genroute_requests_total",
        model_group="gemini-2.5-flash",
        status_code="200",
    )
    assert (
        sample_value(
            fams, "genroute_requests", "genroute_requests_total", model_group="gemini-2.5-flash"
        )
        == base + 4
    )
    assert ok >= 4
    latency = fams["genroute_request_latency_seconds"]
    assert (
        sample_value(
            fams,
            "genroute_request_latency_seconds",
            "genroute_request_latency_seconds_count",
            model_group="gemini-2.5-flash",
        )
        >= 4
    )
    assert latency.type == "histogram"
    assert (
        sample_value(
            fams, "genroute_gateway_overhead_seconds", "genroute_gateway_overhead_seconds_count"
        )
        >= 4
    )
    # end_user is limited to 2 distinct values (alice may have taken one); the rest is `other`.
    users = {
        s.labels["end_user"]
        for s in fams["genroute_tokens"].samples
        if s.name == "genroute_tokens_total"
    }
    assert "other" in users and len(users - {"other", ""}) <= 2
    assert sample_value(fams, "genroute_tokens", "genroute_tokens_total", direction="input") > 0
    assert (
        sample_value(fams, "genroute_fallbacks", "genroute_fallbacks_total", model_group="flaky")
        >= 0
    )
    assert "genroute_deployments_in_cooldown" in fams


def test_metrics_are_aggregated_across_workers(fake: FakeGemini, tmp_path: Path) -> None:
    """`genroute serve --workers 2`: both workers serve, each request is counted once
    whichever worker is scraped, SIGTERM stops them all with status 0, and the master key is
    in no output. (The suite's one `--workers 2` process: test_cli.py's test of several
    workers was folded in here, each start costs three interpreters.)"""
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale")  # from an earlier run: removed
    gw = Gateway(
        config_for(fake, tmp_path),
        tmp_path,
        env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
        extra_args=["--workers", "2"],
    )
    try:
        sent = 0

        def one() -> None:
            status, _, _ = post(gw, "/v1beta/models/gemini-2.5-flash:generateContent", BODY)
            assert status == 200

        # Concurrent requests until both workers have served some (each writes its own file).
        deadline = time.monotonic() + 15
        while len(list(multiproc.glob("counter_*.db"))) < 2:
            assert time.monotonic() < deadline, "only one worker ever answered"
            threads = [threading.Thread(target=one) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sent += len(threads)
        assert not (multiproc / "counter_999999.db").exists()
        for _ in range(4):  # whichever worker answers the scrape, it counts every request
            fams = scrape(gw)
            total = sample_value(
                fams, "genroute_requests", "genroute_requests_total", model_group="gemini-2.5-flash"
            )
            assert total == sent
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(20) == 0
    finally:
        gw.stop()
    assert MASTER_KEY not in gw.log() + (tmp_path / "requests.log").read_text()


def test_sdk_error_is_unchanged_by_observability(gateway: Gateway, fake: FakeGemini) -> None:
    fake.script("error", code=429)
    client = client_for(gateway)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 429


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, int]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.received.append((self.path, len(self.rfile.read(length))))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_otlp_export_configured_by_env(fake: FakeGemini, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received.clear()
    try:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
            "OTEL_SERVICE_NAME": "genroute-test",
        }
        gw = Gateway(config_for(fake, tmp_path), tmp_path, env=env)
        try:
            status, _, _ = post(gw, "/v1beta/models/gemini-2.5-flash:generateContent", BODY)
            assert status == 200
            traceparent = fake.last_request.headers.get("traceparent", "")
            assert traceparent.startswith("00-") and len(traceparent) == 55
        finally:
            gw.stop()  # the batch processor flushes at shutdown
        assert any(path == "/v1/traces" and size > 0 for path, size in _Collector.received)
    finally:
        server.shutdown()
        server.server_close()


def test_cooldown_gauge(fake: FakeGemini, tmp_path: Path) -> None:
    config = config_for(fake, tmp_path)
    config["model_list"].append(
        {
            "model_name": "gemini-2.5-flash",
            "params": {
                "model": "gemini/gemini-2.5-flash",
                "api_key": UPSTREAM_KEY,
                "api_base": f"http://127.0.0.1:{refused_port()}",  # nothing listens
            },
        }
    )
    config["router_settings"].update(num_retries=3, allowed_fails=0, cooldown_time=60)
    gw = InProcessGateway(config, tmp_path)
    try:
        cooling = 0.0
        for _ in range(40):  # simple-shuffle picks the dead deployment (1 in 2^40 it never does)
            status, _, _ = post(gw, "/v1beta/models/gemini-2.5-flash:generateContent", BODY)
            assert status == 200
            fams = scrape(gw)
            cooling = sample_value(
                fams,
                "genroute_deployments_in_cooldown",
                "genroute_deployments_in_cooldown",
                model_group="gemini-2.5-flash",
            )
            if cooling:
                break
        assert cooling == 1
        assert sample_value(fams, "genroute_retries", "genroute_retries_total") >= 1
    finally:
        gw.stop()
