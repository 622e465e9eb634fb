"""End to end: virtual keys, budgets, limits and the spend ledger through the real server.

Each test runs against a fresh SQLite file and a fresh PostgreSQL database. The demo model
reports usage and is priced in model_info, so every call costs a known, non-zero amount.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import errors as genai_errors

from tests.conftest import (
    Gateway,
    InProcessGateway,
    advance_key_cache,
    eventually,
    freeze_limits,
    genai_client,
)
from tests.dbs import db_url

__all__ = ["db_url"]
pytestmark = pytest.mark.e2e

MASTER = "sk-e2e-master"
PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
CALL_COST = 2 * 0.001 + 10 * 0.002  # "hello there" → 2 prompt tokens, 10 output tokens
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


def config(database_url: str) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": PRICES},
            {"model_name": "other", "params": {"model": "demo/other"}, "model_info": PRICES},
        ],
        "general_settings": {
            "master_key": MASTER,
            "database_url": database_url,
            "spend_flush_interval": 0.2,
            "key_cache_ttl": 0.5,
            # Not about a slow database (test_outages_e2e.py is): on a loaded machine, 200
            # calls queueing for pooled connections must not time out into 503s.
            "database_timeout": 30,
        },
    }


def call(
    gw: Gateway, method: str, path: str, body: Any = None, key: str | None = MASTER, **headers: str
) -> tuple[int, dict[str, str], Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    all_headers = {"content-type": "application/json", **headers}
    if key is not None:
        all_headers["x-goog-api-key"] = key
    request = urllib.request.Request(
        gw.base_url + path, data=data, headers=all_headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return (
                resp.status,
                {k.lower(): v for k, v in resp.headers.items()},
                json.loads(resp.read()),
            )
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


def new_key(gw: Gateway, **fields: Any) -> str:
    status, _, body = call(gw, "POST", "/key/generate", fields)
    assert status == 200, body
    return str(body["key"])


def generate(
    gw: Gateway, key: str, model: str = "demo", **headers: str
) -> tuple[int, dict[str, str], Any]:
    return call(gw, "POST", f"/v1beta/models/{model}:generateContent", BODY, key=key, **headers)


def sdk(gw: Gateway, key: str) -> genai.Client:
    client: genai.Client = genai_client(gw.base_url, key)
    return client


def stop(gw: Gateway | InProcessGateway) -> None:
    """Shut down gracefully (a process: SIGTERM, then uvicorn re-raises the signal)."""
    gw.stop()
    if isinstance(gw, Gateway):
        assert gw.proc.returncode in (0, -signal.SIGTERM), gw.log()[-4000:]
    assert "Traceback" not in gw.log(), gw.log()[-4000:]


def test_management_api(start_gateway: Any, db_url: str) -> None:
    gw = start_gateway(config(db_url))
    status, _, team = call(gw, "POST", "/team/new", {"team_id": "research", "max_budget": 100})
    assert status == 200 and team["team_id"] == "research"
    status, _, key = call(
        gw,
        "POST",
        "/key/generate",
        {
            "key_alias": "ci",
            "models": ["demo"],
            "team_id": "research",
            "rpm_limit": 100,
            "metadata": {"owner": "ci"},
            "duration": "30d",
            "budget_duration": "7d",
            "max_budget": 5.0,
        },
    )
    assert status == 200 and key["key"].startswith("sk-") and key["expires"]
    status, _, info = call(gw, "GET", f"/key/info?key={key['key']}")
    assert status == 200 and info["info"]["key_alias"] == "ci" and "key" not in info["info"]
    status, _, updated = call(gw, "POST", "/key/update", {"key": key["key"], "max_budget": 7.5})
    assert status == 200 and updated["max_budget"] == 7.5
    status, _, listed = call(gw, "GET", "/key/list")
    assert status == 200 and listed["total_count"] == 1
    status, _, customer = call(gw, "POST", "/customer/new", {"user_id": "alice", "max_budget": 1})
    assert status == 200 and customer["user_id"] == "alice"
    status, _, customer = call(gw, "GET", "/customer/info?end_user_id=alice")
    assert status == 200 and customer["max_budget"] == 1
    assert call(gw, "POST", "/customer/update", {"user_id": "alice", "blocked": True})[0] == 200
    assert call(gw, "POST", "/team/update", {"team_id": "research", "rpm_limit": 9})[0] == 200
    assert call(gw, "GET", "/team/info?team_id=research")[2]["team_info"]["rpm_limit"] == 9
    # Bad input: a clear 400 naming the field.
    for body, words in [
        ({"max_budget": -1}, "max_budget"),
        ({"rpm_limit": "5"}, "rpm_limit"),
        ({"models": "demo"}, "models"),
        ({"bogus": 1}, "bogus: unknown field"),
        ({"budget_duration": "soon"}, "budget_duration"),
        ({"team_id": "nope"}, "no team 'nope'"),
        (b"{not json", "Invalid JSON"),
    ]:
        status, _, error = call(gw, "POST", "/key/generate", body)
        assert status == 400 and error["error"]["status"] == "INVALID_ARGUMENT", body
        assert words in error["error"]["message"]
    assert call(gw, "POST", "/team/new", {"team_id": "research"})[0] == 400
    assert call(gw, "GET", "/key/info?key=sk-unknown")[0] == 404
    # Only the master key may manage.
    status, _, error = call(gw, "GET", "/key/list", key=key["key"])
    assert status == 403 and error["error"]["status"] == "PERMISSION_DENIED"
    assert call(gw, "GET", "/key/list", key=None)[0] == 403
    assert call(gw, "GET", "/key/list", key="sk-wrong")[0] == 401
    # Deleting takes effect at once.
    assert generate(gw, key["key"])[0] == 200
    status, _, deleted = call(gw, "POST", "/key/delete", {"keys": [key["key"]]})
    assert status == 200 and len(deleted["deleted_keys"]) == 1
    assert generate(gw, key["key"])[0] == 401
    assert call(gw, "POST", "/team/delete", {"team_ids": ["research"]})[0] == 200
    assert call(gw, "POST", "/customer/delete", {"user_ids": ["alice"]})[0] == 200
    stop(gw)


def test_virtual_keys_with_the_official_client(start_gateway: Any, tmp_path: Path) -> None:
    cfg = config(f"sqlite:///{tmp_path / 'shared.db'}")
    gw, twin = start_gateway(cfg), start_gateway(cfg)  # two instances, one database
    key = new_key(gw, models=["demo"], rpm_limit=1000, key_alias="sdk")
    client = sdk(gw, key)
    response = client.models.generate_content(model="demo", contents="hello there")
    assert "hello there" in (response.text or "")
    chunks = list(client.models.generate_content_stream(model="demo", contents="hello there"))
    assert chunks and chunks[-1].usage_metadata is not None
    with pytest.raises(genai_errors.ClientError) as err:
        client.models.generate_content(model="other", contents="hi")
    assert err.value.code == 403 and "may not use model" in str(err.value)
    stranger = sdk(gw, "sk-not-a-key")
    with pytest.raises(genai_errors.ClientError) as err:
        stranger.models.generate_content(model="demo", contents="hi")
    assert err.value.code == 401
    status, headers, _ = generate(gw, key, **{"x-genroute-end-user": "carol"})
    assert status == 200 and float(headers["x-genroute-response-cost"]) == pytest.approx(CALL_COST)
    # The twin instance sees a change within its key_cache_ttl (0.5 s), no restart.
    assert generate(twin, key)[0] == 200
    call(gw, "POST", "/key/update", {"key": key, "blocked": True})
    assert generate(twin, key)[0] == 200  # still cached
    advance_key_cache(twin, 0.6)
    assert generate(twin, key)[0] == 403
    # Rate limits: 429 with RetryInfo and Retry-After.
    freeze_limits(gw)
    limited = new_key(gw, rpm_limit=2)
    codes = [generate(gw, limited) for _ in range(3)]
    assert [c[0] for c in codes] == [200, 200, 429]
    error = codes[2][2]["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and "rpm_limit is 2" in error["message"]
    assert any(d["@type"].endswith("google.rpc.RetryInfo") for d in error["details"])
    assert int(codes[2][1]["retry-after"]) >= 1
    # An end-user budget, via the header.
    call(gw, "POST", "/customer/new", {"user_id": "dave", "max_budget": CALL_COST})
    assert generate(gw, MASTER, **{"x-genroute-end-user": "dave"})[0] == 200
    status, _, error = generate(gw, MASTER, **{"x-genroute-end-user": "dave"})
    assert status == 429 and "Budget exceeded for end user 'dave'" in error["error"]["message"]
    stop(gw)
    stop(twin)


async def _load(
    gw: Gateway, keys: list[str], n: int, stop_after: int | None = None
) -> dict[str, int]:
    """n requests at once across keys and 5 end users; request id → status (0: no answer)."""
    outcome: dict[str, int] = {}
    answered = asyncio.Event()

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        rid = f"load-{i:04d}"
        stream = i % 4 == 0
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        headers = {
            "x-goog-api-key": keys[i % len(keys)],
            "x-genroute-end-user": f"user-{i % 5}",
            "x-request-id": rid,
        }
        try:
            async with session.post(
                f"{gw.base_url}/v1beta/models/demo:{action}", json=BODY, headers=headers
            ) as resp:
                await resp.read()
                outcome[rid] = resp.status
        except aiohttp.ClientError:
            outcome[rid] = 0
        if stop_after is not None and len(outcome) >= stop_after:
            answered.set()

    async def terminate() -> None:
        await answered.wait()
        gw.proc.send_signal(signal.SIGTERM)

    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector) as session:
        killer = asyncio.create_task(terminate()) if stop_after is not None else None
        await asyncio.gather(*(one(session, i) for i in range(n)))
        if killer is not None:
            await killer
    return outcome


def _ledger(gw: Gateway, keys: list[str]) -> tuple[list[dict[str, Any]], float, float]:
    status, _, logs = call(gw, "GET", "/spend/logs?limit=10000")
    assert status == 200
    by_key = sum(call(gw, "GET", f"/key/info?key={k}")[2]["info"]["spend"] for k in keys)
    by_user = sum(
        call(gw, "GET", f"/customer/info?end_user_id=user-{u}")[2]["spend"] for u in range(5)
    )
    return logs, by_key, by_user


async def test_200_concurrent_calls_then_restart(start_gateway: Any, db_url: str) -> None:
    cfg = config(db_url)
    gw = start_gateway(cfg)
    keys = [new_key(gw, key_alias=f"load-{i}") for i in range(3)]
    outcome = await _load(gw, keys, 200)
    assert list(outcome.values()) == [200] * 200
    stop(gw)  # SIGTERM: the ledger is flushed on the way out
    again = start_gateway(cfg)
    logs, by_key, by_user = _ledger(again, keys)
    assert sorted(row["request_id"] for row in logs) == sorted(outcome)
    total = sum(row["cost"] for row in logs)
    assert total == pytest.approx(200 * CALL_COST)
    assert by_key == pytest.approx(total) and by_user == pytest.approx(total)
    assert sum(row["stream"] for row in logs) == 50
    status, _, report = call(again, "GET", "/global/spend/report?group_by=key")
    assert status == 200 and sum(r["spend"] for r in report) == pytest.approx(total)
    assert all(generate(again, k)[0] == 200 for k in keys)  # every key survived
    stop(again)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_sigterm_during_load_loses_nothing(start_gateway: Any, db_url: str) -> None:
    """A real `genroute serve` process stopped by SIGTERM while 300 calls are in flight,
    on PostgreSQL only: what the signal adds is the process's, not the backend's (each
    backend's ledger flush at shutdown: test_200_concurrent_calls_then_restart)."""
    cfg = config(db_url)
    gw = start_gateway(cfg, process=True)
    keys = [new_key(gw, key_alias=f"term-{i}") for i in range(3)]
    outcome = await _load(gw, keys, 300, stop_after=60)
    gw.proc.wait(20)
    assert gw.proc.returncode in (0, -signal.SIGTERM), gw.log()
    assert "Traceback" not in gw.log(), gw.log()
    served = {rid for rid, status in outcome.items() if status == 200}
    print(f"SIGTERM after 60 answers: {len(served)} of {len(outcome)} served")
    assert len(served) >= 60
    again = start_gateway(cfg)
    logs, by_key, by_user = _ledger(again, keys)
    logged = {row["request_id"] for row in logs}
    assert served <= logged  # every answered call is in the ledger
    total = sum(row["cost"] for row in logs)
    assert by_key == pytest.approx(total) and by_user == pytest.approx(total)
    stop(again)


def test_limits_and_changes_across_instances_with_redis(
    start_gateway: Any, tmp_path: Path, redis_url: str
) -> None:
    cfg = config(f"sqlite:///{tmp_path / 'shared.db'}")
    cfg["general_settings"].update({"redis_url": redis_url, "key_cache_ttl": 60})
    gw, twin = start_gateway(cfg), start_gateway(cfg)
    freeze_limits(gw, twin)
    key = new_key(gw, rpm_limit=4)
    codes = [generate(g, key)[0] for g in (gw, twin) * 4]
    assert sorted(codes) == [200] * 4 + [429] * 4  # one limit shared by both instances
    other = new_key(gw)
    assert generate(twin, other)[0] == 200  # cached on the twin for 60 s...
    assert call(gw, "POST", "/key/update", {"key": other, "blocked": True})[0] == 200
    eventually(lambda: generate(twin, other)[0] == 403)  # ...but the change is published
    stop(gw)
    stop(twin)
