"""@google/genai, the official JS SDK (pinned in tests/clients/package.json), unchanged,
through genroute: the Gemini API mode as a new user points it (`httpOptions.baseUrl` and
the key), and `vertexai: true` with a project and an OAuth bearer token or in express mode
with an API key; generate, stream, countTokens, embeddings, model descriptions and a tuned
model. One node process runs every check (tests/clients/genai_checks.mjs, ~0.5 s); the
gateway serves `clients.GROUPS` in front of fake Gemini, OpenAI and Anthropic upstreams.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.server.clients import (
    EXPRESS,
    KEY,
    VERTEX,
    Upstreams,
    client_gateway,
    node_client,
    passed,
    paths,
    run_checks,
    sent,
    upstream_bodies,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Upstreams]]:
    node = node_client("@google/genai")
    with client_gateway(tmp_path_factory.mktemp("genai-js")) as (gw, fakes):
        yield run_checks([node, "genai_checks.mjs"], {"url": gw.base_url, "key": KEY}), fakes


def assert_everything(found: dict[str, Any], tokens: int) -> None:
    """generate, a stream shaped like Gemini's chunk by chunk, countTokens, embeddings."""
    assert found["text"] == "Echo: hello js" and found["usage"]["totalTokenCount"] == 5
    chunks = found["stream"]
    assert all(c["role"] == "model" and c["parts"] for c in chunks)
    assert "".join(p for c in chunks for p in c["parts"]) == "Echo: stream js"
    assert chunks[-1]["finishReason"] == "STOP" and chunks[-1]["usage"]["totalTokenCount"] == 5
    assert found["totalTokens"] == tokens and found["vectors"] == [64, 64]


def test_gemini_api_mode(report: tuple[dict[str, Any], Upstreams]) -> None:
    results, _ = report
    assert_everything(passed(results, "gemini_api"), tokens=9)  # OpenAI: a local estimate
    assert paths(results, "gemini_api") == [
        "POST /v1/models/gpt-group:generateContent",
        "POST /v1/models/gpt-group:streamGenerateContent",
        "POST /v1/models/gpt-group:countTokens",
        "POST /v1/models/embedder:batchEmbedContents",
    ]
    assert {(r["auth"], r["credential"]) for r in sent(results, "gemini_api")} == {
        ("x-goog-api-key", KEY)
    }
    chunks = passed(results, "gemini_api_anthropic_stream")  # a stream translated from Claude's
    assert all(c["role"] == "model" and c["parts"] for c in chunks)
    assert chunks[-1]["finishReason"] == "STOP" and chunks[-1]["usage"]


def test_the_readme_says_which_version_the_sdk_calls(
    report: tuple[dict[str, Any], Upstreams],
) -> None:
    results, _ = report
    versions = {r["path"].split("/")[1] for r in sent(results, "gemini_api")}
    readme = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"@google/genai 3\.x for JS call `/(v\w+)/\.\.\.` by default", readme)
    assert said is not None and versions == {said[1]} == {"v1"}


def test_thinking_config_on_a_wildcard_and_a_reasoning_model(
    report: tuple[dict[str, Any], Upstreams],
) -> None:
    results, fakes = report
    assert passed(results, "thinking_on_a_wildcard") == {
        "wildcard": "Echo: js wildcard",
        "reasoner": "Echo: js reasoner",
    }
    (wildcard,) = upstream_bodies(fakes.openai, "js wildcard")
    assert wildcard["model"] == "gpt-4o" and "reasoning_effort" not in wildcard
    assert wildcard["temperature"] == 0.3
    (reasoner,) = upstream_bodies(fakes.openai, "js reasoner")
    assert reasoner["model"] == "o4-mini" and reasoner["reasoning_effort"] == "low"
    assert "temperature" not in reasoner


def test_model_descriptions(report: tuple[dict[str, Any], Upstreams]) -> None:
    found = passed(report[0], "model_descriptions")
    # An embedding model by its model facts, without model_info.
    assert found["embedder"] == {
        "name": "models/embedder",
        "inputTokenLimit": 8191,
        "outputTokenLimit": None,
        "supportedActions": ["embedContent", "batchEmbedContents", "countTokens"],
    }
    assert found["chat"] == {
        "name": "models/gpt-group",
        "inputTokenLimit": 128_000,
        "outputTokenLimit": 16_384,
        "supportedActions": ["generateContent", "streamGenerateContent", "countTokens"],
    }
    assert {"models/gpt-group", "models/claude-group", "models/embedder"} <= set(found["listed"])


def test_tuned_model_path(report: tuple[dict[str, Any], Upstreams]) -> None:
    results, _ = report
    assert passed(results, "tuned_model") == "Echo: tuned js"
    assert paths(results, "tuned_model") == ["POST /v1/tunedModels/my-tune:generateContent"]


def test_vertex_mode_with_a_project_and_a_bearer_token(
    report: tuple[dict[str, Any], Upstreams],
) -> None:
    results, fakes = report
    assert_everything(passed(results, "vertex_project"), tokens=3)  # Claude's count_tokens
    assert paths(results, "vertex_project") == [
        f"POST {VERTEX}/claude-group:generateContent",
        f"POST {VERTEX}/claude-group:streamGenerateContent",
        f"POST {VERTEX}/claude-group:countTokens",
        f"POST {VERTEX}/embedder:predict",
    ]
    assert {(r["auth"], r["credential"]) for r in sent(results, "vertex_project")} == {
        ("Bearer", KEY)
    }
    assert upstream_bodies(fakes.anthropic, "hello js")


def test_vertex_express_mode(report: tuple[dict[str, Any], Upstreams]) -> None:
    results, _ = report
    assert_everything(passed(results, "vertex_express"), tokens=9)
    assert paths(results, "vertex_express") == [
        f"POST {EXPRESS}/gpt-group:generateContent",
        f"POST {EXPRESS}/gpt-group:streamGenerateContent",
        f"POST {EXPRESS}/gpt-group:countTokens",
        f"POST {EXPRESS}/embedder:predict",
    ]
    assert {r["auth"] for r in sent(results, "vertex_express")} == {"x-goog-api-key"}
