"""End to end: files, cached contents and batches belong to the team of the key that made
them (or to the key, without a team). Another owner's key gets 404 NOT_FOUND for every use
of them (get, update, delete, download, cancel, a model call or a batch naming them),
exactly as for one that does not exist; lists show only one's own; the master key sees
and may delete all."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from tests.conftest import InProcessGateway, eventually, genai_client
from tests.resources.http import http

pytestmark = pytest.mark.e2e

MASTER = "sk-owners-master"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    config = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {"master_key": MASTER},
        "cached_contents": {"min_tokens": 1},
        "batches": {"poll_interval": 0.05},
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("owners-gateway")))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def keys(gateway: InProcessGateway) -> dict[str, str]:
    for team in ("red", "blue"):
        assert http(gateway, "POST", "/team/new", MASTER, {"team_id": team})[0] == 200
    made = {}
    for name, team in (("red1", "red"), ("red2", "red"), ("blue", "blue"), ("solo", None)):
        fields = {"team_id": team} if team else {}
        made[name] = http(gateway, "POST", "/key/generate", MASTER, fields)[1]["key"]
    made["solo2"] = http(gateway, "POST", "/key/generate", MASTER, {})[1]["key"]
    return made


def not_found(status: int, body: Any, *, naming: str | None = None) -> None:
    assert status == 404, body
    assert body["error"]["status"] == "NOT_FOUND"
    if naming is not None:
        assert naming in body["error"]["message"], body


def refused(attempt: Any) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as caught:
        attempt()
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    return caught.value


def test_another_owners_file_is_not_found_for_every_use(
    gateway: InProcessGateway, keys: dict[str, str]
) -> None:
    red1, red2 = (genai_client(gateway.base_url, keys[k]) for k in ("red1", "red2"))
    blue = genai_client(gateway.base_url, keys["blue"])
    master = genai_client(gateway.base_url, MASTER)
    file = red1.files.upload(
        file=io.BytesIO(b"team red's notes"), config={"mime_type": "text/plain"}
    )
    assert file.name is not None and file.uri is not None
    file_id = file.name.removeprefix("files/")
    assert red2.files.get(name=file.name).size_bytes == file.size_bytes  # the same team

    theirs = refused(lambda: blue.files.get(name=file.name))
    missing = refused(lambda: blue.files.get(name="files/nosuchfile"))
    # Another team's file and a file that does not exist get the same answer.
    assert str(theirs.message).replace(file_id, "x") == str(missing.message).replace(
        "nosuchfile", "x"
    )
    refused(lambda: blue.files.delete(name=file.name))
    not_found(*http(gateway, "GET", f"/v1beta/files/{file_id}:download?alt=media", keys["blue"]))
    part = types.Part.from_uri(file_uri=file.uri, mime_type="text/plain")
    error = refused(lambda: blue.models.generate_content(model="demo", contents=["Read", part]))
    assert "contents[0].parts[1].fileData.fileUri" in str(error.message)
    # A batch of requests from another team's file.
    status, body = http(
        gateway,
        "POST",
        "/v1beta/models/demo:batchGenerateContent",
        keys["blue"],
        {"batch": {"inputConfig": {"fileName": file.name}}},
    )
    not_found(status, body, naming="batch.inputConfig.fileName")
    # A key without a team owns its own files: another such key does not see them.
    solo = genai_client(gateway.base_url, keys["solo"])
    solo_file = solo.files.upload(file=io.BytesIO(b"mine"), config={"mime_type": "text/plain"})
    solo2 = genai_client(gateway.base_url, keys["solo2"])
    refused(lambda: solo2.files.get(name=solo_file.name))

    assert file.name not in [f.name for f in blue.files.list(config={"page_size": 100})]
    assert file.name in [f.name for f in red2.files.list(config={"page_size": 100})]
    everything = [f.name for f in master.files.list(config={"page_size": 100})]
    assert {file.name, solo_file.name} <= set(everything)
    status, data = http(gateway, "GET", f"/v1beta/files/{file_id}:download?alt=media", MASTER)
    assert status == 200 and data == b"team red's notes"
    master.files.delete(name=file.name)
    refused(lambda: red1.files.get(name=file.name))


def test_another_owners_cached_content_is_not_found_for_every_use(
    gateway: InProcessGateway, keys: dict[str, str]
) -> None:
    red = genai_client(gateway.base_url, keys["red1"])
    blue = genai_client(gateway.base_url, keys["blue"])
    master = genai_client(gateway.base_url, MASTER)
    cache = red.caches.create(
        model="demo", config={"contents": ["The red handbook."], "ttl": "600s"}
    )
    assert cache.name is not None
    refused(lambda: blue.caches.get(name=cache.name))
    refused(lambda: blue.caches.update(name=cache.name, config={"ttl": "60s"}))
    refused(lambda: blue.caches.delete(name=cache.name))
    error = refused(
        lambda: blue.models.generate_content(
            model="demo", contents="x", config={"cached_content": cache.name}
        )
    )
    assert str(error.message).startswith("cachedContent: ")
    assert cache.name not in [c.name for c in blue.caches.list()]
    assert cache.name in [c.name for c in master.caches.list(config={"page_size": 100})]
    reply = red.models.generate_content(
        model="demo", contents="Summarise", config={"cached_content": cache.name}
    )
    assert reply.text
    master.caches.delete(name=cache.name)
    refused(lambda: red.caches.get(name=cache.name))


def test_another_owners_batch_is_not_found_for_every_use(
    gateway: InProcessGateway, keys: dict[str, str]
) -> None:
    red = genai_client(gateway.base_url, keys["red1"])
    blue = genai_client(gateway.base_url, keys["blue"])
    master = genai_client(gateway.base_url, MASTER)
    src = [{"contents": [{"role": "user", "parts": [{"text": "red batch"}]}]}]
    job = red.batches.create(model="demo", src=src)
    assert job.name is not None
    refused(lambda: blue.batches.get(name=job.name))
    refused(lambda: blue.batches.cancel(name=job.name))
    refused(lambda: blue.batches.delete(name=job.name))
    assert job.name not in [j.name for j in blue.batches.list()]
    assert job.name in [j.name for j in master.batches.list(config={"page_size": 100})]

    def ended() -> bool:
        return master.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED

    eventually(ended, 20)
    master.batches.delete(name=job.name)
    refused(lambda: red.batches.get(name=job.name))
