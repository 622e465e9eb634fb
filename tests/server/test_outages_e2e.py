"""End to end: the gateway while PostgreSQL is cut off (a TCP proxy in front of it).

Virtual keys were a 500 INTERNAL for the whole outage; now a key the instance has seen
keeps working, an unknown key is a 503 UNAVAILABLE with Retry-After, the master key works,
and every answered call reaches the ledger once the database is back.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import InProcessGateway, advance_key_cache, eventually
from tests.dbs import db_url
from tests.fakes.tcp_proxy import TcpProxy

__all__ = ["db_url"]
pytestmark = pytest.mark.e2e

MASTER = "sk-outage-master"
INFO = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "max_output_tokens": 10}
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


def call(
    gw: InProcessGateway, method: str, path: str, body: Any = None, key: str = MASTER
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "x-goog-api-key": key}
    request = urllib.request.Request(gw.base_url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, dict(resp.headers.items()), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


def generate(gw: InProcessGateway, key: str) -> tuple[int, dict[str, str], Any]:
    return call(gw, "POST", "/v1beta/models/demo:generateContent", BODY, key)


@pytest.fixture
def proxied(db_url: str) -> Iterator[tuple[TcpProxy, str]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("the database is cut off on PostgreSQL")
    with TcpProxy(5432) as proxy:
        yield proxy, make_url(db_url).set(port=proxy.port).render_as_string(hide_password=False)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_database_outage_through_http(
    start_gateway: Any, proxied: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    gw = start_gateway(
        {
            "model_list": [
                {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": INFO}
            ],
            "general_settings": {
                "master_key": MASTER,
                "database_url": url,
                "spend_flush_interval": 0.1,
                "database_timeout": 1.0,
                "spend_spool_dir": str(tmp_path / "spool"),
            },
        }
    )
    status, _, created = call(gw, "POST", "/key/generate", {"key_alias": "known"})
    assert status == 200
    key = created["key"]
    assert generate(gw, key)[0] == 200
    proxy.stop()
    advance_key_cache(gw, 3.0)  # past key_cache_ttl: the row cannot be reloaded
    assert generate(gw, key)[0] == 200  # served from the cached row
    assert generate(gw, MASTER)[0] == 200
    status, headers, error = generate(gw, "sk-never-seen")
    assert status == 503, error
    assert error["error"]["status"] == "UNAVAILABLE" and int(headers["retry-after"]) >= 1
    status, _, error = call(gw, "GET", "/key/list")
    assert status == 503 and error["error"]["status"] == "UNAVAILABLE"
    proxy.start()

    def ledgered() -> bool:
        status, _, logs = call(gw, "GET", "/spend/logs")
        return status == 200 and len(logs) == 3

    eventually(ledgered, 15)
    gw.stop()
    assert "Traceback" not in gw.log()
