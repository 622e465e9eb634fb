"""A fake AWS Bedrock Runtime (bedrock-runtime.{region}.amazonaws.com) for the genroute tests.

``FakeBedrock`` runs a real aiohttp server on 127.0.0.1 (free port) in a background thread
with its own loop, and answers the Converse API as Bedrock does:

* ``POST /model/{modelId}/converse``: a ConverseResponse as JSON;
* ``POST /model/{modelId}/converse-stream``: AWS's binary event stream
  (``application/vnd.amazon.eventstream``: messageStart, contentBlockStart/Delta/Stop,
  messageStop, metadata; each payload padded with ``p`` like the real service), written in
  pieces of ``chunk`` bytes (any split point);
* ``POST /model/{modelId}/count-tokens``: ``{"inputTokens": n}``.

Like AWS it recomputes the SigV4 signature of every request (botocore's signer over the
raw path, the signed headers and the body) and refuses a wrong one, an unknown access key,
a wrong region or service, a missing session token or a stale date with a 403, AWS's error
JSON ``{"message": ...}`` and ``x-amzn-ErrorType``. It validates every body against
botocore's service model for bedrock-runtime (``shape_problems``: types, required and
unknown members, unions, enums, lengths, ranges, patterns, base64 blobs) and checks the
Converse rules the real service checks (``rule_problems``): the first message from the
user, roles alternating, no empty content or blank text, toolUse only from the assistant
and answered by toolResult blocks with the same ids in the next user message, toolConfig
present whenever the conversation holds tool blocks, toolChoice naming a declared tool,
unique toolUse ids and document names; and Claude's own rules (thinking budget, sampling
with thinking, the reasoning block that must open the assistant turn being answered,
signatures made by this fake, no trailing whitespace in a final assistant turn). Problems
are a 400 ValidationException.

Prompt caching works as Bedrock's (tests/fakes/prompt_caches.py): ``cachePoint`` blocks in
``toolConfig.tools``, ``system`` and message contents, at most 4, only on the models that
support it (not in a Nova model's tools); the prefix up to each checkpoint is cached once it
reaches the model's minimum, and a later request with the same prefix reports it as
``cacheReadInputTokens``, the first as ``cacheWriteInputTokens``. ``fake.prompt_cache``
holds the cached prefixes.

    with FakeBedrock() as fake:                       # credentials: fake.key_id / fake.secret
        fake.script("reply", content=[reasoning("plan"), tool_use("f", {"x": 1})])
        fake.script("error", type="ThrottlingException", status=429)
        fake.script("stream_error", after=3, type="throttlingException")

Without a script the reply is deterministic: a reasoning block when thinking is on, then
the JSON of outputConfig's schema, or a call of the forced tool, or a summary of the tool
results just received, or ``"Echo: <last user text>"``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import botocore.session
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.prompt_caches import BedrockPromptCache, cache_point_problems
from tests.fakes.sockets import tcp_listener

KEY_ID = "AKIDFAKEBEDROCK00001"
SECRET = "fake/bedrock/secret+key"
REGION = "us-east-1"
SERVICE = "bedrock"
_SIGNING = b"fake-bedrock-reasoning-key"
_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")
_INPUT = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "count-tokens": "CountTokens",
}
_STATUS = {"ValidationException": 400, "AccessDeniedException": 403,
           "UnrecognizedClientException": 403, "InvalidSignatureException": 403,
           "ResourceNotFoundException": 404, "ModelTimeoutException": 408,
           "ThrottlingException": 429, "ModelNotReadyException": 429,
           "InternalServerException": 500, "ServiceUnavailableException": 503,
           "ModelErrorException": 424}  # fmt: skip

# ----------------------------------------------------------------- the service model


def input_shape(operation: str) -> Any:
    """The botocore input shape of a bedrock-runtime operation (Converse, ...)."""
    return _MODEL.operation_model(operation).input_shape


def output_shape(operation: str) -> Any:
    return _MODEL.operation_model(operation).output_shape


def shape_problems(value: Any, shape: Any, path: str = "body") -> list[str]:
    """What botocore's service model says is wrong with a JSON value of `shape`."""
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and meta.get("document"):
        return []  # any JSON
    if kind == "structure":
        return _structure_problems(value, shape, path)
    if kind in ("list", "map"):
        return _collection_problems(value, shape, path)
    return _scalar_problems(value, shape, path)


