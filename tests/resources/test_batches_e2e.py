"""End to end: the Batch API through genroute with google-genai's `client.batches`:
inline requests on an OpenAI group, a JSONL file of requests on a Gemini group (answers
in a file downloaded with `client.files.download`), cancel, delete, ownership, spend under
the submitting key and team, and a batch that survives a restart."""

from __future__ import annotations

import io
import json
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from tests.conftest import InProcessGateway, eventually, genai_client
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import DEFAULT_KEY as OPENAI_KEY
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.e2e

MASTER = "sk-batches-master"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGemini, FakeOpenAI]]:
    gemini = FakeGemini("upstream-key").start()
    with FakeOpenAI() as openai:
        yield gemini, openai
    gemini.stop()


def config(gemini: FakeGemini, openai: FakeOpenAI, **batches: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {
                "model_name": "gem",
                "params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_key": "upstream-key",
                    "api_base": gemini.base_url,
                },
            },
            {
                "model_name": "gpt",
                "params": {
                    "model": "openai/gpt-4o",
                    "api_key": OPENAI_KEY,
                    "api_base": f"{openai.base_url}/v1",
                },
            },
        ],
        "general_settings": {"master_key": MASTER, "spend_flush_interval": 0.05},
        "batches": {"poll_interval": 0.05, **batches},
    }


