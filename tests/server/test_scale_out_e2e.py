"""Scale-out, end to end: two genroute instances sharing one PostgreSQL and one Redis.

Keys, rate limits, budgets and cooldowns hold across them; an instance killed with SIGKILL
in the middle of a load loses no spend: every call it answered in full is in the ledger
once the survivor (or its own restart) has replayed the journal it left behind.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Gateway, InProcessGateway, eventually, freeze_limits, refused_port

pytestmark = pytest.mark.e2e

MASTER = "sk-scale-master"
INFO = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "max_output_tokens": 10}
CALL_COST = 2 * 0.001 + 10 * 0.002  # "hello there" → 2 prompt tokens, 10 output tokens
HOLD = 4 * 0.001 + 10 * 0.002  # what a call holds on a budget (see test_budget_reservation)
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
AnyGateway = Gateway | InProcessGateway


def config(database_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": INFO},
            {
                "model_name": "flaky",
                "params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_key": "k",
                    "api_base": f"http://127.0.0.1:{refused_port()}",
                },
            },
        ],
        "router_settings": {
            "redis_url": redis_url,
            "redis_key_prefix": f"genroute-test:{uuid.uuid4().hex}",
            "allowed_fails": 0,
            "cooldown_time": 60,
        },
        "general_settings": {
            "master_key": MASTER,
            "database_url": database_url,
            "spend_flush_interval": 0.2,
            "key_cache_ttl": 60,
        },
    }


def call(
    gw: AnyGateway, method: str, path: str, body: Any = None, key: str = MASTER, **headers: str
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        gw.base_url + path,
        data=data,
        headers={"content-type": "application/json", "x-goog-api-key": key, **headers},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def new_key(gw: AnyGateway, **fields: Any) -> str:
    status, body = call(gw, "POST", "/key/generate", fields)
    assert status == 200, body
    return str(body["key"])


def generate(gw: AnyGateway, key: str, model: str = "demo") -> int:
    return call(gw, "POST", f"/v1beta/models/{model}:generateContent", BODY, key=key)[0]


async def load(
    gateways: list[AnyGateway],
    key: str,
    n: int,
    on_answer: Any = None,
) -> dict[str, int]:
    """n calls at once spread over the gateways (a quarter streamed): request id → status of
    a complete answer (0: no complete answer). `on_answer(gateway, status)` is called as
    each call ends."""
    outcome: dict[str, int] = {}

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        gw = gateways[i % len(gateways)]
        rid = f"scale-{uuid.uuid4().hex[:8]}-{i:04d}"
        action = "streamGenerateContent?alt=sse" if i % 4 == 0 else "generateContent"
        headers = {"x-goog-api-key": key, "x-request-id": rid}
        try:
            async with session.post(
                f"{gw.base_url}/v1beta/models/demo:{action}", json=BODY, headers=headers
            ) as resp:
                await resp.read()
                outcome[rid] = resp.status
        except (TimeoutError, aiohttp.ClientError):
            outcome[rid] = 0
        if on_answer is not None:
            on_answer(gw, outcome[rid])

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(session, i) for i in range(n)))
    return outcome


def ledger(gw: AnyGateway, key: str) -> tuple[list[dict[str, Any]], float]:
    status, logs = call(gw, "GET", f"/spend/logs?api_key={key}&limit=10000")
    assert status == 200, logs
    status, info = call(gw, "GET", f"/key/info?key={key}")
    assert status == 200, info
    return logs, float(info["info"]["spend"])


def test_two_instances_share_keys_limits_budgets_and_cooldowns(
    start_gateway: Any, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    from tests.dbs import _admin

    name = f"genroute_scale_{uuid.uuid4().hex[:10]}"
    _admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
        cfg = config(url, redis_url)
        a, b = start_gateway(cfg), start_gateway(cfg)
        freeze_limits(a, b)
        # Keys: made on one, known on the other; a change reaches it at once (Redis).
        key = new_key(a, key_alias="shared")
        assert generate(b, key) == 200
        # Rate limits: one rpm limit for both.
        limited = new_key(a, rpm_limit=4)
        codes = [generate(gw, limited) for gw in (a, b) * 4]
        assert sorted(codes) == [200] * 4 + [429] * 4
        # Budgets: one budget for both; 50 calls at once split over them.
        budget = 10.5 * CALL_COST
        capped = new_key(b, max_budget=budget)
        outcome = asyncio.run(load([a, b], capped, 50))
        served = sum(s == 200 for s in outcome.values())
        assert set(outcome.values()) <= {200, 429}
        eventually(lambda: len(ledger(a, capped)[0]) == len(outcome))  # refused ones too
        logs, spend = ledger(a, capped)
        assert sum(r["status_code"] == 200 for r in logs) == served
        assert all(r["cost"] == 0 for r in logs if r["status_code"] == 429)
        print(f"two instances, 50 calls at once on a 10.5-call budget: {served} served, "
              f"spend ${spend:.4f} of ${budget:.4f}")  # fmt: skip
        assert 10 <= served <= 11 and spend <= budget + HOLD
        assert spend == pytest.approx(sum(r["cost"] for r in logs))
        # Cooldowns: a deployment that failed on one instance is cooling on the other.
        assert generate(a, MASTER, "flaky") >= 500
        status, health = call(b, "GET", "/health")
        assert status == 200, health
        cooling = [e for e in health.get("unhealthy_endpoints", []) if e["model_group"] == "flaky"]
        assert cooling and cooling[0]["cooling_down"] is True
        # Blocking a key on one instance: refused on the other without waiting for the TTL.
        assert call(a, "POST", "/key/update", {"key": key, "blocked": True})[0] == 200
        eventually(lambda: generate(b, key) == 403)
        a.stop()
        b.stop()
        assert "Traceback" not in a.log() + b.log()
    finally:
        _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("drained_by", ["survivor", "restart"])
def test_sigkill_mid_load_loses_no_spend(
    start_gateway: Any, postgres_url: str, redis_url: str, drained_by: str
) -> None:
    """`genroute serve` killed with SIGKILL after it has answered 40 calls, with more in
    flight: every call it answered in full is in the ledger, once, after the other
    instance adopts the journal it left (`survivor`), or after it is started again alone
    (`restart`)."""
    from tests.dbs import _admin

    name = f"genroute_kill_{uuid.uuid4().hex[:10]}"
    _admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
        cfg = config(url, redis_url)
        cfg["general_settings"]["spend_flush_interval"] = 1.0  # rows wait in the journal
        # Two processes start side by side (each is ~2 s of imports), not one after the other.
        count = 2 if drained_by == "survivor" else 1
        with ThreadPoolExecutor(count) as pool:
            gateways: list[AnyGateway] = list(
                pool.map(lambda _: start_gateway(cfg, process=True), range(count))
            )
        victim = gateways[0]
        key = new_key(victim, key_alias="load")
        answered_by_victim: list[int] = []  # statuses, until it is killed

        def on_answer(gw: AnyGateway, status: int) -> None:
            # Killed once it has answered 40 calls in full (on a loaded machine, a call can
            # also end without an answer before then: not counted).
            if gw is victim and answered_by_victim.count(200) < 40:
                answered_by_victim.append(status)
                if answered_by_victim.count(200) == 40:
                    victim.proc.send_signal(signal.SIGKILL)

        outcome = asyncio.run(load(gateways, key, 300 if len(gateways) == 2 else 150, on_answer))
        assert answered_by_victim.count(200) == 40, f"not killed; answers: {answered_by_victim}"
        victim.proc.wait(10)
        assert victim.proc.returncode == -signal.SIGKILL
        served = {rid for rid, status in outcome.items() if status == 200}
        print(f"SIGKILL after 40 answers: {len(served)} of {len(outcome)} answered in full")
        assert len(served) >= 40, f"before SIGKILL: {answered_by_victim}"
        drainer = gateways[1] if drained_by == "survivor" else start_gateway(cfg, process=True)

        def complete() -> bool:
            logs, _ = ledger(drainer, key)
            return served <= {r["request_id"] for r in logs}

        eventually(complete, 20)
        assert "left by a process that is gone" in drainer.log()
        logs, spend = ledger(drainer, key)
        ids = [r["request_id"] for r in logs]
        assert len(ids) == len(set(ids))  # replayed rows are not written twice
        assert spend == pytest.approx(sum(r["cost"] for r in logs))
        assert spend >= len(served) * CALL_COST - 1e-9
        drainer.stop()
    finally:
        _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