def _structure_problems(value: Any, shape: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected an object"]
    problems = [f"{path}.{k}: unknown member" for k in value if k not in shape.members]
    if shape.metadata.get("union") and len([k for k in value if value[k] is not None]) != 1:
        problems.append(f"{path}: a union must set exactly one member, not {sorted(value)}")
    missing = [k for k in shape.required_members if k not in value and k != "modelId"]
    problems += [f"{path}.{k}: required" for k in missing]
    for key, item in value.items():
        if key in shape.members:
            problems += shape_problems(item, shape.members[key], f"{path}.{key}")
    return problems


def _collection_problems(value: Any, shape: Any, path: str) -> list[str]:
    meta, kind = shape.metadata, shape.type_name
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        items = [(f"{path}.{k}", v) for k, v in value.items()]
        member = shape.value
    else:
        if not isinstance(value, list):
            return [f"{path}: expected an array"]
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        member = shape.member
    problems = []
    if len(items) < meta.get("min", 0) or len(items) > meta.get("max", len(items)):
        problems.append(f"{path}: {len(items)} items, outside {meta.get('min')}..{meta.get('max')}")
    for where, item in items:
        problems += shape_problems(item, member, where)
    return problems


def _scalar_problems(value: Any, shape: Any, path: str) -> list[str]:
    meta, kind = shape.metadata, shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string"]
        if shape.enum and value not in shape.enum:
            return [f"{path}: {value!r} is not one of {shape.enum}"]
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            return [f"{path}: length {len(value)} outside {meta.get('min')}..{meta.get('max')}"]
        pattern = meta.get("pattern")
        if pattern and len(pattern) < 80 and not re.fullmatch(pattern, value):
            return [f"{path}: {value!r} does not match {pattern}"]
        return []
    if kind == "blob":
        try:
            raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
        except (binascii.Error, ValueError):
            raw = None
        if raw is None or len(raw) < meta.get("min", 0):
            return [f"{path}: expected standard base64 data"]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    if kind in ("integer", "long", "float", "double"):
        whole = kind in ("integer", "long")
        ok = isinstance(value, int if whole else int | float) and not isinstance(value, bool)
        if not ok:
            return [f"{path}: expected a {'whole ' if whole else ''}number"]
        if not meta.get("min", value) <= value <= meta.get("max", value):
            return [f"{path}: {value} outside {meta.get('min')}..{meta.get('max')}"]
    return []


# ------------------------------------------------------------------ reasoning signatures


def sign(text: str) -> str:
    """The signature this fake gives (and demands back for) a reasoning text."""
    return base64.b64encode(hmac.new(_SIGNING, text.encode(), "sha256").digest()).decode()


def reasoning(text: str) -> dict[str, Any]:
    """A reasoningContent block with a valid signature."""
    return {"reasoningContent": {"reasoningText": {"text": text, "signature": sign(text)}}}


def redacted(seed: str = "r") -> dict[str, Any]:
    """A redacted reasoning block whose opaque bytes this fake accepts back."""
    nonce = hashlib.sha256(seed.encode()).digest()[:12]
    data = nonce + hmac.new(_SIGNING, nonce, "sha256").digest()[:16]
    return {"reasoningContent": {"redactedContent": base64.b64encode(data).decode()}}


def _redacted_ok(data: str) -> bool:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    mac = hmac.new(_SIGNING, raw[:12], "sha256").digest()[:16]
    return len(raw) == 28 and hmac.compare_digest(raw[12:], mac)


def text(value: str) -> dict[str, Any]:
    return {"text": value}


_TOOL_IDS = itertools.count(1)


def tool_use(name: str, arguments: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    tool_id = id or f"tooluse_{next(_TOOL_IDS):04d}"
    return {"toolUse": {"toolUseId": tool_id, "name": name, "input": arguments}}


# ------------------------------------------------------------------------ Converse rules


def _kind(block: dict[str, Any]) -> str:
    return next(iter(block))


def rule_problems(body: dict[str, Any], model: str = "anthropic.claude") -> list[str]:
    """The rules Bedrock enforces that the service model cannot express."""
    messages = body.get("messages") or []
    return _turn_problems(body, messages) + _claude_problems(body, messages, model)


def _turn_problems(body: dict[str, Any], messages: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    if messages and messages[0]["role"] != "user":
        problems.append("A conversation must start with a user message.")
    for i, message in enumerate(messages):
        role, blocks = message["role"], message["content"]
        if i and role == messages[i - 1]["role"]:
            problems.append("A conversation must alternate between user and assistant roles.")
        if role not in ("user", "assistant"):
            problems.append(f"messages.{i}.role: {role!r} is not allowed in messages")
        if not blocks:
            problems.append(f"The content field in the Message object at messages.{i} is empty.")
        for j, block in enumerate(blocks):
            problems += _block_problems(block, f"messages.{i}.content.{j}", role)
        problems += _pairing_problems(messages, i)
    blocks = [b for m in messages for b in m["content"]]
    ids = [b["toolUse"]["toolUseId"] for b in blocks if _kind(b) == "toolUse"]
    if len(ids) != len(set(ids)):
        problems.append("messages: toolUse ids must be unique")
    names = [b["document"]["name"] for b in blocks if _kind(b) == "document"]
    if len(names) != len(set(names)):
        problems.append("document names must be unique within a request")
    tool_blocks = any(_kind(b) in ("toolUse", "toolResult") for b in blocks)
    if tool_blocks and not body.get("toolConfig"):
        problems.append(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    return problems + _tool_config_problems(body)


def _block_problems(block: dict[str, Any], where: str, role: str) -> list[str]:
    kind = _kind(block)
    if kind == "text" and not block["text"].strip():
        return [f"The text field in the ContentBlock object at {where} is blank."]
    if kind in ("toolUse", "reasoningContent") and role != "assistant":
        return [f"{where}: {kind} blocks are only allowed from the assistant"]
    if kind == "toolResult" and role != "user":
        return [f"{where}: toolResult blocks are only allowed from the user"]
    name = block["document"]["name"] if kind == "document" else ""
    if name and not re.fullmatch(r"[A-Za-z0-9\-()\[\]]+( [A-Za-z0-9\-()\[\]]+)*", name):
        return [f"{where}.document.name: {name!r} is not allowed"]
    return []


def _pairing_problems(messages: list[dict[str, Any]], i: int) -> list[str]:
    blocks = messages[i]["content"]
    results = [b["toolResult"]["toolUseId"] for b in blocks if _kind(b) == "toolResult"]
    previous = messages[i - 1]["content"] if i else []
    calls = [b["toolUse"]["toolUseId"] for b in previous if _kind(b) == "toolUse"]
    problems = []
    if len(results) > len(calls):
        problems.append(
            f"The number of toolResult blocks at messages.{i}.content exceeds the number of "
            "toolUse blocks of previous turn."
        )
    if calls and sorted(results) != sorted(calls):
        problems.append(
            f"Expected toolResult blocks at messages.{i}.content for the following Ids: "
            + ", ".join(c for c in calls if c not in results)
        )
    leading = list(itertools.takewhile(lambda b: _kind(b) == "toolResult", blocks))
    if len(leading) != len(results):
        problems.append(f"messages.{i}: toolResult blocks must come first in the content")
    return problems


def _tool_config_problems(body: dict[str, Any]) -> list[str]:
    config = body.get("toolConfig") or {}
    names = [t["toolSpec"]["name"] for t in config.get("tools") or [] if "toolSpec" in t]
    problems = []
    if len(names) != len(set(names)):
        problems.append("toolConfig.tools: tool names must be unique")
    chosen = (config.get("toolChoice") or {}).get("tool", {}).get("name")
    if chosen is not None and chosen not in names:
        problems.append(f"toolConfig.toolChoice.tool.name: {chosen!r} is not in toolConfig.tools")
    if (text_format := (body.get("outputConfig") or {}).get("textFormat")) is not None:
        schema = json.loads(text_format["structure"]["jsonSchema"]["schema"])
        if not _closed(schema):
            problems.append("outputConfig.textFormat: objects must set additionalProperties false")
    return problems


def _closed(schema: Any) -> bool:
    if isinstance(schema, list):
        return all(_closed(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        return False
    return all(_closed(v) for k, v in schema.items() if k not in ("enum", "const", "default"))


def thinking_on(body: dict[str, Any]) -> bool:
    extra = body.get("additionalModelRequestFields") or {}
    config = extra.get("reasoning_config") or extra.get("thinking") or {}
    return config.get("type") in ("enabled", "adaptive")


def _claude_problems(body: dict[str, Any], messages: list[dict[str, Any]], model: str) -> list[str]:
    if "claude" not in model:
        return []
    problems: list[str] = []
    for i, message in enumerate(messages):
        for j, block in enumerate(message["content"]):
            problems += _reasoning_problems(block, f"messages.{i}.content.{j}")
    final = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else []
    if final and _kind(final[-1]) == "text" and final[-1]["text"] != final[-1]["text"].rstrip():
        problems.append("final assistant content cannot end with trailing whitespace")
    inference = body.get("inferenceConfig") or {}
    if "temperature" in inference and "topP" in inference and re.search(r"-4-[5-9]", model):
        problems.append("temperature and top_p cannot both be specified for this model.")
    if not thinking_on(body):
        if any(_kind(b) == "reasoningContent" for b in final):
            problems.append(
                "When thinking is disabled, a final assistant message cannot hold reasoning."
            )
        return problems
    extra = body["additionalModelRequestFields"]
    budget = (extra.get("reasoning_config") or {}).get("budget_tokens")
    if budget is not None and not 1024 <= budget < inference.get("maxTokens", budget + 1):
        problems.append("reasoning_config.budget_tokens: must be ≥ 1024 and less than maxTokens")
    if (body.get("toolConfig") or {}).get("toolChoice"):
        problems.append("Thinking may not be enabled when tool_choice forces tool use.")
    if inference.get("temperature", 1) != 1 or "top_k" in extra or inference.get("topP", 1) < 0.95:
        problems.append("temperature, top_k and top_p may not be modified with thinking on")
    last = messages[-1]["content"] if messages else []
    answering = len(messages) >= 2 and any(_kind(b) == "toolResult" for b in last)
    if answering and _kind(messages[-2]["content"][0]) != "reasoningContent":
        problems.append(
            "Expected `thinking` or `redacted_thinking`, but found another block: when "
            "thinking is enabled, a final assistant message must start with a thinking block."
        )
    return problems


def _reasoning_problems(block: dict[str, Any], where: str) -> list[str]:
    if _kind(block) != "reasoningContent":
        return []
    content = block["reasoningContent"]
    if "redactedContent" in content:
        return (
            []
            if _redacted_ok(content["redactedContent"])
            else [f"{where}: invalid redactedContent"]
        )
    text_block = content.get("reasoningText") or {}
    if not hmac.compare_digest(text_block.get("signature", ""), sign(text_block.get("text", ""))):
        return [f"{where}: invalid signature in reasoningText"]
    return []


# ---------------------------------------------------------------------------- SigV4


def signature_problem(
    raw_path: str, headers: dict[str, str], body: bytes, secrets: dict[str, tuple[str, str | None]]
) -> tuple[str, str] | None:
    """(AWS error type, message) when a request's SigV4 signature is not right, else None.
    `headers` lower-cased; `secrets` maps access key ids to (secret, session token)."""
    found = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        headers.get("authorization", ""),
    )
    if found is None:
        return "IncompleteSignatureException", "Authorization header requires a SigV4 signature."
    key_id, day, region, service, signed, signature = found.groups()
    if key_id not in secrets:
        return (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    secret, token = secrets[key_id]
    if token is not None and headers.get("x-amz-security-token") != token:
        return (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if (region, service) != (REGION, SERVICE) or not headers.get("x-amz-date", "").startswith(day):
        return "InvalidSignatureException", f"Credential should be scoped to {REGION}/{SERVICE}."
    stamp = time.mktime(time.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")) - time.timezone
    if abs(stamp - time.time()) > 300:
        return "InvalidSignatureException", "Signature expired."
    names = signed.split(";")
    request = AWSRequest(
        method="POST",
        url=f"http://{headers.get('host', '')}{raw_path}",
        data=body,
        headers={name: headers.get(name, "") for name in names},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(key_id, secret, token), SERVICE, REGION)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if "host" not in names or not hmac.compare_digest(expected, signature):
        return "InvalidSignatureException", (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return None


# ---------------------------------------------------------------------- event stream


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message (string headers only)."""
    encoded = b"".join(
        struct.pack(">B", len(k)) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
        for k, v in headers.items()
    )
    total = 16 + len(encoded) + len(payload)
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps({**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGH"[: 5 + len(event_type)]})
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, body.encode())


def exception_frame(member: str, message: str, **extra: Any) -> bytes:
    headers = {":exception-type": member, ":content-type": "application/json",
               ":message-type": "exception"}  # fmt: skip
    return frame(headers, json.dumps({"message": message, **extra}).encode())


# --------------------------------------------------------------------------- replies


def words(body: dict[str, Any]) -> int:
    """Deterministic input token count: words of every text, 1 per other block, 5 per tool
    (cache checkpoints count nothing)."""
    count = sum(len(block["text"].split()) for block in body.get("system") or [] if "text" in block)
    for message in body.get("messages") or []:
        for block in message["content"]:
            if "cachePoint" not in block:
                count += len(block["text"].split()) if "text" in block else 1
    tools = (body.get("toolConfig") or {}).get("tools") or []
    return max(1, count + 5 * sum("cachePoint" not in tool for tool in tools))


def example(schema: Any) -> Any:
    """A value that satisfies a simple JSON Schema."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if options := schema.get("anyOf") or schema.get("oneOf"):
        return example(options[0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    values = {"string": "example", "integer": 7, "number": 1.5, "boolean": True, "null": None}
    if kind == "array":
        return [example(schema.get("items"))]
    if kind == "object" or "properties" in schema:
        return {k: example(v) for k, v in (schema.get("properties") or {}).items()}
    return values.get(str(kind))


def _result_text(result: dict[str, Any]) -> str:
    pieces = []
    for block in result["content"]:
        kind = _kind(block)
        pieces.append(
            block["text"]
            if kind == "text"
            else json.dumps(block[kind])
            if kind == "json"
            else f"[{kind}]"
        )
    return " ".join(pieces)


def default_content(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The fake's own answer to a request (module docstring)."""
    last = body["messages"][-1]["content"]
    blocks: list[dict[str, Any]] = []
    if thinking_on(body):
        blocks.append(reasoning(f"The last message has {len(last)} blocks; I answer it."))
    text_format = (body.get("outputConfig") or {}).get("textFormat")
    config = body.get("toolConfig") or {}
    choice, tools = (
        config.get("toolChoice") or {},
        [t["toolSpec"] for t in config.get("tools") or [] if "toolSpec" in t],
    )
    if text_format is not None:
        blocks.append(
            text(json.dumps(example(json.loads(text_format["structure"]["jsonSchema"]["schema"]))))
        )
    elif choice and tools:
        name = (choice.get("tool") or {}).get("name")
        tool = next((t for t in tools if t["name"] == name), tools[-1])
        blocks.append(tool_use(tool["name"], example(tool["inputSchema"]["json"])))
    elif results := [b["toolResult"] for b in last if "toolResult" in b]:
        blocks.append(text("Results: " + " | ".join(_result_text(r) for r in results)))
    else:
        said = " ".join(b["text"] for b in last if "text" in b)
        kinds = sorted({_kind(b) for b in last if "text" not in b})
        blocks.append(text("Echo: " + (said or f"[{', '.join(kinds)}]")))
    return blocks


def reply_for(body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
    """A ConverseResponse as Bedrock returns it, with deterministic usage."""
    out = 0
    for block in content:
        kind = _kind(block)
        value = block[kind]
        if kind == "reasoningContent":
            value = (value.get("reasoningText") or {}).get("text", "")
        elif kind == "toolUse":
            value = json.dumps(value["input"])
        out += len(str(value).split())
    usage = {"inputTokens": words(body), "outputTokens": out, "cacheReadInputTokens": 0,
             "cacheWriteInputTokens": 0}  # fmt: skip
    usage["totalTokens"] = usage["inputTokens"] + out
    stop = "tool_use" if any("toolUse" in b for b in content) else "end_turn"
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage,
        "metrics": {"latencyMs": 42},
    }


def _pieces(value: str, count: int = 3) -> list[str]:
    size = max(1, -(-len(value) // count))
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def stream_events(reply: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The ConverseStream events Bedrock sends for a reply (no start for text and
    reasoning blocks, deltas split in three, metadata after messageStop)."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(reply["output"]["message"]["content"]):
        kind, value = _kind(block), block[_kind(block)]
        deltas: list[dict[str, Any]] = []
        if kind == "toolUse":
            start = {"toolUse": {"toolUseId": value["toolUseId"], "name": value["name"]}}
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            deltas = [{"toolUse": {"input": p}} for p in _pieces(json.dumps(value["input"]))]
        elif kind == "text":
            deltas = [{"text": p} for p in _pieces(value)]
        elif kind == "reasoningContent" and "redactedContent" in value:
            deltas = [{"reasoningContent": {"redactedContent": value["redactedContent"]}}]
        elif kind == "reasoningContent":
            said = value["reasoningText"]
            deltas = [{"reasoningContent": {"text": p}} for p in _pieces(said["text"])]
            deltas.append({"reasoningContent": {"signature": said["signature"]}})
        events += [("contentBlockDelta", {"contentBlockIndex": index, "delta": d}) for d in deltas]
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    events.append(("messageStop", {"stopReason": reply["stopReason"]}))
    events.append(("metadata", {"usage": reply["usage"], "metrics": {"latencyMs": 42}}))
    return events


__all__ = [
    "KEY_ID", "REGION", "SECRET", "BedrockError", "FakeBedrock", "default_content",
    "event_frame", "exception_frame", "frame", "input_shape", "output_shape", "reasoning",
    "redacted", "reply_for", "rule_problems", "shape_problems", "sign", "signature_problem",
    "stream_events", "text", "thinking_on", "tool_use", "words",
]  # fmt: skip


# ---------------------------------------------------------------------------- server


class BedrockError(Exception):
    """An error answered as AWS does: status, ``x-amzn-ErrorType``, ``{"message"}``."""

    def __init__(self, type: str, message: str, status: int | None = None, headers: Any = None):
        super().__init__(message)
        self.type, self.message = type, message
        self.status = status or _STATUS.get(type, 400 if type.endswith("Exception") else 500)
        self.headers: dict[str, str] = dict(headers or {})


@dataclass
class Recorded:
    """One request as the fake received it (headers lower-cased, body parsed)."""

    path: str
    model: str
    action: str
    headers: dict[str, str]
    body: Any


class FakeBedrock:
    """Fake Bedrock Runtime on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        key_id: str = KEY_ID,
        secret: str = SECRET,
        *,
        token: str | None = None,
        chunk: int | None = None,
    ) -> None:
        self.key_id, self.secret, self.token, self.chunk = key_id, secret, token, chunk
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._scripts: list[tuple[str, dict[str, Any]]] = []
        self.prompt_cache = BedrockPromptCache()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._request_ids = itertools.count(1)

    def __enter__(self) -> FakeBedrock:
        sock = tcp_listener()
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(10)
        except BaseException:
            sock.close()
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._runner = None

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> Recorded:
        with self._lock:
            return self._requests[-1]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self.prompt_cache = BedrockPromptCache()

    def script(self, kind: str, **opts: Any) -> None:
        """Queue `reply` (content, stop_reason, usage), `error` (type, message, status,
        headers) or `stream_error` (after, type: a stream member such as
        throttlingException, message) for the next converse request."""
        if kind not in ("reply", "error", "stream_error"):
            raise ValueError(f"unknown script kind {kind!r}")
        with self._lock:
            self._scripts.append((kind, opts))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        found = re.fullmatch(
            r"/model/([^/]+)/(converse|converse-stream|count-tokens)", request.raw_path
        )
        model = unquote(found[1]) if found else ""
        action = found[2] if found else ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self._requests.append(Recorded(request.raw_path, model, action, headers, body))
        request_id = f"fake-request-{next(self._request_ids):04d}"
        try:
            return await self._dispatch(request, headers, raw, body, model, action, request_id)
        except BedrockError as err:
            hdrs = {
                "x-amzn-RequestId": request_id,
                "x-amzn-ErrorType": f"{err.type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                **err.headers,
            }
            return web.json_response({"message": err.message}, status=err.status, headers=hdrs)

    async def _dispatch(
        self, request: web.Request, headers: dict[str, str], raw: bytes, body: Any,
        model: str, action: str, request_id: str,
    ) -> web.StreamResponse:  # fmt: skip
        if request.method != "POST" or not action:
            raise BedrockError("UnknownOperationException", "Unknown operation", 404)
        secrets = {self.key_id: (self.secret, self.token)}
        if problem := signature_problem(request.raw_path, headers, raw, secrets):
            raise BedrockError(problem[0], problem[1], 403)
        if not isinstance(body, dict):
            raise BedrockError("SerializationException", "the request body is not a JSON object")
        problems = shape_problems(body, input_shape(_INPUT[action]))
        if action == "count-tokens":
            converse = body.get("input", {}).get("converse") or {}
            problems = problems or rule_problems(converse, model)
            if problems := problems or cache_point_problems(converse, model):
                raise BedrockError("ValidationException", "; ".join(problems))
            reply = {"inputTokens": words(converse)}
            return web.json_response(reply, headers={"x-amzn-RequestId": request_id})
        problems = problems or rule_problems(body, model)
        if problems := problems or cache_point_problems(body, model):
            raise BedrockError("ValidationException", "; ".join(problems))
        with self._lock:
            script, opts = self._scripts.pop(0) if self._scripts else ("", {})
        if script == "error":
            kind = opts.get("type", "InternalServerException")
            raise BedrockError(
                kind, opts.get("message", f"fake {kind}"), opts.get("status"), opts.get("headers")
            )
        reply = reply_for(body, opts.get("content") if script == "reply" else default_content(body))
        usage = reply["usage"]
        with self._lock:
            usage.update(self.prompt_cache.usage(self.key_id, model, body, usage["inputTokens"]))
        usage["totalTokens"] = (
            usage["inputTokens"] + usage["cacheReadInputTokens"]
            + usage["cacheWriteInputTokens"] + usage["outputTokens"]
        )  # fmt: skip
        reply["stopReason"] = opts.get("stop_reason", reply["stopReason"])
        reply["usage"].update(opts.get("usage", {}))
        if action == "converse":
            return web.json_response(reply, headers={"x-amzn-RequestId": request_id})
        frames = [event_frame(kind, payload) for kind, payload in stream_events(reply)]
        if script == "stream_error":
            member = opts.get("type", "throttlingException")
            frames = [
                *frames[: opts.get("after", 3)],
                exception_frame(
                    member,
                    opts.get("message", "Too many requests, please wait before trying again."),
                ),
            ]
        return await self._stream(request, b"".join(frames), request_id)

    async def _stream(
        self, request: web.Request, data: bytes, request_id: str
    ) -> web.StreamResponse:
        headers = {
            "content-type": "application/vnd.amazon.eventstream",
            "x-amzn-RequestId": request_id,
        }
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        size = self.chunk or len(data)
        for start in range(0, len(data), size):
            await resp.write(data[start : start + size])
            if self.chunk:
                await asyncio.sleep(0)
        await resp.write_eof()
        return resp
