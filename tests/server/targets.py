"""The providers of the end-to-end conformance suite (test_conformance_e2e.py).

A `Target` is one provider: a fake upstream that speaks its wire and refuses what the real
API refuses (tests/fakes/), a genroute gateway in this process in front of it serving the
same model names as every other target, and the few things that differ between wires: the
header its key travels in, how to make it answer with function calls, and where its
requests carry the tool calls and their results.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from google import genai

from tests.conftest import InProcessGateway, genai_client
from tests.fakes.anthropic_upstream import FakeAnthropic, text, thinking, tool_use
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import AZURE_KEY, DEFAULT_KEY, FakeOpenAI
from tests.server.conftest import MASTER_KEY

__all__ = [
    "ALIAS",
    "ANTHROPIC_KEY",
    "CHAT",
    "EMBED",
    "GEMINI_KEY",
    "HAIKU",
    "JSON_TOOL",
    "SONNET",
    "TARGETS",
    "THINKING",
    "THOUGHT_SIGNATURE",
    "WRONG_KEY",
    "Seen",
    "Target",
    "ToolTurns",
    "gemini_reply",
]

# The model names every target's gateway serves.
CHAT = "chat"
ALIAS = "gemini-2.5-flash"  # a Gemini name clients send on their own, served by the target
THINKING = "thinking"
EMBED = "embed"
WRONG_KEY = "wrong-key"  # the upstream refuses the key this deployment is configured with
JSON_TOOL = "json-tool"  # Anthropic only: a model without native structured outputs

GEMINI_KEY = "gemini-upstream-key"
ANTHROPIC_KEY = "anthropic-test-key"
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-3-5-haiku-20241022"
THOUGHT_SIGNATURE = base64.b64encode(b"signed by the fake Gemini").decode()

Entry = tuple[str, dict[str, Any], dict[str, Any] | None]  # model_name, params, model_info
Calls = list[tuple[str, dict[str, Any]]]  # (function name, args)


@dataclass(frozen=True)
class Seen:
    """A request as the fake upstream received it, whatever its wire."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class ToolTurns:
    """The function calls of the model turns and the results answering them, as sent."""

    calls: list[tuple[str | None, dict[str, Any]]]  # (call id, args)
    results: list[tuple[str | None, str]]  # (id of the call answered, output)


