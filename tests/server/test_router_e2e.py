"""End to end: the Router in the real server process: headers, fallbacks, streams, /health,
and two processes sharing cooldowns and rpm caps through the machine's real Redis."""

from __future__ import annotations

import collections
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from google.genai import errors

from tests.conftest import Gateway, InProcessGateway, eventually
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.tcp_proxy import TcpProxy
from tests.routing.conftest import unique_prefix
from tests.server.conftest import MASTER_KEY, UPSTREAM_KEY, client_for
from tests.server.test_gemini_e2e import BODY, post

pytestmark = pytest.mark.e2e


def upstream(fake: FakeGemini, model: str, **extra: Any) -> dict[str, Any]:
    return {"model": f"gemini/{model}", "api_key": UPSTREAM_KEY, "api_base": fake.base_url, **extra}


def item(group: str, params: dict[str, Any], ident: str) -> dict[str, Any]:
    return {"model_name": group, "params": params, "model_info": {"id": ident}}


@pytest.fixture(scope="module")
def fakes() -> Iterator[list[FakeGemini]]:
    upstreams = [FakeGemini(UPSTREAM_KEY).start() for _ in range(2)]
    yield upstreams
    for fake in upstreams:
        fake.stop()


@pytest.fixture(autouse=True)
def _fresh(fakes: list[FakeGemini]) -> None:
    for fake in fakes:
        fake.reset()


@pytest.fixture(scope="module")
def gateway(fakes: list[FakeGemini], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    one, two = fakes
    demo = {"model": "demo/safety-net"}
    config = {
        "model_list": [
            item("pair", upstream(one, "gemini-2.5-flash"), "pair-a"),
            item("pair", upstream(two, "gemini-2.5-flash"), "pair-b"),
            item("flaky", upstream(one, "gemini-flaky"), "flaky-1"),
            item("flaky-stream", upstream(one, "gemini-flaky-stream"), "flaky-stream-1"),
            item("midstream", upstream(one, "gemini-midstream"), "midstream-1"),
            item("midstream-drop", upstream(one, "gemini-midstream-drop"), "midstream-2"),
            item("cooling", upstream(two, "gemini-cooling", order=1), "cooling-bad"),
            item("cooling", {"model": "demo/cooling", "order": 2}, "cooling-good"),
            item("safety-net", demo, "safety-net-demo"),
            item("always-bad", upstream(two, "gemini-always-bad"), "always-bad-1"),
        ],
        "router_settings": {
            "num_retries": 1,
            "retry_backoff_base": 0.01,
            "allowed_fails": 0,
            "cooldown_time": 60,
            "fallbacks": [
                {"flaky": ["safety-net"]},
                {"flaky-stream": ["safety-net"]},
                {"midstream": ["safety-net"]},
                {"midstream-drop": ["safety-net"]},
            ],
        },
        "general_settings": {"master_key": MASTER_KEY},
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("router-gateway")))
    yield gw
    gw.stop()


