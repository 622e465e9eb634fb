"""End to end: the management API lists every owner's files, cached contents and batches
for the master key (filtered by team or key, paged, a batch with its spend), and the
request log lines and spend-ledger rows name the batch, cached content and files of
each call."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from tests.conftest import InProcessGateway, eventually, genai_client
from tests.fakes.openai_upstream import DEFAULT_KEY as OPENAI_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.resources.http import http as call

pytestmark = pytest.mark.e2e

MASTER = "sk-admin-master"


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    params = {"model": "openai/gpt-4o", "api_key": OPENAI_KEY, "api_base": f"{openai.base_url}/v1"}
    config = {
        "model_list": [{"model_name": "gpt", "params": params}],
        "general_settings": {"master_key": MASTER, "spend_flush_interval": 0.05},
        "cached_contents": {"min_tokens": 1},
        "batches": {"poll_interval": 0.05},
        "observability": {"logs": {"format": "json"}},
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("admin-gateway")))
    yield gw
    gw.stop()


def http(
    gw: InProcessGateway, method: str, path: str, key: str = MASTER, body: Any = None
) -> tuple[int, Any]:
    return call(gw, method, path, key, body)


def ok(gw: InProcessGateway, path: str) -> Any:
    status, body = http(gw, "GET", path)
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def made(gateway: InProcessGateway) -> dict[str, Any]:
    """Keys of two teams, and what each made: a file, a cached content, a batch."""
    for team in ("red", "blue"):
        assert http(gateway, "POST", "/team/new", body={"team_id": team})[0] == 200
    keys = {
        name: http(gateway, "POST", "/key/generate", body={"team_id": team})[1]["key"]
        for name, team in (("red1", "red"), ("red2", "red"), ("blue", "blue"))
    }
    red1, red2, blue = (genai_client(gateway.base_url, keys[k]) for k in ("red1", "red2", "blue"))
    files = {
        "red1": red1.files.upload(file=io.BytesIO(b"red one"), config={"mime_type": "text/plain"}),
        "red2": red2.files.upload(file=io.BytesIO(b"red two"), config={"mime_type": "text/plain"}),
        "blue": blue.files.upload(file=io.BytesIO(b"blue"), config={"mime_type": "text/plain"}),
    }
    cache = red1.caches.create(model="gpt", config={"contents": ["The red handbook."]})
    src = [{"contents": [{"role": "user", "parts": [{"text": f"admin {i}"}]}]} for i in range(3)]
    job = red2.batches.create(model="gpt", src=src)

    def ended() -> bool:
        return red2.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED

    eventually(ended, 20)
    return {"keys": keys, "files": files, "cache": cache, "batch": job, "clients": [red1]}


def test_files_list_shows_every_owner_filtered_and_paged(
    gateway: InProcessGateway, made: dict[str, Any]
) -> None:
    keys, files = made["keys"], made["files"]
    listed = ok(gateway, "/files/list?page_size=100")["files"]
    by_name = {f["name"]: f for f in listed}
    assert {f.name for f in files.values()} <= set(by_name)
    red_file = by_name[files["red1"].name]
    assert red_file["owner"] == "team:red" and red_file["team_id"] == "red"
    assert red_file["key_hash"] == hashlib.sha256(keys["red1"].encode()).hexdigest()
    assert red_file["mimeType"] == "text/plain" and red_file["sizeBytes"] == "7"
    red = {f["name"] for f in ok(gateway, "/files/list?team_id=red&page_size=100")["files"]}
    assert red == {files["red1"].name, files["red2"].name}
    mine = ok(gateway, f"/files/list?key={keys['red2']}&page_size=100")["files"]
    assert [f["name"] for f in mine] == [files["red2"].name]
    first = ok(gateway, "/files/list?team_id=red&page_size=1")
    assert len(first["files"]) == 1 and first["next_page_token"]
    second = ok(
        gateway, f"/files/list?team_id=red&page_size=1&page_token={first['next_page_token']}"
    )
    assert {first["files"][0]["name"], second["files"][0]["name"]} == red
    # Only the master key.
    status, body = http(gateway, "GET", "/files/list", key=keys["red1"])
    assert status == 403 and "master key" in body["error"]["message"]


def test_caches_and_batches_lists(gateway: InProcessGateway, made: dict[str, Any]) -> None:
    keys, cache, job = made["keys"], made["cache"], made["batch"]
    caches = ok(gateway, "/cached_contents/list?team_id=red")["cached_contents"]
    assert [c["name"] for c in caches] == [cache.name]
    assert caches[0]["model"] == "models/gpt" and caches[0]["team_id"] == "red"
    assert ok(gateway, "/cached_contents/list?team_id=blue")["cached_contents"] == []
    batches = ok(gateway, f"/batches/list?key={keys['red2']}")["batches"]
    assert [b["name"] for b in batches] == [job.name]
    (batch,) = batches
    assert batch["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" and batch["team_id"] == "red"
    assert batch["key_hash"] == hashlib.sha256(keys["red2"].encode()).hexdigest()

    def spent() -> bool:
        found = ok(gateway, f"/batches/list?key={keys['red2']}")["batches"][0]["spend"]
        return bool(found["requests"] == 3 and found["spend"] > 0)

    eventually(spent)
    assert ok(gateway, f"/batches/list?key={keys['red1']}")["batches"] == []


def test_ledger_rows_and_log_lines_name_the_resources(
    gateway: InProcessGateway, made: dict[str, Any]
) -> None:
    job, cache, file = made["batch"], made["cache"], made["files"]["red1"]
    red1 = made["clients"][0]
    rows = ok(gateway, f"/spend/logs?batch={job.name}")
    assert len(rows) == 3 and {r["batch"] for r in rows} == {job.name}
    assert {r["team_id"] for r in rows} == {"red"}
    part = types.Part.from_uri(file_uri=str(file.uri), mime_type="text/plain")
    red1.models.generate_content(model="gpt", contents=["Read it", part])
    red1.models.generate_content(model="gpt", contents="Hi", config={"cached_content": cache.name})

    def ledger() -> list[dict[str, Any]]:
        found = ok(gateway, "/spend/logs?order=desc&limit=2")
        return found if len(found) == 2 and found[0]["cached_content"] else []

    eventually(lambda: bool(ledger()))
    with_cache, with_file = ledger()
    assert with_cache["cached_content"] == cache.name and with_cache["files"] is None
    assert with_file["files"] == file.name and with_file["cached_content"] is None

    def logged() -> bool:
        # The request log's writer thread writes its lines apart from the ledger's rows.
        lines = [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]
        calls = [line for line in lines if "request_id" in line]
        return (
            any(line.get("batch") == job.name for line in calls)
            and any(line.get("cached_content") == cache.name for line in calls)
            and any(line.get("files") == [file.name] for line in calls)
        )

    eventually(logged)
