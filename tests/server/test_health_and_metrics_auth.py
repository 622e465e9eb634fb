"""What /health and /metrics show, and to whom: liveness and readiness are open and say
only the status; the full /health report (deployments, upstream `api_base` URLs) and
/metrics (key aliases, end users) need the master key when one is configured;
`observability.metrics.require_auth: false` opens /metrics for a scraper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from genroute.config import config_from_data
from genroute.server import create_app
from genroute.server.app import GatewayApp
from tests.server.asgi_client import asgi_request, google_error

MASTER = "sk-master-exposure"
API_BASE = "http://internal-upstream.example:8443/secret-path"
BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
BARE = ["/health/liveliness", "/health/liveness", "/health/readiness"]


def config(
    master: bool = True, database: Path | None = None, metrics: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model_list": [
            {"model_name": "demo", "params": {"model": "demo/echo"}},
            {
                "model_name": "remote",
                "params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_key": "k",
                    "api_base": API_BASE,
                },
            },
        ],
        "observability": {"logs": {"enabled": False}, "metrics": metrics or {}},
        "general_settings": {},
    }
    if master:
        data["general_settings"]["master_key"] = MASTER
    if database is not None:
        data["general_settings"]["database_url"] = f"sqlite:///{database / 'keys.db'}"
    return data


async def started(data: dict[str, Any]) -> GatewayApp:
    app = create_app(config_from_data(data))
    await app.pipeline.start()
    return app


@pytest.fixture
async def governed(tmp_path: Path) -> AsyncIterator[GatewayApp]:
    app = await started(config(database=tmp_path))
    yield app
    await app.pipeline.aclose()


@pytest.fixture(params=["master-key-only", "governed"])
async def protected(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GatewayApp]:
    """A gateway with a master key: alone, or with a database (the governed layer)."""
    app = await started(config(database=tmp_path if request.param == "governed" else None))
    yield app
    await app.pipeline.aclose()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_liveness_and_readiness_are_open_and_bare(governed: GatewayApp) -> None:
    for path in BARE:
        for method in ("GET", "HEAD"):
            reply = await asgi_request(governed, method, path)
            assert reply.status == 200
            if method == "GET":
                assert reply.json() == {"status": "healthy"}


async def test_full_health_needs_the_master_key(protected: GatewayApp) -> None:
    app = protected
    reply = await asgi_request(app, "GET", "/health")
    assert reply.status == 403 and API_BASE.encode() not in reply.body
    assert google_error(reply)["status"] == "PERMISSION_DENIED"
    reply = await asgi_request(app, "GET", "/health", headers=bearer("sk-wrong"))
    assert reply.status == 401 and API_BASE.encode() not in reply.body
    google_error(reply)
    for headers in (bearer(MASTER), {"x-goog-api-key": MASTER}):
        reply = await asgi_request(app, "GET", "/health", headers=headers)
        assert reply.status == 200
        report = reply.json()
        assert report["status"] == "healthy" and "remote" in report["models"]
        assert API_BASE in {e.get("api_base") for e in report["healthy_endpoints"]}


async def test_metrics_need_the_master_key(protected: GatewayApp) -> None:
    app = protected
    headers = {**bearer(MASTER), "x-genroute-end-user": "alice@example.com"}
    reply = await asgi_request(app, "POST", "/v1beta/models/demo:generateContent", BODY, headers)
    assert reply.status == 200
    for sent in ({}, bearer("sk-wrong")):
        reply = await asgi_request(app, "GET", "/metrics", headers=sent)
        assert reply.status in (401, 403) and b"alice" not in reply.body
        google_error(reply)
    reply = await asgi_request(app, "GET", "/metrics", headers=bearer(MASTER))
    assert reply.status == 200 and b"alice@example.com" in reply.body


async def test_a_virtual_key_is_not_the_master_key(governed: GatewayApp) -> None:
    reply = await asgi_request(
        governed,
        "POST",
        "/key/generate",
        json.dumps({"key_alias": "ordinary"}).encode(),
        bearer(MASTER),
    )
    assert reply.status == 200
    key = reply.json()["key"]
    reply = await asgi_request(
        governed, "POST", "/v1beta/models/demo:countTokens", BODY, bearer(key)
    )
    assert reply.status == 200  # a working key for calls
    for path in ("/health", "/metrics"):
        reply = await asgi_request(governed, "GET", path, headers=bearer(key))
        assert reply.status == 403, path
        assert "needs the master key" in google_error(reply)["message"]
        assert b"ordinary" not in reply.body and API_BASE.encode() not in reply.body


async def test_require_auth_false_opens_metrics_for_a_scraper() -> None:
    app = await started(config(metrics={"require_auth": False}))
    try:
        reply = await asgi_request(app, "GET", "/metrics")
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
        reply = await asgi_request(app, "GET", "/health")
        assert reply.status == 403  # only /metrics was opened
    finally:
        await app.pipeline.aclose()


async def test_without_a_master_key_everything_is_open() -> None:
    app = await started(config(master=False))
    try:
        reply = await asgi_request(app, "GET", "/health")
        assert reply.status == 200 and "healthy_endpoints" in reply.json()
        assert (await asgi_request(app, "GET", "/metrics")).status == 200
        for path in BARE:
            assert (await asgi_request(app, "GET", path)).json() == {"status": "healthy"}
    finally:
        await app.pipeline.aclose()