@pytest.fixture(scope="module")
def gateway(
    fakes: tuple[FakeGemini, FakeOpenAI], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    gw = InProcessGateway(config(*fakes), Path(tmp_path_factory.mktemp("batches-gateway")))
    yield gw
    gw.stop()


def call(gw: InProcessGateway, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        gw.base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": MASTER},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=15) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def keys(gateway: InProcessGateway) -> dict[str, str]:
    for team in ("red", "blue"):
        call(gateway, "POST", "/team/new", {"team_id": team})
    return {
        team: call(gateway, "POST", "/key/generate", {"team_id": team})["key"]
        for team in ("red", "blue")
    }


def ended(client: Any, name: str) -> types.BatchJob:
    found: list[types.BatchJob] = []

    def check() -> bool:
        found.append(client.batches.get(name=name))
        return found[-1].state in (
            types.JobState.JOB_STATE_SUCCEEDED,
            types.JobState.JOB_STATE_CANCELLED,
            types.JobState.JOB_STATE_FAILED,
        )

    eventually(check, 20)
    return found[-1]


def inline(*texts: str) -> list[dict[str, Any]]:
    return [{"contents": [{"role": "user", "parts": [{"text": t}]}]} for t in texts]


def test_inline_requests_on_an_openai_group(
    gateway: InProcessGateway, keys: dict[str, str], fakes: tuple[Any, FakeOpenAI]
) -> None:
    client = genai_client(gateway.base_url, keys["red"])
    job = client.batches.create(
        model="gpt", src=inline("one", "two", "three"), config={"display_name": "nightly"}
    )
    assert job.name is not None and job.name.startswith("batches/")
    assert job.display_name == "nightly" and job.model == "models/gpt"
    assert job.state in (types.JobState.JOB_STATE_PENDING, types.JobState.JOB_STATE_RUNNING)
    done = ended(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time is not None
    assert done.dest is not None and done.dest.inlined_responses is not None
    texts = [r.response.text for r in done.dest.inlined_responses if r.response]
    assert texts == ["Echo: one", "Echo: two", "Echo: three"]
    assert job.name in [j.name for j in client.batches.list()]

    # Each request is a call of the key and team that made the batch, in the ledger.
    def rows() -> list[dict[str, Any]]:
        logs = call(gateway, "GET", "/spend/logs?limit=10000")
        return [r for r in logs if str(r.get("request_id", "")).startswith(f"batch-{job.name[8:]}")]

    eventually(lambda: len(rows()) == 3)
    assert all(r["team_id"] == "red" and r["cost"] > 0 for r in rows())


def test_a_file_of_requests_on_a_gemini_group(
    gateway: InProcessGateway, keys: dict[str, str]
) -> None:
    client = genai_client(gateway.base_url, keys["red"])
    lines = [
        {"key": f"q{i}", "request": {"contents": [{"role": "user", "parts": [{"text": t}]}]}}
        for i, t in enumerate(["alpha", "beta"])
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    source = client.files.upload(file=io.BytesIO(data), config={"mime_type": "application/jsonl"})
    assert source.name is not None
    job = client.batches.create(model="gem", src=source.name)
    assert job.name is not None
    done = ended(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.file_name is not None
    answers = client.files.download(file=done.dest.file_name).decode().splitlines()
    parsed = [json.loads(line) for line in answers]
    assert [p["key"] for p in parsed] == ["q0", "q1"]
    texts = [p["response"]["candidates"][0]["content"]["parts"][-1]["text"] for p in parsed]
    assert texts == ["Echo: alpha", "Echo: beta"]


def test_a_cancel_stops_the_batch(
    gateway: InProcessGateway, keys: dict[str, str], fakes: tuple[Any, FakeOpenAI]
) -> None:
    openai = fakes[1]
    red = genai_client(gateway.base_url, keys["red"])
    texts = [f"cancel-{i}" for i in range(40)]

    def sent() -> list[str]:
        return [t for r in openai.requests for t in texts if f'"{t}"' in json.dumps(r.body)]

    openai.hold()  # the upstream answers nothing until released: the batch is running
    try:
        job = red.batches.create(model="gpt", src=inline(*texts))
        assert job.name is not None
        eventually(lambda: openai.waiting == 4)  # batches.concurrency requests in flight
        assert red.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
        red.batches.cancel(name=job.name)
    finally:
        openai.release()
    done = ended(red, job.name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED and done.end_time is not None
    # The four in flight finished and kept their answers; none was sent after the cancel.
    assert len(sent()) == 4
    assert done.dest is not None and done.dest.inlined_responses is not None
    answers = [r.response.text for r in done.dest.inlined_responses if r.response]
    assert sorted(answers) == sorted(f"Echo: {t}" for t in sent())
    stats = red.batches.get(name=job.name)
    assert stats.state == types.JobState.JOB_STATE_CANCELLED and len(sent()) == 4
    status = call(gateway, "GET", f"/v1beta/{job.name}")["metadata"]["batchStats"]
    assert status == {
        "requestCount": "40",
        "successfulRequestCount": "4",
        "failedRequestCount": "0",
        "pendingRequestCount": "36",
    }
    red.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError):
        red.batches.get(name=job.name)


def test_delete_refusals_and_ownership(gateway: InProcessGateway, keys: dict[str, str]) -> None:
    red = genai_client(gateway.base_url, keys["red"])
    blue = genai_client(gateway.base_url, keys["blue"])
    job = red.batches.create(model="gpt", src=inline(*[f"n{i}" for i in range(40)]))
    assert job.name is not None
    with pytest.raises(errors.ClientError) as caught:
        blue.batches.get(name=job.name)
    assert caught.value.code == 404
    assert job.name not in [j.name for j in blue.batches.list()]
    done = ended(red, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    red.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError):
        red.batches.get(name=job.name)
    with pytest.raises(errors.ClientError) as caught:
        red.batches.create(model="no-such-model", src=inline("x"))
    assert caught.value.code == 404
    bad = {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": 3}}]}}}}
    request = urllib.request.Request(
        f"{gateway.base_url}/v1beta/models/gpt:batchGenerateContent",
        data=json.dumps(bad).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": keys["red"]},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=15)
    message = json.loads(refused.value.read())["error"]["message"]
    assert refused.value.code == 400 and "requests[0].request.contents" in message


def test_a_batch_survives_a_restart_without_running_a_request_twice(
    fakes: tuple[Any, FakeOpenAI], tmp_path: Path
) -> None:
    gemini, openai = fakes
    # The first instance takes the batch but does not run it (batches disabled)...
    first = InProcessGateway(config(gemini, openai, enabled=False), tmp_path)
    try:
        client = genai_client(first.base_url, MASTER)
        job = client.batches.create(model="gpt", src=inline("restart-a", "restart-b", "restart-c"))
        assert job.name is not None
    finally:
        first.stop()
    # ...one request was in flight on an instance that died (its lease long lapsed).
    batch_id = job.name[len("batches/") :]
    db = sqlite3.connect(tmp_path / "genroute.db")
    try:
        with db:
            db.execute(
                "UPDATE genroute_batch_items SET state = 'RUNNING' WHERE batch_id = ? AND idx = 0",
                (batch_id,),
            )
    finally:
        db.close()
    seen = len(openai.requests)
    second = InProcessGateway(config(gemini, openai), tmp_path)
    try:
        client = genai_client(second.base_url, MASTER)
        done = ended(client, job.name)
        assert done.state == types.JobState.JOB_STATE_SUCCEEDED
        assert done.dest is not None and done.dest.inlined_responses is not None
        first_answer, *rest = done.dest.inlined_responses
        assert first_answer.error is not None and "never run twice" in str(first_answer.error)
        assert [r.response.text for r in rest if r.response] == [
            "Echo: restart-b",
            "Echo: restart-c",
        ]
        sent = [json.dumps(r.body) for r in openai.requests[seen:]]
        assert not any("restart-a" in body for body in sent)
    finally:
        second.stop()
