"""The response cache in process: a pipeline over a mock Gemini upstream whose answers a
test scripts (text, finish reason, function calls, errors) and whose embeddings are the
bag of words of `tests.fakes.embeddings`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from genroute.call import Call, Caller, Operation
from genroute.config import config_from_data
from genroute.pipeline import Pipeline, build_pipeline
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from genroute.routing import Router
from genroute.wire import GenerateContentRequest
from tests.fakes.embeddings import bag_of_words
from tests.fakes.mock_http import json_reply, sse_reply

PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
ANSWER = "Paris is the capital of France, and has been for a long time; it is on the Seine."


@dataclass
class Upstream:
    """A Gemini upstream in process: `answer` (text), `finish`, `parts` (instead of the
    text), `status` (an error), `stream_tail` (what a stream sends after its last chunk)
    are what the next calls get; counts what it was asked."""

    answer: str = ANSWER
    finish: str = "STOP"
    parts: list[dict[str, Any]] | None = None
    status: int = 200
    embed_status: int = 200
    stream_tail: list[Any] = field(default_factory=list)  # SSE payloads after the last chunk
    generated: int = 0
    streamed: int = 0
    counted: int = 0
    embedded: list[str] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        parts = self.parts if self.parts is not None else [{"text": self.answer}]
        return {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": self.finish}
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 20,
                "totalTokenCount": 30,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": f"r{self.generated + self.streamed}",
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        action = urlsplit(request.url).path.rsplit(":", 1)[1]
        body = orjson.loads(request.body)
        if action == "embedContent" and self.embed_status != 200:
            error = {"code": self.embed_status, "message": "no", "status": "INTERNAL"}
            return json_reply({"error": error}, self.embed_status)
        if action == "batchEmbedContents":
            texts = [
                " ".join(p.get("text", "") for p in r["content"]["parts"]) for r in body["requests"]
            ]
            self.embedded.extend(texts)
            return json_reply({"embeddings": [{"values": bag_of_words(t)} for t in texts]})
        if action == "countTokens":
            self.counted += 1
            return json_reply({"totalTokens": 7})
        if action == "embedContent":
            text = " ".join(p.get("text", "") for p in body["content"]["parts"])
            self.embedded.append(text)
            return json_reply({"embedding": {"values": bag_of_words(text)}})
        if self.status != 200:
            error = {"code": self.status, "message": "no", "status": "INTERNAL"}
            return json_reply({"error": error}, self.status)
        if action == "streamGenerateContent":
            self.streamed += 1
            whole = self.response()
            text = whole["candidates"][0]["content"]["parts"][0].get("text")
            if text is None:
                return sse_reply([whole])
            words = re.findall(r"\S+\s*", text)
            chunks = []
            for i in range(0, len(words), 4):
                piece = "".join(words[i : i + 4])
                chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}}]}
                chunks.append(chunk)
            last = chunks[-1]["candidates"][0]
            last["finishReason"] = self.finish
            chunks[-1]["usageMetadata"] = whole["usageMetadata"]
            return sse_reply([*chunks, *self.stream_tail])
        self.generated += 1
        return json_reply(self.response())


def config(cache_params: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {
                "model_name": "flash",
                "params": {"model": "gemini/gemini-2.5-flash", "api_key": "k"},
                "model_info": PRICES,
            },
            {
                "model_name": "embedder",
                "params": {"model": "gemini/text-embedding-004", "api_key": "k"},
                "model_info": {"input_cost_per_token": 0.0001},
            },
        ],
        "litellm_settings": {"cache": True, "cache_params": cache_params or {}, **settings},
    }


def pipeline(upstream: Upstream, cache_params: dict[str, Any] | None = None) -> Pipeline:
    cfg = config_from_data(config(cache_params))
    router = Router(config=cfg, transport=MockTransport(upstream))
    return build_pipeline(cfg, router=router, server=False)


def request(text: str = "What is the capital of France?", **fields: Any) -> GenerateContentRequest:
    return GenerateContentRequest.model_validate(
        {"contents": [{"role": "user", "parts": [{"text": text}]}], **fields}
    )


def call(stream: bool = False, team: str | None = None, **fields: Any) -> Call:
    op = Operation.STREAM if stream else Operation.GENERATE
    return Call(op, "flash", Caller(team_id=team, key_hash=f"key-of-{team}"), **fields)
