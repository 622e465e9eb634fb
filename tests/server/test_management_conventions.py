"""LiteLLM's management conventions: on management routes `?key=` is the key looked up."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import InProcessGateway

MASTER = "sk-master-conventions"


def request(
    gw: InProcessGateway, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{gw.base_url}{path}", data=data, method=method, headers=headers)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def gw(tmp_path: Path) -> Any:
    gateway = InProcessGateway(
        {
            "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
            "general_settings": {
                "master_key": MASTER,
                "database_url": f"sqlite:///{tmp_path / 'keys.db'}",
            },
        },
        tmp_path,
    )
    yield gateway
    gateway.stop()


@pytest.mark.parametrize(
    "auth",
    [
        {"authorization": f"Bearer {MASTER}"},
        {"x-litellm-api-key": MASTER},
        {"x-goog-api-key": MASTER},
    ],
    ids=["bearer", "x-litellm-api-key", "x-goog-api-key"],
)
def test_key_info_looks_up_the_key_in_the_query(gw: InProcessGateway, auth: dict[str, str]) -> None:
    status, made = request(gw, "POST", "/key/generate", auth, {"key_alias": "looked-up"})
    assert status == 200
    status, info = request(gw, "GET", f"/key/info?key={made['key']}", auth)
    assert status == 200 and info["info"]["key_alias"] == "looked-up"
    # The same with the key's hash, as LiteLLM's UI sends it.
    status, info = request(gw, "GET", f"/key/info?key={made['token']}", auth)
    assert status == 200 and info["info"]["key_alias"] == "looked-up"
    # ?key= is never the caller's credential on a management route.
    status, error = request(gw, "GET", f"/key/info?key={MASTER}", {})
    assert status == 403 and error["error"]["status"] == "PERMISSION_DENIED"
    status, _ = request(gw, "GET", f"/spend/logs?key={made['key']}", auth)
    assert status == 200


def test_key_delete_takes_keys_or_key_aliases_as_litellm_does(gw: InProcessGateway) -> None:
    auth = {"authorization": f"Bearer {MASTER}"}
    made = [request(gw, "POST", "/key/generate", auth, {"key_alias": f"a{i}"})[1] for i in (1, 2)]
    # LiteLLM's own client sends both fields, one of them null.
    status, reply = request(
        gw, "POST", "/key/delete", auth, {"keys": [made[0]["key"]], "key_aliases": None}
    )
    assert status == 200 and reply["deleted_keys"] == [made[0]["token"]]
    status, reply = request(gw, "POST", "/key/delete", auth, {"keys": None, "key_aliases": ["a2"]})
    assert status == 200 and reply["deleted_keys"] == [made[1]["token"]]
    status, error = request(gw, "POST", "/key/delete", auth, {"key_aliases": []})
    assert status == 400 and error["error"]["message"].startswith("keys: ")
