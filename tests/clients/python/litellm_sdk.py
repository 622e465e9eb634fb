"""LiteLLM's own SDK pointed at a genroute gateway: `litellm.completion` with its `gemini/`
provider and `api_base` (which calls the version-less `/models/{m}:generateContent`), its
native google_genai interface (which sends `contents` as one object, not a list), and its
management client (`litellm.proxy.client`, `?key=` on /key/info); see checks.py and
tests/server/test_python_clients_e2e.py for the groups it names."""

from __future__ import annotations

import json
import os
from typing import Any

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no fetch of the price list at import

import litellm
from checks import args, record_http, run
from litellm.google_genai import generate_content, generate_content_stream
from litellm.proxy.client import Client

ARGS = args()
URL, KEY, MASTER = ARGS["url"], ARGS["key"], ARGS["master"]
record_http()
HELLO = [{"role": "user", "content": "hello litellm"}]


def completion(model: str, **options: Any) -> dict[str, Any]:
    reply = litellm.completion(model=model, api_base=URL, api_key=KEY, messages=HELLO, **options)
    stream = litellm.completion(
        model=model, api_base=URL, api_key=KEY, messages=HELLO, stream=True, **options
    )
    return {
        "text": reply.choices[0].message.content,
        "usage": reply.usage.total_tokens,
        "stream": "".join(c.choices[0].delta.content or "" for c in stream),
    }


def native(model: str) -> dict[str, Any]:
    one = {"role": "user", "parts": [{"text": "native litellm"}]}  # one object, not a list
    reply = generate_content(model=model, contents=one, api_base=URL, api_key=KEY)
    events = []
    for raw in generate_content_stream(model=model, contents=one, api_base=URL, api_key=KEY):
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        events += [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    return {
        "text": "".join(p.get("text", "") for p in reply.candidates[0]["content"]["parts"]),
        "stream": "".join(
            p.get("text", "") for e in events for p in e["candidates"][0]["content"]["parts"]
        ),
    }


def keys() -> dict[str, Any]:
    client = Client(base_url=URL, api_key=MASTER)
    made = client.keys.generate(key_alias="made-by-litellm", models=["gpt-group"])
    key = made["key"]  # type: ignore[index]
    info = client.keys.info(key)  # GET /key/info?key=<the key looked up>, master as Bearer
    used = litellm.completion(model="gemini/gpt-group", api_base=URL, api_key=key, messages=HELLO)
    refused = None
    try:
        litellm.completion(model="gemini/claude-group", api_base=URL, api_key=key, messages=HELLO)
    except litellm.exceptions.APIError as exc:  # type: ignore[attr-defined]
        refused = exc.status_code
    except Exception as exc:
        refused = getattr(exc, "status_code", repr(exc))
    client.keys.update(key=key, key_alias="renamed-by-litellm")
    listed = client.keys.list()
    renamed = client.keys.info(key)
    deleted = client.keys.delete(keys=[key])  # LiteLLM sends {"keys": [...], "key_aliases": null}
    return {
        "alias": info["info"]["key_alias"],  # type: ignore[index]
        "models": info["info"]["models"],  # type: ignore[index]
        "used": used.choices[0].message.content,
        "refused": refused,
        "renamed": renamed["info"]["key_alias"],  # type: ignore[index]
        "listed": len(listed["keys"]),  # type: ignore[index]
        "deleted": len(deleted["deleted_keys"]),  # type: ignore[index]
    }


run(
    {
        "completion_openai": lambda: completion("gemini/gpt-group"),
        "completion_anthropic": lambda: completion("gemini/claude-group", temperature=0.3),
        # LiteLLM turns reasoning_effort into a thinkingConfig: gemini-* is gpt-4o here.
        "completion_thinking": lambda: completion("gemini/gemini-2.5-pro", reasoning_effort="low"),
        "native_gemini": lambda: native("gemini/gemini-2.5-flash"),
        "native_openai": lambda: native("gemini/gpt-group"),
        "native_anthropic": lambda: native("gemini/claude-group"),
        "keys": keys,
    }
)
