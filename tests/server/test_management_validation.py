"""The management API validates at the edge, on SQLite and PostgreSQL alike: every value a
column cannot hold (an integer over PostgreSQL's INTEGER, an id over 256 characters, a NUL,
a duration past year 9999, an offset past 2^63) is a 400 naming the field, never a 500; the
largest values that fit are accepted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from genroute.config import config_from_data
from genroute.server import create_app
from genroute.server.app import GatewayApp
from tests.dbs import db_url
from tests.server.asgi_client import asgi_request, google_error

__all__ = ["db_url"]

MASTER = "sk-master-validation"
AUTH = {"authorization": f"Bearer {MASTER}"}
INT32 = 2**31
LONG = "x" * 257

# (method, path, JSON body or query string, the field the 400 must name)
BODY_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("/key/generate", {"duration": "3000000d"}, "duration"),
    ("/key/generate", {"duration": "99999999999999999999d"}, "duration"),
    ("/key/generate", {"duration": "36501d"}, "duration"),
    ("/key/generate", {"budget_duration": "3000000d"}, "budget_duration"),
    ("/key/generate", {"budget_duration": "1" + " " * 20 + "d"}, "budget_duration"),
    ("/key/generate", {"rpm_limit": 2**63}, "rpm_limit"),
    ("/key/generate", {"rpm_limit": INT32}, "rpm_limit"),
    ("/key/generate", {"tpm_limit": 2**40}, "tpm_limit"),
    ("/key/generate", {"max_parallel_requests": INT32}, "max_parallel_requests"),
    ("/key/generate", {"max_parallel_requests": 0}, "max_parallel_requests"),
    ("/key/generate", {"max_budget": -1}, "max_budget"),
    ("/key/generate", {"user_id": "u" * 300}, "user_id"),
    ("/key/generate", {"team_id": LONG}, "team_id"),
    ("/key/generate", {"key_alias": LONG}, "key_alias"),
    ("/key/generate", {"key_alias": "a\x00b"}, "key_alias"),
    ("/key/generate", {"user_id": "a\x00b"}, "user_id"),
    ("/key/generate", {"team_id": "a\r\nb"}, "team_id"),
    ("/key/generate", {"models": ["ok", "a\x00b"]}, "models[1]"),
    ("/key/generate", {"models": [LONG]}, "models[0]"),
    ("/key/generate", {"models": ["m"] * 1001}, "models"),
    ("/key/update", {"key": "a\x00b", "max_budget": 1}, "key"),
    ("/key/update", {"key": "k" * 1025}, "key"),
    ("/key/update", {"key": "x", "duration": "3000000d"}, "duration"),
    ("/key/update", {"key": "x", "rpm_limit": INT32}, "rpm_limit"),
    ("/key/delete", {"keys": ["a\x00b"]}, "keys[0]"),
    ("/key/delete", {"keys": ["k"] * 1001}, "keys"),
    ("/team/new", {"team_id": "a\x00b"}, "team_id"),
    ("/team/new", {"team_id": LONG}, "team_id"),
    ("/team/new", {"team_alias": "x" * 300}, "team_alias"),
    ("/team/new", {"rpm_limit": 2**63}, "rpm_limit"),
    ("/team/new", {"budget_duration": "3000000d"}, "budget_duration"),
    ("/team/update", {"team_id": "a\x00b", "max_budget": 1}, "team_id"),
    ("/team/update", {"team_id": LONG, "max_budget": 1}, "team_id"),
    ("/team/update", {"team_id": "t", "tpm_limit": INT32}, "tpm_limit"),
    ("/team/delete", {"team_ids": ["a\x00b"]}, "team_ids[0]"),
    ("/team/delete", {"team_ids": [LONG]}, "team_ids[0]"),
    ("/team/delete", {"team_ids": ["t"] * 1001}, "team_ids"),
    ("/customer/new", {"user_id": "x" * 300}, "user_id"),
    ("/customer/new", {"user_id": "a\x00b"}, "user_id"),
    ("/customer/new", {"end_user_id": "a\x00b"}, "end_user_id"),
    ("/customer/new", {"user_id": "ok", "alias": "x" * 300}, "alias"),
    ("/customer/new", {"user_id": "ok", "max_parallel_requests": 2**63}, "max_parallel_requests"),
    ("/customer/update", {"user_id": "a\x00b", "max_budget": 1}, "user_id"),
    ("/customer/delete", {"user_ids": ["a\x00b"]}, "user_ids[0]"),
    ("/customer/delete", {"end_user_ids": [LONG]}, "end_user_ids[0]"),
]
QUERY_CASES: list[tuple[str, bytes, str]] = [
    ("/key/info", b"key=a%00b", "key"),
    ("/key/info", b"key=" + b"k" * 1025, "key"),
    ("/key/list", b"team_id=a%00b", "team_id"),
    ("/key/list", b"team_id=" + LONG.encode(), "team_id"),
    ("/team/info", b"team_id=a%00b", "team_id"),
    ("/team/info", b"team_id=" + LONG.encode(), "team_id"),
    ("/customer/info", b"end_user_id=a%00b", "end_user_id"),
    ("/customer/info", b"user_id=a%0D%0Ab", "user_id"),
    ("/spend/logs", b"offset=1e20", "offset"),
    ("/spend/logs", b"offset=100000000000000000000", "offset"),
    ("/spend/logs", b"offset=-1", "offset"),
    ("/spend/logs", b"limit=-1", "limit"),
    ("/spend/logs", b"limit=" + b"9" * 5000, "limit"),
    ("/spend/logs", b"limit=ten", "limit"),
    ("/spend/logs", b"end_user=a%00b", "end_user"),
    ("/spend/logs", b"end_user_id=" + LONG.encode(), "end_user_id"),
    ("/spend/logs", b"api_key=a%00b", "api_key"),
    ("/spend/logs", b"model=a%00b", "model"),
    ("/spend/logs", b"team_id=a%00b", "team_id"),
    ("/spend/logs", b"start_date=9999-12-31T23:59:59-23:59", "start_date"),
    ("/spend/logs", b"end_date=0001-01-01T00:00:00%2B14:00", "end_date"),
    ("/spend/logs", b"start_date=yesterday", "start_date"),
    ("/global/spend/report", b"model=a%00b", "model"),
    ("/global/spend/report", b"start_date=a%00b", "start_date"),
    ("/global/spend/report", b"group_by=a%00b", "group_by"),
]


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[GatewayApp]:
    config = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {"master_key": MASTER, "database_url": db_url},
        "observability": {"logs": {"enabled": False}},
    }
    gateway = create_app(config_from_data(config))
    await gateway.pipeline.start()
    yield gateway
    await gateway.pipeline.aclose()


async def post(app: GatewayApp, path: str, body: dict[str, Any]) -> Any:
    return await asgi_request(app, "POST", path, json.dumps(body).encode(), AUTH)


async def test_bodies_out_of_range_are_400_naming_the_field(app: GatewayApp) -> None:
    wrong = []
    for path, body, field in BODY_CASES:
        reply = await post(app, path, body)
        if reply.status != 400 or not google_error(reply)["message"].startswith(
            (f"Invalid request: {field}: ", f"{field}: ")
        ):
            wrong.append((path, field, reply))
    assert not wrong, "\n".join(map(repr, wrong))


async def test_queries_out_of_range_are_400_naming_the_parameter(app: GatewayApp) -> None:
    wrong = []
    for path, query, field in QUERY_CASES:
        reply = await asgi_request(app, "GET", path, headers=AUTH, query=query)
        if reply.status != 400 or not google_error(reply)["message"].startswith(f"{field}: "):
            wrong.append((path, query[:60], reply))
    assert not wrong, "\n".join(map(repr, wrong))


async def test_the_largest_values_that_fit_are_accepted(app: GatewayApp) -> None:
    biggest = INT32 - 1
    team = "t" * 256
    reply = await post(
        app,
        "/team/new",
        {
            "team_id": team,
            "team_alias": "a" * 256,
            "rpm_limit": biggest,
            "budget_duration": "36500d",
        },
    )
    assert reply.status == 200, reply
    reply = await post(
        app,
        "/key/generate",
        {
            "team_id": team,
            "user_id": "u" * 256,
            "key_alias": "k" * 256,
            "models": ["m" * 256] * 1000,
            "rpm_limit": biggest,
            "tpm_limit": biggest,
            "max_parallel_requests": biggest,
            "max_budget": 1e308,
            "duration": "36500d",
            "budget_duration": "1200mo",
            "metadata": {"nested": [[[{"deep": "\u00e9\U0001f600"}]]]},
        },
    )
    assert reply.status == 200, reply
    made = reply.json()
    assert made["rpm_limit"] == biggest and made["expires"].startswith(("21", "22"))
    reply = await post(app, "/key/update", {"key": made["key"], "tpm_limit": 0})
    assert reply.status == 200 and reply.json()["tpm_limit"] == 0
    reply = await post(app, "/customer/new", {"user_id": "c" * 256, "alias": "é" * 256})
    assert reply.status == 200, reply
    for path, query in [
        ("/team/info", b"team_id=" + team.encode()),
        ("/customer/info", b"end_user_id=" + b"c" * 256),
        ("/key/list", b"team_id=" + team.encode()),
        ("/spend/logs", b"offset=9223372036854775807&limit=0"),
        ("/spend/logs", b"limit=100000000&start_date=0001-01-01&end_date=9999-12-31"),
        ("/global/spend/report", b"group_by=team&team_id=" + team.encode()),
    ]:
        reply = await asgi_request(app, "GET", path, headers=AUTH, query=query)
        assert reply.status == 200, (path, reply)
    reply = await post(app, "/key/delete", {"keys": [made["key"]] * 1000})
    assert reply.status == 200 and reply.json()["deleted_keys"] == [made["key_hash"]]
