"""Real Python clients, unchanged, through genroute: langchain-google-genai, llama-index's
google-genai LLM, pydantic-ai's GoogleModel and LiteLLM's own SDK, each pointed at the
gateway by its base URL and key only (versions: tests/clients/requirements.txt; setup:
docs/clients.md). Each test runs one client's check script (tests/clients/python/) in
`.venv-clients` and reads its report; the gateway serves `clients.GROUPS` in front of fake
Gemini, OpenAI and Anthropic upstreams that refuse what the real ones refuse.

What each test covers, by the items of issue 10: (1) thinking and sampling settings on
models that do not reason and on reasoning models, (2) `contents` sent as one object,
(3) Vertex AI mode, (4) version-less and tuned-model paths, (5) translated streams shaped
like Gemini's, chunk by chunk, (7) limits read from `GET models`, (8) LiteLLM's management
client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import InProcessGateway
from tests.fakes.anthropic_upstream import tool_use
from tests.server.clients import (
    EXPRESS,
    KEY,
    VERTEX,
    Upstreams,
    client_gateway,
    clients_python,
    passed,
    paths,
    run_checks,
    sent,
    upstream_bodies,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[InProcessGateway, Upstreams]]:
    with client_gateway(tmp_path_factory.mktemp("python-clients")) as pair:
        yield pair


@pytest.fixture
def gw(served: tuple[InProcessGateway, Upstreams]) -> InProcessGateway:
    return served[0]


@pytest.fixture
def fakes(served: tuple[InProcessGateway, Upstreams]) -> Upstreams:
    served[1].reset()
    return served[1]


def run_client(gw: InProcessGateway, script: str, **extra: Any) -> dict[str, Any]:
    python = clients_python()
    return run_checks([str(python), f"python/{script}"], {"url": gw.base_url, "key": KEY, **extra})


def assert_gemini_shaped(chunks: list[dict[str, Any]], text: str) -> None:
    """Every chunk has content with role model and a parts list; the last one ends it."""
    assert chunks and all(c["role"] == "model" and c["parts"] for c in chunks)
    assert "".join(p or "" for c in chunks for p in c["parts"]) == text
    assert chunks[-1]["finish"] == "STOP" and chunks[-1]["usage"]
    assert all(c["finish"] is None for c in chunks[:-1])


def assert_no_effort_on_gpt4o(fakes: Upstreams, marker: str, temperature: float) -> None:
    """(1) gemini-* is gpt-4o: sampling settings pass, a thinking config does not."""
    bodies = upstream_bodies(fakes.openai, marker)
    assert bodies, f"no upstream request said {marker!r}"
    for body in bodies:
        assert body["model"] == "gpt-4o" and "reasoning_effort" not in body
        assert body["temperature"] == temperature


def assert_reasoner_bodies(fakes: Upstreams, marker: str) -> None:
    """(1) o4-mini gets an effort and no sampling settings (it refuses them)."""
    bodies = upstream_bodies(fakes.openai, marker)
    assert bodies, f"no upstream request said {marker!r}"
    for body in bodies:
        assert body["model"] == "o4-mini" and body["reasoning_effort"] in ("low", "medium")
        assert "temperature" not in body and "top_p" not in body


def test_langchain_google_genai(gw: InProcessGateway, fakes: Upstreams) -> None:
    report = run_client(gw, "langchain_genai.py")
    wildcard = passed(report, "wildcard_thinking")
    assert (wildcard["text"], wildcard["stream_text"]) == (
        "Echo: lc wildcard",
        "Echo: stream lc wildcard",
    )
    assert sent(report, "wildcard_thinking")[0]["body"]["generationConfig"]["thinkingConfig"]
    assert_no_effort_on_gpt4o(fakes, "lc wildcard", 0.2)
    assert passed(report, "reasoner_temperature")["stream_text"] == "Echo: stream lc reasoner"
    assert_reasoner_bodies(fakes, "lc reasoner")
    for name, said in (("stream_openai", "lc openai"), ("stream_anthropic", "lc anthropic")):
        found = passed(report, name)
        assert found["stream_text"] == f"Echo: stream {said}" and found["stream_finish"] == "STOP"
        assert found["stream_usage"]["total_tokens"] > 0  # (5) usage on a content chunk
    for name in ("chunks_openai", "chunks_anthropic"):  # (5) google-genai 2.x, chunk by chunk
        assert_gemini_shaped(passed(report, name), "Echo: lc raw chunks")
    loop = passed(report, "tool_loop")
    assert loop["call"] == {"name": "get_weather", "args": {"city": "text"}}
    assert loop["answer"].startswith("Tool results: call_") and "sunny in text" in loop["answer"]
    assert passed(report, "embeddings") == [64, 64]
    # (3) Vertex AI mode: a project and a bearer token, or express mode and an API key.
    assert passed(report, "vertex_project")["stream_text"] == "Echo: stream lc vertex"
    assert paths(report, "vertex_project") == [
        f"POST {VERTEX}/claude-group:generateContent",
        f"POST {VERTEX}/claude-group:streamGenerateContent",
    ]
    assert {(r["auth"], r["credential"]) for r in sent(report, "vertex_project")} == {
        ("Bearer", KEY)
    }
    assert upstream_bodies(fakes.anthropic, "lc vertex")
    assert passed(report, "vertex_express")["text"] == "Echo: lc express"
    assert paths(report, "vertex_express")[0] == f"POST {EXPRESS}/gpt-group:generateContent"
    assert {r["auth"] for r in sent(report, "vertex_express")} == {"x-goog-api-key"}


def test_llama_index_google_genai(gw: InProcessGateway, fakes: Upstreams) -> None:
    report = run_client(gw, "llama_index_genai.py")
    # (7) output limits from GET models (llama-index assumes 256 without one); its context
    # window is input plus output.
    limits = passed(report, "metadata")
    assert limits["gpt-group"] == {"num_output": 16_384, "context_window": 128_000 + 16_384}
    assert limits["reasoner"] == {"num_output": 100_000, "context_window": 200_000 + 100_000}
    assert limits["claude-group"]["num_output"] == 64_000
    assert limits["claude-group"]["context_window"] > 64_000
    # (5) its structured stream reads candidates[0].content.parts on every chunk, and its
    # chat stream reads the finish reason and usage from the last chunk with content.
    for name, structured in (
        ("streams_openai", {"city": "text", "population": 1}),
        ("streams_anthropic", {"city": "example", "population": 7}),
    ):
        found = passed(report, name)
        assert "".join(found["deltas"]) == "Echo: li stream"
        assert found["chat_text"] == "Echo: li chat" and found["chat_finish"] == "FinishReason.STOP"
        assert found["chat_tokens"] == 5 and found["structured"] == structured
    assert passed(report, "thinking") == {
        "gemini-2.5-pro": "Echo: li wc",
        "reasoner": "Echo: li o4",
    }
    assert_no_effort_on_gpt4o(fakes, "li wc", 0.4)
    assert_reasoner_bodies(fakes, "li o4")
    # (3) Vertex mode: the model is described on the publisher path (google-genai reads no
    # limits from a Vertex model, as on Vertex itself), generated on the project's.
    vertex = passed(report, "vertex")
    assert (
        vertex["text"] == "Echo: li vertex"
        and "".join(vertex["stream"]) == "Echo: li vertex stream"
    )
    assert paths(report, "vertex") == [
        f"GET {EXPRESS}/claude-group",
        f"POST {VERTEX}/claude-group:generateContent",
        f"POST {VERTEX}/claude-group:streamGenerateContent",
    ]


def test_pydantic_ai_google(gw: InProcessGateway, fakes: Upstreams) -> None:
    # The first answer of each upstream calls the agent's tool (the loops run first).
    fakes.openai.script("reply", tool_calls=[("weather", {"city": "Paris"})])
    fakes.anthropic.script("reply", content=[tool_use("weather", {"city": "Paris"})])
    report = run_client(gw, "pydantic_ai_google.py")
    openai_loop = passed(report, "tool_loop_openai")
    assert openai_loop["tool_returns"] == ["sunny in Paris"]
    assert (
        openai_loop["output"].startswith("Tool results: ")
        and "sunny in Paris" in openai_loop["output"]
    )
    anthropic_loop = passed(report, "tool_loop_anthropic")
    assert anthropic_loop["tool_returns"] == ["sunny in Paris"]
    assert "sunny in Paris" in anthropic_loop["output"]
    assert passed(report, "wildcard_thinking")["stream"] == "Echo: stream pa wc"
    assert_no_effort_on_gpt4o(fakes, "pa wc", 0.2)
    assert passed(report, "reasoner_settings")["stream"] == "Echo: stream pa o4"
    assert_reasoner_bodies(fakes, "pa o4")
    for name, said in (("stream_openai", "pa openai"), ("stream_anthropic", "pa claude")):
        found = passed(report, name)
        assert (found["output"], found["stream"]) == (f"Echo: {said}", f"Echo: stream {said}")
        assert found["stream_output_tokens"] > 0  # (5) usage on a content chunk
    # Typed output is a forced `final_result` call, answered by both translations.
    assert passed(report, "typed_openai") == {"name": "text", "population": 1}
    assert passed(report, "typed_anthropic") == {"name": "example", "population": 7}
    assert passed(report, "vertex")["stream"] == "Echo: stream pa vx"  # (3)
    assert paths(report, "vertex")[0] == f"POST {VERTEX}/claude-group:generateContent"


def test_litellm_sdk(gw: InProcessGateway, fakes: Upstreams) -> None:
    report = run_client(gw, "litellm_sdk.py", master=KEY)
    # (4) LiteLLM's gemini/ provider with api_base calls version-less paths.
    for name, group in (
        ("completion_openai", "gpt-group"),
        ("completion_anthropic", "claude-group"),
    ):
        assert passed(report, name) == {
            "text": "Echo: hello litellm",
            "usage": 5,
            "stream": "Echo: hello litellm",
        }
        assert paths(report, name) == [
            f"POST /models/{group}:generateContent",
            f"POST /models/{group}:streamGenerateContent",
        ]
    # (1) its reasoning_effort becomes a thinkingConfig; gemini-* is gpt-4o.
    assert passed(report, "completion_thinking")["stream"] == "Echo: hello litellm"
    assert sent(report, "completion_thinking")[0]["body"]["generationConfig"]["thinkingConfig"]
    assert all("reasoning_effort" not in b for b in upstream_bodies(fakes.openai, "hello litellm"))
    # (2) its native google_genai interface sends `contents` as one object.
    for name in ("native_gemini", "native_openai", "native_anthropic"):
        found = passed(report, name)
        assert found["text"].endswith("Echo: native litellm") and found["stream"] == found["text"]
        assert all(isinstance(r["body"]["contents"], dict) for r in sent(report, name))
    # (8) its management client: ?key= on /key/info is the key looked up.
    assert passed(report, "keys") == {
        "alias": "made-by-litellm",
        "models": ["gpt-group"],
        "used": "Echo: hello litellm",
        "refused": 403,
        "renamed": "renamed-by-litellm",
        "listed": 1,
        "deleted": 1,
    }
    info = [r for r in sent(report, "keys") if r["path"] == "/key/info"]
    assert info and all(r["query"].startswith("key=sk-") and r["credential"] == KEY for r in info)