class Target:
    """One provider under test: its fake upstream and a gateway in front of it."""

    name: ClassVar[str]
    key: ClassVar[str]  # the key the gateway sends upstream
    model: ClassVar[str]  # the upstream model behind `chat`
    generate_path: ClassVar[str]  # where a generateContent on `chat` goes
    signs_thoughts: ClassVar[bool] = False  # a thoughtSignature on the calls it makes

    def __init__(self, upstream: Any, tmp: Path) -> None:
        self.upstream = upstream
        model_list = [
            {"model_name": name, "params": params, **({"model_info": info} if info else {})}
            for name, params, info in self.entries()
        ]
        self.gateway = InProcessGateway(
            {
                "model_list": model_list,
                "router_settings": {"model_group_alias": self.aliases()},
                "general_settings": {"master_key": MASTER_KEY},
            },
            tmp,
        )
        self._clients: dict[str, genai.Client] = {}

    # -- what differs between wires

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def aliases(self) -> dict[str, str]:
        return {}

    def credential(self, headers: dict[str, str]) -> str | None:
        """The key a request carried, from the header this wire takes it in."""
        raise NotImplementedError

    def script_calls(
        self, calls: Calls, thought: str | None, stream: bool, show_thought: bool = True
    ) -> list[str] | None:
        """Make the next answer these calls, after a thought (which an upstream honouring
        includeThoughts itself leaves out when `show_thought` is false). Returns the ids
        the upstream gives the calls, when this target chooses them."""
        raise NotImplementedError

    def tool_turns(self, body: Any) -> ToolTurns:
        raise NotImplementedError

    # -- the same for every wire

    def client(self, version: str = "v1beta") -> genai.Client:
        """google-genai on the gateway with the master key; one per API version, kept
        (a client closes its connections when it is garbage-collected)."""
        if version not in self._clients:
            self._clients[version] = genai_client(self.gateway.base_url, MASTER_KEY, version)
        return self._clients[version]

    def post(self, path: str, body: object) -> tuple[int, dict[str, str], bytes]:
        """A raw POST to the gateway with the master key: status, headers, body."""
        request = urllib.request.Request(
            self.gateway.base_url + path,
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", "x-goog-api-key": MASTER_KEY},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def seen(self) -> Seen:
        """The last request the upstream received."""
        last = self.upstream.last_request
        return Seen(last.path, dict(getattr(last, "query", {})), last.headers, last.body)

    def requests(self) -> list[Any]:
        return list(self.upstream.requests)

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        self.gateway.stop()


def gemini_reply(parts: list[dict[str, Any]], finish: str | None = "STOP") -> dict[str, Any]:
    """A generateContent answer (or stream chunk) with these parts."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": 6, "candidatesTokenCount": 4, "totalTokenCount": 10}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}


def _ids(prefix: str, calls: Calls) -> list[str]:
    return [f"{prefix}{(args.get('city') or name).lower()}" for name, args in calls]


class GeminiTarget(Target):
    """The Gemini API, passed through."""

    name = "gemini"
    key = GEMINI_KEY
    model = "gemini-2.5-flash"
    generate_path = "/v1beta/models/gemini-2.5-flash:generateContent"
    signs_thoughts = True

    def entries(self) -> list[Entry]:
        def params(model: str, key: str = GEMINI_KEY) -> dict[str, Any]:
            return {"model": f"gemini/{model}", "api_key": key, "api_base": self.upstream.base_url}

        flash = params("gemini-2.5-flash")
        return [
            (CHAT, flash, None),
            (ALIAS, flash, None),
            (THINKING, flash, None),
            (EMBED, params("text-embedding-004"), {"mode": "embedding"}),
            (WRONG_KEY, params("gemini-2.5-flash", "not-the-key"), None),
        ]

    def credential(self, headers: dict[str, str]) -> str | None:
        return headers.get("x-goog-api-key")

    def script_calls(
        self, calls: Calls, thought: str | None, stream: bool, show_thought: bool = True
    ) -> list[str] | None:
        ids = _ids("call-", calls)
        parts: list[dict[str, Any]] = []
        if thought and show_thought:
            parts.append({"text": thought, "thought": True})
        for i, ((name, args), ident) in enumerate(zip(calls, ids, strict=True)):
            part: dict[str, Any] = {"functionCall": {"id": ident, "name": name, "args": args}}
            if thought and i == 0:  # Gemini signs the first call of a turn it thought about
                part["thoughtSignature"] = THOUGHT_SIGNATURE
            parts.append(part)
        if stream:
            chunks = [gemini_reply([p], None) for p in parts[:-1]]
            self.upstream.script("reply", chunks=[*chunks, gemini_reply(parts[-1:])])
        else:
            self.upstream.script("reply", body=gemini_reply(parts))
        return ids

    def tool_turns(self, body: Any) -> ToolTurns:
        parts = [p for content in body["contents"] for p in content["parts"]]
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        results = [p["functionResponse"] for p in parts if "functionResponse" in p]
        return ToolTurns(
            [(c.get("id"), c["args"]) for c in calls],
            [(r.get("id"), r["response"]["output"]) for r in results],
        )


class OpenAITarget(Target):
    """OpenAI's Chat Completions."""

    name = "openai"
    key = DEFAULT_KEY
    model = "gpt-4o"
    generate_path = "/v1/chat/completions"

    def entries(self) -> list[Entry]:
        def params(model: str, key: str = DEFAULT_KEY) -> dict[str, Any]:
            base = f"{self.upstream.base_url}/v1"
            return {"model": f"openai/{model}", "api_key": key, "api_base": base}

        return [
            (CHAT, params("gpt-4o"), None),
            (THINKING, params("o4-mini"), None),  # a reasoning model
            (EMBED, params("text-embedding-3-small"), {"mode": "embedding"}),
            (WRONG_KEY, params("gpt-4o", "sk-nope"), None),
        ]

    def aliases(self) -> dict[str, str]:
        return {ALIAS: CHAT}

    def credential(self, headers: dict[str, str]) -> str | None:
        return headers.get("authorization", "").removeprefix("Bearer ") or None

    def script_calls(
        self, calls: Calls, thought: str | None, stream: bool, show_thought: bool = True
    ) -> list[str] | None:
        reasoning = {"reasoning": thought} if thought else {}
        # Streamed, the fragments of the calls' arguments interleave.
        self.upstream.script("reply", tool_calls=calls, interleave=stream, **reasoning)
        return None  # the fake makes its own ids

    def tool_turns(self, body: Any) -> ToolTurns:
        messages = body["messages"]
        calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls", [])]
        return ToolTurns(
            [(c["id"], json.loads(c["function"]["arguments"])) for c in calls],
            [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"],
        )


class AzureTarget(OpenAITarget):
    """Azure OpenAI: deployments in the path, an api-version, the key in `api-key`."""

    name = "azure"
    key = AZURE_KEY
    model = "prod-gpt4o"
    generate_path = "/openai/deployments/prod-gpt4o/chat/completions"

    def entries(self) -> list[Entry]:
        def params(deployment: str, key: str = AZURE_KEY) -> dict[str, Any]:
            base = self.upstream.base_url
            return {
                "model": f"azure/{deployment}",
                "api_key": key,
                "api_base": base,
                "api_version": "2024-10-21",
            }

        return [
            (CHAT, params("prod-gpt4o"), None),
            (THINKING, params("o4-mini"), None),
            (EMBED, params("embed-small"), {"mode": "embedding"}),
            (WRONG_KEY, params("prod-gpt4o", "not-the-key"), None),
        ]

    def credential(self, headers: dict[str, str]) -> str | None:
        assert "authorization" not in headers
        return headers.get("api-key")


class AnthropicTarget(Target):
    """Anthropic's Messages API."""

    name = "anthropic"
    key = ANTHROPIC_KEY
    model = SONNET
    generate_path = "/v1/messages"
    signs_thoughts = True

    def entries(self) -> list[Entry]:
        def params(model: str = SONNET, key: str = ANTHROPIC_KEY) -> dict[str, Any]:
            base = self.upstream.base_url
            return {"model": f"anthropic/{model}", "api_key": key, "api_base": base}

        return [
            (CHAT, params(), None),
            (ALIAS, params(), None),
            (THINKING, params(), None),
            (JSON_TOOL, params(HAIKU), None),
            (WRONG_KEY, params(key="not-the-key"), None),
        ]

    def credential(self, headers: dict[str, str]) -> str | None:
        assert headers["anthropic-version"] == "2023-06-01"
        return headers.get("x-api-key")

    def script_calls(
        self, calls: Calls, thought: str | None, stream: bool, show_thought: bool = True
    ) -> list[str] | None:
        ids = _ids("toolu_", calls)
        content = [thinking(thought)] if thought else [text("Checking.")]
        content += [tool_use(name, args, i) for (name, args), i in zip(calls, ids, strict=True)]
        self.upstream.script("reply", content=content)
        return ids

    def tool_turns(self, body: Any) -> ToolTurns:
        blocks = [
            b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]
        ]
        return ToolTurns(
            [(b["id"], b["input"]) for b in blocks if b["type"] == "tool_use"],
            [(b["tool_use_id"], b["content"]) for b in blocks if b["type"] == "tool_result"],
        )


# Each target's class and fake upstream (whose streams pause 2 ms between writes).
TARGETS: dict[str, tuple[type[Target], Callable[[], Any]]] = {
    "gemini": (GeminiTarget, lambda: FakeGemini(GEMINI_KEY, pause=0.002)),
    "openai": (OpenAITarget, lambda: FakeOpenAI(pause=0.002)),
    # Azure answers a deployment as the model behind it.
    "azure": (AzureTarget, lambda: FakeOpenAI(pause=0.002, azure_models={"prod-gpt4o": "gpt-4o"})),
    "anthropic": (AnthropicTarget, lambda: FakeAnthropic(ANTHROPIC_KEY, split=True)),
}
