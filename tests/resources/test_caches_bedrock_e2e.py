"""End to end with google-genai: a cached content used with a Claude group on AWS Bedrock
reaches Bedrock with `cachePoint` checkpoints after the cached prefix, so the second call
reads Bedrock's prompt cache, reports cachedContentTokenCount and is priced at the
cache-read rate (the fake Bedrock plays the cache and refuses checkpoints as AWS does)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from tests.conftest import InProcessGateway, genai_client
from tests.fakes.bedrock_upstream import KEY_ID, REGION, SECRET, FakeBedrock

pytestmark = pytest.mark.e2e

MASTER = "sk-bedrock-caches-master"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
LONG = "The handbook says: " + "policy " * 1500  # over Gemini's 1024-token minimum
SYSTEM = "You answer from the handbook only."
POINT = {"cachePoint": {"type": "default"}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(fake: FakeBedrock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("bedrock-caches")
    with pytest.MonkeyPatch.context() as env:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            env.delenv(name)
        env.setenv("AWS_CONFIG_FILE", str(tmp / "aws-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "aws-credentials"))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        params = {
            "model": f"bedrock/{SONNET}",
            "aws_access_key_id": KEY_ID,
            "aws_secret_access_key": SECRET,
            "aws_region_name": REGION,
            "api_base": fake.base_url,
        }
        config = {
            "model_list": [{"model_name": "bclaude", "params": params}],
            "general_settings": {"master_key": MASTER},
        }
        gw = InProcessGateway(config, Path(tmp))
        yield gw
        gw.stop()


def checkpoints(body: dict[str, Any]) -> list[str]:
    found = [f"system[{i}]" for i, b in enumerate(body.get("system") or []) if b == POINT]
    for i, message in enumerate(body["messages"]):
        found += [
            f"messages[{i}].content[{j}]" for j, b in enumerate(message["content"]) if b == POINT
        ]
    return found


def test_bedrocks_prompt_cache_keeps_the_cached_prefix(
    gateway: InProcessGateway, fake: FakeBedrock
) -> None:
    client = genai_client(gateway.base_url, MASTER)
    cache = client.caches.create(
        model="bclaude",
        config={
            "contents": [types.Content(role="user", parts=[types.Part(text=LONG)])],
            "system_instruction": SYSTEM,
            "ttl": "600s",
        },
    )
    usages, costs = [], []
    for question in ("What does it say?", "What does the appendix say?"):
        reply = client.models.generate_content(
            model="bclaude", contents=question, config={"cached_content": cache.name}
        )
        assert reply.usage_metadata is not None and reply.sdk_http_response is not None
        usages.append(reply.usage_metadata)
        costs.append(float(reply.sdk_http_response.headers["x-genroute-response-cost"]))
        body = fake.requests[-1].body
        # Checkpoints after the system instruction and the cached contents (merged with the
        # question into one user message), not after the question.
        assert checkpoints(body) == ["system[1]", "messages[0].content[1]"]
        assert body["messages"][0]["content"][-1] == {"text": question}
    first, second = usages
    assert not first.cached_content_token_count  # written to Bedrock's cache...
    cached = second.cached_content_token_count  # ...then read from it
    assert cached and cached > 1500 and second.prompt_token_count == first.prompt_token_count + 1
    # Claude Sonnet 4.5 through a regional (us.) inference profile: $3.30 / M input,
    # $4.125 / M written to the cache, $0.33 / M read from it, $16.50 / M output.
    assert first.prompt_token_count and first.candidates_token_count
    written = first.prompt_token_count - 4
    assert costs[0] == pytest.approx(
        4 * 3.3e-6 + written * 4.125e-6 + first.candidates_token_count * 16.5e-6, rel=0.01
    )
    assert second.prompt_token_count and second.candidates_token_count
    assert costs[1] == pytest.approx(
        (second.prompt_token_count - cached) * 3.3e-6
        + cached * 0.33e-6
        + second.candidates_token_count * 16.5e-6,
        rel=0.01,
    )
