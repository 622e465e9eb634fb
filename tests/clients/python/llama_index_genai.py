"""llama-index-llms-google-genai (GoogleGenAI) against a genroute gateway: what it learns
from `GET models` (output and context limits), streams it reads chunk by chunk (its
structured stream reads candidates[0].content.parts on every chunk), Vertex mode; see
checks.py and tests/server/test_python_clients_e2e.py for the groups it names."""

from __future__ import annotations

from typing import Any

from checks import args, record_http, run
from google.genai import types
from google.oauth2.credentials import Credentials
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.llms.google_genai import GoogleGenAI
from pydantic import BaseModel

ARGS = args()
URL, KEY = ARGS["url"], ARGS["key"]
record_http()


class Answer(BaseModel):
    city: str
    population: int


def llm(model: str, **options: Any) -> GoogleGenAI:
    return GoogleGenAI(
        model=model, api_key=KEY, http_options=types.HttpOptions(base_url=URL), **options
    )


def metadata() -> dict[str, Any]:
    found = {}
    for model in ("gpt-group", "reasoner", "claude-group"):
        meta = llm(model).metadata
        found[model] = {"num_output": meta.num_output, "context_window": meta.context_window}
    return found


def streams(model: str) -> dict[str, Any]:
    model_llm = llm(model)
    deltas = [c.delta for c in model_llm.stream_complete("li stream")]
    *_, last = model_llm.stream_chat([ChatMessage(role="user", content="li chat")])
    structured = list(
        model_llm.stream_structured_predict(Answer, PromptTemplate("Name a {kind}."), kind="city")
    )
    return {
        "deltas": deltas,
        "chat_text": last.message.content,
        "chat_finish": str(last.raw.get("finish_reason")),
        "chat_tokens": last.additional_kwargs.get("total_tokens"),
        "structured": structured[-1].model_dump() if structured else None,
    }


def thinking() -> dict[str, Any]:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=2048), temperature=0.4
    )
    found = {}
    for model, prompt in (("gemini-2.5-pro", "li wc"), ("reasoner", "li o4")):
        found[model] = llm(model, generation_config=config).complete(prompt).text
    return found


def vertex() -> dict[str, Any]:
    vertex_llm = GoogleGenAI(
        model="claude-group",
        vertexai_config={
            "project": "my-project",
            "location": "us-central1",
            "credentials": Credentials(token=KEY),
        },
        http_options=types.HttpOptions(base_url=URL),
    )
    return {
        "num_output": vertex_llm.metadata.num_output,
        "text": vertex_llm.complete("li vertex").text,
        "stream": [c.delta for c in vertex_llm.stream_complete("li vertex stream")],
    }


run(
    {
        "metadata": metadata,
        "streams_openai": lambda: streams("gpt-group"),
        "streams_anthropic": lambda: streams("claude-group"),
        "thinking": thinking,
        "vertex": vertex,
    }
)
