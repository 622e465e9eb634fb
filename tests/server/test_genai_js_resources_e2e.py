"""@google/genai, the official JS SDK (pinned in tests/clients/package.json), unchanged,
through genroute's resource APIs: `ai.files.upload/get/list/delete` and a generate with the
file's uri, `ai.caches.create/get/list/delete` and a generate with `cachedContent`,
`ai.batches.create/get/list`, each against a Gemini-, an OpenAI- and an Anthropic-backed
group (`clients.GROUPS`). One node process runs every check
(tests/clients/genai_resources.mjs)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.clients import (
    KEY,
    Upstreams,
    client_gateway,
    node_client,
    passed,
    paths,
    run_checks,
    upstream_bodies,
)

pytestmark = pytest.mark.e2e

GROUPS = ["gemini-2.5-flash", "gpt-group", "claude-group"]
CSV = "a,b\n1,2\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Upstreams]]:
    node = node_client("@google/genai")
    with client_gateway(tmp_path_factory.mktemp("genai-js-resources")) as (gw, fakes):
        args = {"url": gw.base_url, "key": KEY, "groups": GROUPS}
        yield run_checks([node, "genai_resources.mjs"], args), fakes


def test_files(report: tuple[dict[str, Any], Upstreams]) -> None:
    results, fakes = report
    found = passed(results, "files")
    file = found["file"]
    assert file["state"] == "ACTIVE" and file["mimeType"] == "text/csv"
    assert file["sizeBytes"] == str(len(CSV)) and file["displayName"] == "numbers"
    digest = hashlib.sha256(CSV.encode()).hexdigest().encode()
    assert file["sha256Hash"] == base64.b64encode(digest).decode()
    assert found["got"] == {"name": file["name"], "sizeBytes": str(len(CSV))}
    assert found["listed"]
    # The file reached every group in the form it takes.
    assert set(found["answers"]) == set(GROUPS) and all(found["answers"].values())
    for fake in (fakes.openai, fakes.anthropic):
        (sent,) = upstream_bodies(fake, "Read the numbers")
        assert json.dumps(CSV)[1:-1] in json.dumps(sent)  # a text file as text
    (sent,) = upstream_bodies(fakes.gemini, "Read the numbers")
    parts = sent["contents"][0]["parts"]
    assert base64.b64decode(parts[0]["inlineData"]["data"]).decode() == CSV  # small: inline
    assert found["afterDelete"]["status"] == 404
    calls = paths(results, "files")
    assert calls[:2] == ["POST /upload/v1/files", "POST /upload/v1/files"]  # start, upload
    assert f"DELETE /v1/{file['name']}" in calls


def test_caches(report: tuple[dict[str, Any], Upstreams]) -> None:
    results, fakes = report
    found = passed(results, "caches")
    for model in GROUPS:
        cache = found[model]
        assert cache["model"] == f"models/{model}" and cache["displayName"] == f"js {model}"
        assert cache["tokens"] >= 1024 and cache["listed"] and cache["text"]
        assert cache["afterDelete"]["status"] == 404
    # Gemini: the cache made on the deployment; Claude: the prefix marked for its cache.
    assert any(r.body.get("cachedContent") for r in fakes.gemini.requests if r.body)
    (marked,) = upstream_bodies(fakes.anthropic, "What does it say?")
    assert "cache_control" in json.dumps(marked)
    assert "POST /v1/cachedContents" in paths(results, "caches")


def test_batches(report: tuple[dict[str, Any], Upstreams]) -> None:
    results, _ = report
    found = passed(results, "batches")
    for model in GROUPS:
        job = found[model]
        assert job["name"].startswith("batches/") and job["displayName"] == f"js {model}"
        assert job["first"] in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING")
        assert job["state"] == "JOB_STATE_SUCCEEDED" and job["listed"]
        assert [t.rsplit("js batch ", 1)[-1] for t in job["texts"]] == ["one", "two"]
    assert f"POST /v1/models/{GROUPS[1]}:batchGenerateContent" in paths(results, "batches")
