"""End to end: a Vertex AI Gemini group that fails falls back to Claude on Bedrock.

google-genai, unchanged, calls genroute (in process), whose `gemini` group is Gemini on the
fake Vertex AI (real OAuth2 from the fake's token endpoint) with a fallback to `claude`, a
cross-region Claude inference profile on the fake Bedrock (requests signed with SigV4,
which the fake recomputes). When Vertex answers a quota error or is overloaded, the call
is answered by Bedrock, as a response and as a stream, and the request log says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import InProcessGateway, eventually, genai_client
from tests.fakes.bedrock_upstream import KEY_ID, REGION, SECRET, FakeBedrock
from tests.fakes.vertex_upstream import FakeVertex
from tests.providers.vertex.mock import GOOGLE_CLOUD_ENV

pytestmark = pytest.mark.e2e

MASTER = "sk-vertex-bedrock-master"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(scope="module")
def vertex() -> Iterator[FakeVertex]:
    with FakeVertex(pause=0.002) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(chunk=1) as upstream:
        yield upstream


@pytest.fixture(scope="module", autouse=True)
def _no_cloud_setup_from_the_shell() -> Iterator[None]:
    """Neither the developer's Google Cloud nor AWS settings change anything here."""
    names = [k for k in os.environ if k.startswith("AWS_") or k in GOOGLE_CLOUD_ENV]
    saved = {k: os.environ.pop(k) for k in names}
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    yield
    del os.environ["AWS_EC2_METADATA_DISABLED"]
    os.environ.update(saved)


@pytest.fixture(scope="module")
def gateway(
    vertex: FakeVertex, bedrock: FakeBedrock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    tmp = tmp_path_factory.mktemp("vertex-bedrock")
    account = tmp / "service-account.json"
    account.write_text(json.dumps(vertex.service_account()))
    config = {
        "model_list": [
            {
                "model_name": "gemini",
                "params": {
                    "model": "vertex_ai/gemini-2.5-flash",
                    "vertex_project": vertex.project,
                    "vertex_location": vertex.location,
                    "vertex_credentials": str(account),
                    "api_base": vertex.base_url,
                },
            },
            {
                "model_name": "claude",
                "params": {
                    "model": f"bedrock/{SONNET}",
                    "aws_access_key_id": KEY_ID,
                    "aws_secret_access_key": SECRET,
                    "aws_region_name": REGION,
                    "api_base": bedrock.base_url,
                },
            },
        ],
        "router_settings": {
            "fallbacks": [{"gemini": ["claude"]}],
            "num_retries": 0,
            "allowed_fails": 1000,  # each case starts with Vertex healthy
        },
        "general_settings": {"master_key": MASTER},
    }
    gw = InProcessGateway(config, tmp)
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _fresh(vertex: FakeVertex, bedrock: FakeBedrock) -> None:
    vertex.reset()
    bedrock.reset()


@pytest.fixture(scope="module")
def sdk(gateway: InProcessGateway) -> Any:
    return genai_client(gateway.base_url, MASTER)


def record_where(gateway: InProcessGateway, **wanted: Any) -> dict[str, Any]:
    """The last request-log line with these values (lines are written off the loop)."""

    def found() -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in gateway.log().splitlines() if x.startswith("{")]
        return [r for r in lines if all(r.get(k) == v for k, v in wanted.items())]

    eventually(lambda: bool(found()))
    return found()[-1]


def test_vertex_gemini_answers_while_it_is_healthy(sdk: Any, vertex: FakeVertex) -> None:
    response = sdk.models.generate_content(model="gemini", contents="hello")
    assert response.text and response.model_version.startswith("gemini-2.5-flash")
    assert [r.action for r in vertex.requests] == ["generateContent"]


@pytest.mark.parametrize("failure", [{"code": 429}, {"code": 503}])
def test_a_failing_vertex_gemini_falls_back_to_bedrock_claude(
    sdk: Any,
    gateway: InProcessGateway,
    vertex: FakeVertex,
    bedrock: FakeBedrock,
    failure: dict[str, int],
) -> None:
    vertex.script("error", **failure)
    response = sdk.models.generate_content(model="gemini", contents="fall back please")
    assert response.text == "Echo: fall back please"
    assert response.model_version == SONNET
    assert [r.action for r in vertex.requests] == ["generateContent"]
    sent = bedrock.last_request
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert MASTER not in json.dumps(dict(sent.headers))  # the gateway's key stays home
    record = record_where(gateway, model_group="claude", fallbacks=["claude"])
    assert (record["provider"], record["status_code"], record["attempts"]) == ("bedrock", 200, 2)


def test_a_stream_falls_back_before_its_first_chunk(
    sdk: Any, vertex: FakeVertex, bedrock: FakeBedrock
) -> None:
    vertex.script("error", code=429)
    chunks = list(sdk.models.generate_content_stream(model="gemini", contents="stream it"))
    assert "".join(c.text or "" for c in chunks) == "Echo: stream it"
    assert chunks[-1].candidates[0].finish_reason == "STOP"
    assert [r.action for r in bedrock.requests] == ["converse-stream"]
