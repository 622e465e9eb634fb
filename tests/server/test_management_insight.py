"""What the management API adds for the admin UI, on SQLite and PostgreSQL alike: the
ledger newest first and filtered by status or request id, spend per hour and with key
aliases, each deployment's health with its ledger window, and one request's routing from
the calls the instance keeps; each checked like the other routes (master key, 400 naming
the parameter)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genroute.config import config_from_data
from genroute.server import create_app
from genroute.server.app import GatewayApp
from tests.dbs import db_url
from tests.server.asgi_client import asgi_request, google_error

__all__ = ["db_url"]

MASTER = "sk-master-insight"
AUTH = {"authorization": f"Bearer {MASTER}"}
PRICED = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[GatewayApp]:
    config = {
        "model_list": [
            {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": PRICED},
            {"model_name": "other", "params": {"model": "demo/echo"}},
        ],
        "general_settings": {"master_key": MASTER, "database_url": db_url},
        "observability": {"logs": {"enabled": False}},
    }
    gateway = create_app(config_from_data(config))
    await gateway.pipeline.start()
    yield gateway
    await gateway.pipeline.aclose()


async def get(app: GatewayApp, path: str, query: str = "", auth: Any = AUTH) -> Any:
    return await asgi_request(app, "GET", path, headers=auth, query=query.encode())


async def generate(
    app: GatewayApp, key: str, model: str = "demo", request_id: str | None = None
) -> int:
    headers = {"x-goog-api-key": key}
    if request_id:
        headers["x-request-id"] = request_id
    body = json.dumps({"contents": [{"parts": [{"text": "hello there"}]}]}).encode()
    reply = await asgi_request(
        app, "POST", f"/v1beta/models/{model}:generateContent", body, headers
    )
    return reply.status


async def new_key(app: GatewayApp, alias: str) -> str:
    body = json.dumps({"key_alias": alias}).encode()
    reply = await asgi_request(app, "POST", "/key/generate", body, AUTH)
    assert reply.status == 200, reply
    return str(reply.json()["key"])


async def flushed(app: GatewayApp) -> None:
    assert app.governance is not None
    await app.governance.ledger.flush()


async def test_spend_logs_newest_first_filtered_by_status_and_request_id(app: GatewayApp) -> None:
    key = await new_key(app, "logs-key")
    assert await generate(app, key, request_id="first") == 200
    assert await generate(app, key, model="other", request_id="second") == 200
    await flushed(app)
    oldest = (await get(app, "/spend/logs")).json()
    newest = (await get(app, "/spend/logs", "order=desc")).json()
    assert [r["request_id"] for r in oldest] == ["first", "second"]
    assert [r["request_id"] for r in newest] == ["second", "first"]
    assert (await get(app, "/spend/logs", "order=desc&limit=1")).json()[0]["request_id"] == "second"
    one = (await get(app, "/spend/logs", "request_id=first")).json()
    assert [r["model_group"] for r in one] == ["demo"]
    assert len((await get(app, "/spend/logs", "status=success")).json()) == 2
    assert len((await get(app, "/spend/logs", "status=200")).json()) == 2
    assert (await get(app, "/spend/logs", "status=error")).json() == []
    assert (await get(app, "/spend/logs", "status=500")).json() == []
    for query, field in [
        ("order=sideways", "order"),
        ("status=fine", "status"),
        ("status=2000", "status"),
        ("request_id=" + "r" * 129, "request_id"),
    ]:
        reply = await get(app, "/spend/logs", query)
        assert reply.status == 400, (query, reply)
        assert google_error(reply)["message"].startswith(f"{field}:")


async def test_spend_report_per_hour_names_key_aliases(app: GatewayApp) -> None:
    key = await new_key(app, "hourly")
    for _ in range(3):
        assert await generate(app, key) == 200
    await flushed(app)
    hour = datetime.now(UTC).strftime("%Y-%m-%d %H:00")
    rows = (await get(app, "/global/spend/report", "group_by=key&bucket=hour")).json()
    (row,) = rows
    assert row["hour"] == hour
    assert row["key_alias"] == "hourly" and len(row["key"]) == 64
    assert row["requests"] == 3 and row["spend"] > 0
    days = (await get(app, "/global/spend/report", "group_by=key")).json()
    assert days[0]["day"] == hour[:10] and days[0]["requests"] == 3
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = await get(app, "/global/spend/report", f"bucket=hour&start_date={tomorrow}")
    assert later.json() == []
    reply = await get(app, "/global/spend/report", "bucket=minute")
    assert reply.status == 400 and google_error(reply)["message"].startswith("bucket:")


async def test_model_health_lists_deployments_with_their_ledger_window(app: GatewayApp) -> None:
    key = await new_key(app, "health")
    assert await generate(app, key) == 200
    assert await generate(app, key) == 200
    await flushed(app)
    health = (await get(app, "/model/health")).json()
    assert health["window"] == "15m" and health["router_state"] == "memory"
    by_group = {d["model_group"]: d for d in health["deployments"]}
    assert set(by_group) == {"demo", "other"}
    demo = by_group["demo"]
    assert demo["provider"] == "demo" and demo["cooling_down"] is False
    assert demo["requests"] == 2 and demo["errors"] == 0 and demo["error_rate"] == 0.0
    assert demo["avg_latency_ms"] is not None and demo["latency_ms"] >= 0
    assert by_group["other"]["requests"] == 0
    reply = await get(app, "/model/health", "window=forever")
    assert reply.status == 400 and google_error(reply)["message"].startswith("window:")


async def test_request_info_has_the_ledger_row_and_the_routing(app: GatewayApp) -> None:
    key = await new_key(app, "info")
    assert await generate(app, key, request_id="req-info") == 200
    await flushed(app)
    info = (await get(app, "/request/info", "request_id=req-info")).json()
    assert info["request_id"] == "req-info" and info["content_logged"] is False
    (row,) = info["ledger"]
    assert row["key_alias"] == "info" and row["prompt_tokens"] > 0
    (kept,) = info["calls"]
    (attempt,) = kept["attempt_log"]
    assert attempt["ok"] is True and attempt["deployment"] == row["deployment_id"]
    assert kept["fallbacks"] == [] and "request_contents" in kept
    assert (await get(app, "/request/info", "request_id=nope")).status == 404
    assert (await get(app, "/request/info")).status == 400


async def test_the_new_routes_need_the_master_key(app: GatewayApp) -> None:
    key = await new_key(app, "not-master")
    for path in ("/model/health", "/request/info"):
        assert (await get(app, path, auth={})).status == 403
        assert (await get(app, path, auth={"x-goog-api-key": key})).status == 403
        assert (await get(app, path, auth={"x-goog-api-key": "sk-wrong"})).status == 401
