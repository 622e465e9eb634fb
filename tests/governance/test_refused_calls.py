"""Calls refused before they reach a model are ledger rows, on SQLite and PostgreSQL alike:
a known key refused for its model list, over its budget, over its rate limit, blocked or
expired, each a row with its status, why (the error's reason and message), cost 0 and no
tokens, under its key, team and end user; the Logs filter by status finds them, the
reports count them in `requests` and say how many (`refused`), and spend and budgets are
unchanged. A missing or unknown key is never a row: it is counted in metrics only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from genroute.config import config_from_data
from genroute.server import create_app
from genroute.server.app import GatewayApp
from genroute.store.repo import utcnow
from tests.dbs import db_url
from tests.server.asgi_client import asgi_request

__all__ = ["db_url"]

MASTER = "sk-master-refused"
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
        "observability": {"logs": {"enabled": False}, "metrics": {"enabled": True}},
    }
    gateway = create_app(config_from_data(config))
    await gateway.pipeline.start()
    yield gateway
    await gateway.pipeline.aclose()


async def api(app: GatewayApp, method: str, path: str, body: Any = None, query: str = "") -> Any:
    data = b"" if body is None else json.dumps(body).encode()
    reply = await asgi_request(app, method, path, data, AUTH, query=query.encode())
    assert reply.status == 200, reply
    return reply.json()


async def generate(
    app: GatewayApp, key: str, request_id: str, model: str = "demo", end_user: str = ""
) -> int:
    headers = {"x-goog-api-key": key, "x-request-id": request_id}
    if end_user:
        headers["x-genroute-end-user"] = end_user
    body = json.dumps({"contents": [{"parts": [{"text": "hello there"}]}]}).encode()
    reply = await asgi_request(
        app, "POST", f"/v1beta/models/{model}:generateContent", body, headers
    )
    return reply.status


async def rows(app: GatewayApp, query: str) -> list[dict[str, Any]]:
    assert app.governance is not None
    await app.governance.ledger.flush()
    found: list[dict[str, Any]] = await api(app, "GET", "/spend/logs", query=query)
    return found


async def test_each_refusal_of_a_known_key_is_a_ledger_row_with_cost_0(app: GatewayApp) -> None:
    assert app.governance is not None
    await api(app, "POST", "/team/new", {"team_id": "refused-team"})
    narrow = (
        await api(
            app,
            "POST",
            "/key/generate",
            {"key_alias": "narrow", "models": ["other"], "team_id": "refused-team"},
        )
    )["key"]
    assert await generate(app, narrow, "not-allowed", end_user="eu-1") == 403
    (row,) = await rows(app, "request_id=not-allowed")
    assert (row["status_code"], row["error_status"]) == (403, "PERMISSION_DENIED")
    assert (row["key_alias"], row["team_id"], row["end_user"]) == ("narrow", "refused-team", "eu-1")
    assert row["cost"] == 0.0 and row["prompt_tokens"] == row["output_tokens"] == 0
    assert row["model_group"] == "demo" and row["deployment_id"] is None
    refused = row["routing"]["refused"]
    assert refused["reason"] == "MODEL_NOT_ALLOWED" and "may not use model" in refused["message"]

    budget = (await api(app, "POST", "/key/generate", {"key_alias": "small", "max_budget": 0.001}))[
        "key"
    ]
    assert await generate(app, budget, "spends") == 200  # spends past the budget
    await rows(app, "request_id=spends")
    spent = (await api(app, "GET", "/key/info", query=f"key={budget}"))["info"]["spend"]
    assert spent > 0.001
    assert await generate(app, budget, "over-budget") == 429
    (row,) = await rows(app, "request_id=over-budget")
    assert (row["status_code"], row["routing"]["refused"]["reason"]) == (429, "BUDGET_EXCEEDED")
    assert row["cost"] == 0.0
    info = (await api(app, "GET", "/key/info", query=f"key={budget}"))["info"]
    assert info["spend"] == pytest.approx(spent)  # the refusal added nothing

    limited = (await api(app, "POST", "/key/generate", {"key_alias": "rpm", "rpm_limit": 1}))["key"]
    assert await generate(app, limited, "first") == 200
    assert await generate(app, limited, "rate-limited") == 429
    (row,) = await rows(app, "request_id=rate-limited")
    assert row["error_status"] == "RESOURCE_EXHAUSTED"
    assert "rpm_limit" in row["routing"]["refused"]["message"]

    blocked = (await api(app, "POST", "/key/generate", {"key_alias": "blocked", "blocked": True}))[
        "key"
    ]
    assert await generate(app, blocked, "blocked-key", end_user="eu-2") == 403
    (row,) = await rows(app, "request_id=blocked-key")
    assert (row["key_alias"], row["end_user"], row["operation"]) == (
        "blocked",
        "eu-2",
        "generateContent",
    )
    assert row["routing"]["refused"]["reason"] == "API_KEY_BLOCKED"

    expiring = (
        await api(app, "POST", "/key/generate", {"key_alias": "expiring", "duration": "1h"})
    )["key"]
    app.governance.now = lambda: utcnow() + timedelta(hours=1, seconds=1)
    assert await generate(app, expiring, "expired-key") == 401
    (row,) = await rows(app, "request_id=expired-key")
    assert (row["status_code"], row["routing"]["refused"]["reason"]) == (401, "API_KEY_EXPIRED")

    # The status filter finds them; the detail says why; reports count and name them.
    found = {r["request_id"] for r in await rows(app, "status=429")}
    assert found == {"over-budget", "rate-limited"}
    info = await api(app, "GET", "/request/info", query="request_id=blocked-key")
    (call,) = info["calls"]
    assert call["refused"] == "API_KEY_BLOCKED" and call["attempt_log"] == []
    assert call["error_message"] == "This key is blocked."
    report = await api(app, "GET", "/global/spend/report", query="group_by=key")
    by_alias = {r["key_alias"]: r for r in report}
    assert by_alias["small"]["requests"] == 2 and by_alias["small"]["refused"] == 1
    assert by_alias["narrow"]["spend"] == 0.0 and by_alias["narrow"]["refused"] == 1
    team = (await api(app, "GET", "/team/info", query="team_id=refused-team"))["team_info"]
    assert team["spend"] == 0.0


async def test_a_missing_or_unknown_key_is_counted_in_metrics_only(app: GatewayApp) -> None:
    assert await generate(app, "sk-not-a-key", "junk-1") == 401
    assert await generate(app, "sk-not-a-key", "junk-2") == 401
    assert await generate(app, "", "junk-3") == 403
    assert await rows(app, "") == []
    reply = await asgi_request(app, "GET", "/metrics", b"", AUTH)
    text = reply.body.decode()
    assert 'genroute_auth_refused_total{reason="API_KEY_INVALID",status_code="401"} 2.0' in text
    assert 'genroute_auth_refused_total{reason="API_KEY_MISSING",status_code="403"} 1.0' in text