def get_json(gateway: Gateway, path: str) -> Any:
    request = urllib.request.Request(
        gateway.base_url + path, headers={"x-goog-api-key": MASTER_KEY}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_headers_name_group_and_deployment_and_spread(gateway: Gateway) -> None:
    seen = collections.Counter()
    for _ in range(40):
        status, headers, _ = post(gateway, "/v1beta/models/pair:generateContent", BODY)
        assert status == 200 and headers["x-genroute-model-group"] == "pair"
        assert headers["x-genroute-attempts"] == "1" and "x-genroute-fallback" not in headers
        seen[headers["x-genroute-deployment"]] += 1
    print(f"\nDISTRIBUTION e2e simple-shuffle (equal weights, 40): {dict(seen)}")
    assert set(seen) == {"pair-a", "pair-b"} and min(seen.values()) >= 8
    assert all(UPSTREAM_KEY not in value for value in seen)


def test_fallback_across_providers_with_the_sdk(gateway: Gateway, fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=500, match="gemini-flaky:", times=None)
    client = client_for(gateway)
    response = client.models.generate_content(model="flaky", contents="hi there")
    assert response.text and response.text.startswith("This is the genroute demo model")
    status, headers, _ = post(gateway, "/v1beta/models/flaky:generateContent", BODY)
    assert status == 200 and headers["x-genroute-fallback"] == "safety-net"
    assert headers["x-genroute-model-group"] == "safety-net"
    assert headers["x-genroute-deployment"] == "safety-net-demo"


def test_stream_falls_back_before_the_first_byte(gateway: Gateway, fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=503, match="gemini-flaky-stream:")
    client = client_for(gateway)
    chunks = list(client.models.generate_content_stream(model="flaky-stream", contents="hi"))
    assert "".join(c.text or "" for c in chunks).startswith("This is the genroute demo model")
    fakes[0].script("error", code=503, match="gemini-flaky-stream:")
    status, headers, raw = post(
        gateway, "/v1beta/models/flaky-stream:streamGenerateContent?alt=sse", BODY
    )
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert headers["x-genroute-fallback"] == "safety-net"
    assert headers["x-genroute-deployment"] == "safety-net-demo"
    assert b"genroute demo model" in raw and b'"error"' not in raw


def test_stream_error_after_the_first_chunk_is_a_clean_error_event(
    gateway: Gateway, fakes: list[FakeGemini]
) -> None:
    fakes[0].script("stream_error", after=1, code=500, match="gemini-midstream:")
    status, headers, raw = post(
        gateway, "/v1beta/models/midstream:streamGenerateContent?alt=sse", BODY
    )
    events = [
        json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data:")
    ]
    assert status == 200 and headers["x-genroute-deployment"] == "midstream-1"
    assert "x-genroute-fallback" not in headers
    assert len(events) == 2 and "candidates" in events[0]
    assert events[-1]["error"]["code"] == 500
    assert b"genroute demo model" not in raw  # never spliced with the fallback's answer
    fakes[0].script("drop", after=1, match="gemini-midstream-drop:")
    client = client_for(gateway)
    received = []
    with pytest.raises(errors.APIError):
        for chunk in client.models.generate_content_stream(model="midstream-drop", contents="hi"):
            received.append(chunk.text)
    assert len(received) == 1 and "genroute demo" not in (received[0] or "")


def test_health_shows_cooling_deployments(gateway: Gateway, fakes: list[FakeGemini]) -> None:
    fakes[1].script("error", code=503, match="gemini-cooling:", times=None)
    status, headers, _ = post(gateway, "/v1beta/models/cooling:generateContent", BODY)
    assert status == 200 and headers["x-genroute-attempts"] == "2"
    status, headers, _ = post(gateway, "/v1beta/models/cooling:generateContent", BODY)
    assert headers["x-genroute-attempts"] == "1"
    assert headers["x-genroute-deployment"] == "cooling-good"
    health = get_json(gateway, "/health")
    assert health["status"] == "healthy" and health["router_state"] == "memory"
    cooling = {e["deployment"]: e for e in health["unhealthy_endpoints"]}
    assert cooling["cooling-bad"]["cooling_down"] is True
    assert 0 < cooling["cooling-bad"]["cooldown_remaining_s"] <= 60
    healthy = {e["deployment"] for e in health["healthy_endpoints"]}
    assert {"pair-a", "pair-b", "cooling-good"} <= healthy
    assert "api_key" not in json.dumps(health) and UPSTREAM_KEY not in json.dumps(health)


def test_errors_carry_the_routing_headers(gateway: Gateway, fakes: list[FakeGemini]) -> None:
    fakes[1].script("error", code=500, match="gemini-always-bad:", times=None)
    status, headers, raw = post(gateway, "/v1beta/models/always-bad:generateContent", BODY)
    assert status == 500 and json.loads(raw)["error"]["status"] == "INTERNAL"
    assert headers["x-genroute-attempts"] == "2"  # num_retries: 1
    assert headers["x-genroute-deployment"] == "always-bad-1"
    status, headers, _ = post(
        gateway, "/v1beta/models/always-bad:streamGenerateContent?alt=sse", BODY
    )
    assert status == 500 and headers["x-genroute-attempts"] == "2"


# -- several processes, one Redis ------------------------------------------------------------


@pytest.fixture
def redis_prefix(redis_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = unique_prefix(request.node.name)
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_two_processes_share_an_rpm_cap_and_a_cooldown(
    redis_url: str, redis_prefix: str, fakes: list[FakeGemini], tmp_path: Path
) -> None:
    fakes[0].script("error", code=500, match="gemini-broken:", times=None)
    config = {
        "model_list": [
            item("capped", {"model": "demo/capped", "rpm": 4}, "capped-demo"),
            item("g", upstream(fakes[0], "gemini-broken", order=1), "broken"),
            item("g", {"model": "demo/fine", "order": 2}, "fine"),
        ],
        "router_settings": {
            "redis_url": redis_url,
            "redis_key_prefix": redis_prefix,
            "allowed_fails": 0,
            "cooldown_time": 60,
            "num_retries": 1,
        },
    }
    one, two = InProcessGateway(config, tmp_path), InProcessGateway(config, tmp_path)
    try:
        outcomes = []
        for i in range(6):
            gw = one if i % 2 == 0 else two
            status, headers, raw = post(gw, "/v1beta/models/capped:generateContent", BODY)
            outcomes.append(status)
            if status == 429:
                error = json.loads(raw)["error"]
                assert error["status"] == "RESOURCE_EXHAUSTED" and int(headers["retry-after"]) > 0
                assert any(d["@type"].endswith("RetryInfo") for d in error["details"])
        assert outcomes == [200, 200, 200, 200, 429, 429]

        status, headers, _ = post(one, "/v1beta/models/g:generateContent", BODY)
        assert (status, headers["x-genroute-attempts"]) == (200, "2")
        for _ in range(3):
            status, headers, _ = post(two, "/v1beta/models/g:generateContent", BODY)
            assert (status, headers["x-genroute-deployment"]) == (200, "fine")
            assert headers["x-genroute-attempts"] == "1"
        assert len([r for r in fakes[0].requests if "gemini-broken" in r.path]) == 1
        health = get_json(two, "/health")
        assert health["router_state"] == "redis"
        assert [e["deployment"] for e in health["unhealthy_endpoints"]] == ["broken"]
    finally:
        one.stop()
        two.stop()


def test_redis_cut_off_mid_test_does_not_fail_requests(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    with TcpProxy(6379) as proxy:
        config = {
            "model_list": [item("g", {"model": "demo/x", "rpm": 1000}, "d")],
            "router_settings": {
                "redis_url": f"redis://127.0.0.1:{proxy.port}/0",
                "redis_key_prefix": redis_prefix,
                "redis_reconnect_interval": 0.05,
            },
        }
        gw = InProcessGateway(config, tmp_path)
        try:
            for _ in range(3):
                assert post(gw, "/v1beta/models/g:generateContent", BODY)[0] == 200
            assert get_json(gw, "/health")["router_state"] == "redis"
            proxy.stop()
            for _ in range(8):
                assert post(gw, "/v1beta/models/g:generateContent", BODY)[0] == 200
                status, _, raw = post(gw, "/v1beta/models/g:streamGenerateContent?alt=sse", BODY)
                assert status == 200 and b'"error"' not in raw
            assert get_json(gw, "/health")["router_state"] == "memory (redis unreachable)"
            assert gw.log().count("Redis is unreachable") == 1
            proxy.start()
            eventually(  # retried every 0.05 s, on the next request
                lambda: (
                    post(gw, "/v1beta/models/g:generateContent", BODY)[0] == 200
                    and get_json(gw, "/health")["router_state"] == "redis"
                )
            )
            for _ in range(3):
                assert post(gw, "/v1beta/models/g:generateContent", BODY)[0] == 200
            assert get_json(gw, "/health")["router_state"] == "redis"
            assert "reachable again" in gw.log()
        finally:
            gw.stop()
    assert redis.Redis.from_url(redis_url).ping()
