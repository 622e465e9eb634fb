"""Pure translation between Gemini generateContent and OpenAI Chat Completions. No I/O.

`to_wire` builds the `/chat/completions` body from a GenerateContentRequest and lists the
fields it left out because their meaning survives without them (the provider logs them at
debug level); a field whose loss would change the answer raises InvalidRequest naming it,
unless `ChatOptions.drop_params` is set: then it is left out and listed the same way.
Contents → messages is in messages.py; `from_wire` (a chat completion → a
GenerateContentResponse) is in response.py and re-exported here, as is
`embeddings_from_wire`. Every decision is in docs/translation-openai.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.drops import Drops
from genroute.providers.models import closest_effort
from genroute.providers.openai.messages import IdFactory, to_messages
from genroute.providers.openai.response import PROVIDER, Embeddings, embeddings_from_wire, from_wire
from genroute.providers.schema import to_json_schema
from genroute.wire import (
    BatchEmbedContentsRequest,
    FunctionDeclaration,
    GenerateContentRequest,
    GenerationConfig,
    ThinkingConfig,
)

__all__ = [
    "PROVIDER",
    "WRAP_KEY",
    "ChatOptions",
    "ChatRequest",
    "Embeddings",
    "IdFactory",
    "embed_bodies",
    "embeddings_from_wire",
    "from_wire",
    "new_call_id",
    "to_wire",
]

_API = "the OpenAI Chat Completions API"
_DETAIL = {"MEDIA_RESOLUTION_LOW": "low", "MEDIA_RESOLUTION_HIGH": "high"}
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "xhigh"}
_BUILTIN_TOOLS = {
    "google_search": "googleSearch",
    "google_search_retrieval": "googleSearchRetrieval",
    "code_execution": "codeExecution",
    "url_context": "urlContext",
}
_CONSUMED_CONFIG = {"media_resolution", "thinking_config", "response_modalities"}
_SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
OFF = "off"  # thinkingBudget 0
WRAP_KEY = "value"
JSON_HINT = "Reply with a JSON object."


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What the target server accepts (from its CompatServer row and the model_info)."""

    model: str
    max_tokens_field: str = "max_completion_tokens"
    top_k: bool = False
    # False: no reasoning_effort is sent (the model does not reason, or the server
    # refuses the field); a thinkingConfig is then left out and logged.
    reasoning_effort: bool = True
    # The reasoning_effort values the model takes, least first; (): any value is sent.
    effort_values: tuple[str, ...] = ()
    stream_usage: bool = True
    # False for reasoning models that refuse temperature, top_p, penalties and logprobs.
    sampling: bool = True
    renames: Mapping[str, str] = field(default_factory=dict)
    # Leave out fields whose loss changes the answer instead of refusing the request.
    drop_params: bool = False


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The upstream body, the fields left out, and how to read the reply: whether thoughts
    go back to the client, and the key a non-object JSON answer was wrapped in."""

    body: dict[str, Any]
    dropped: tuple[str, ...]
    include_thoughts: bool
    unwrap: str | None = None


def new_call_id() -> str:
    """A tool-call id unique per call, as OpenAI makes them."""
    return f"call_{uuid.uuid4().hex}"


def to_wire(
    request: GenerateContentRequest,
    options: ChatOptions,
    *,
    stream: bool = False,
    new_id: IdFactory = new_call_id,
) -> ChatRequest:
    """The Chat Completions body for `request`; raises InvalidRequest naming a lost field."""
    dropped = Drops(options.drop_params)
    config = request.generation_config or GenerationConfig()
    detail = _DETAIL.get((config.media_resolution or "").upper())
    body: dict[str, Any] = {"model": options.model}
    body["messages"] = to_messages(request, new_id=new_id, detail=detail, dropped=dropped)
    _tools(request, body, dropped)
    _generation(config, options, body, dropped)
    include_thoughts = _thinking(config, options, body, dropped)
    unwrap = _response_format(config, body, dropped)
    if body.get("response_format") == {"type": "json_object"}:
        _ask_for_json(body["messages"])
    if request.cached_content:
        dropped.refuse(
            "cachedContent: a Gemini context cache cannot be read by an OpenAI-compatible "
            "model; send the cached contents inline"
        )
    for name, value in (
        ("safetySettings", request.safety_settings),
        ("labels", request.labels),
        ("serviceTier", request.service_tier),
    ):
        if value is not None:
            dropped.add(name)
    dropped.update(k for k, v in (request.model_extra or {}).items() if v is not None)
    if stream:
        body["stream"] = True
        if options.stream_usage:
            body["stream_options"] = {"include_usage": True}
    for old, new in options.renames.items():
        if old in body:
            body[new] = body.pop(old)
    return ChatRequest(body, tuple(dropped), include_thoughts, unwrap)


def _tools(request: GenerateContentRequest, body: dict[str, Any], dropped: Drops) -> None:
    decls: list[tuple[str, FunctionDeclaration]] = []
    for i, tool in enumerate(request.tools or []):
        builtins = [c for n, c in _BUILTIN_TOOLS.items() if getattr(tool, n) is not None]
        builtins += [k for k, v in (tool.model_extra or {}).items() if v is not None]
        for builtin in builtins:
            dropped.refuse(
                f"tools[{i}].{builtin}: Gemini's built-in tool has no equivalent in {_API}; "
                "remove it or route this request to a Gemini model"
            )
        decls += [
            (f"tools[{i}].functionDeclarations[{j}]", d)
            for j, d in enumerate(tool.function_declarations or [])
        ]
    tool_config = request.tool_config
    calling = tool_config.function_calling_config if tool_config else None
    if tool_config is not None and tool_config.retrieval_config is not None:
        dropped.add("toolConfig.retrievalConfig")
    mode = (calling.mode or "").upper() if calling else ""
    allowed = list(calling.allowed_function_names or []) if calling else []
    where = "toolConfig.functionCallingConfig"
    names = {d.name for _, d in decls}
    if unknown := [n for n in allowed if n not in names]:
        raise InvalidRequest(
            f"{where}.allowedFunctionNames: {unknown[0]!r} is not among the declared functions"
        )
    if not decls:
        if mode == "ANY":
            raise InvalidRequest(f"{where}.mode: ANY needs at least one functionDeclaration")
        return
    selected = decls
    if allowed and mode != "NONE" and not (mode == "ANY" and len(allowed) == 1):
        selected = [(p, d) for p, d in decls if d.name in allowed]
    body["tools"] = [_function_tool(path, decl, dropped) for path, decl in selected]
    if mode == "NONE":
        body["tool_choice"] = "none"
    elif mode == "ANY":
        one = len(allowed) == 1
        body["tool_choice"] = (
            {"type": "function", "function": {"name": allowed[0]}} if one else "required"
        )
    elif mode in ("AUTO", "VALIDATED"):
        body["tool_choice"] = "auto"
    elif mode not in ("", "MODE_UNSPECIFIED"):
        raise InvalidRequest(f"{where}.mode: {mode!r} is not AUTO, ANY, NONE or VALIDATED")


def _function_tool(path: str, decl: FunctionDeclaration, dropped: Drops) -> dict[str, Any]:
    function: dict[str, Any] = {"name": decl.name}
    if decl.description:
        function["description"] = decl.description
    schema = decl.parameters_json_schema
    if schema is None and decl.parameters is not None:
        schema = decl.parameters
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequest(f"{path}.parametersJsonSchema: must be a JSON Schema object")
    function["parameters"] = (
        to_json_schema(schema) if schema else {"type": "object", "properties": {}}
    )
    if decl.response is not None or decl.response_json_schema is not None:
        dropped.add("functionDeclarations.response")
    if decl.behavior is not None:
        dropped.add("functionDeclarations.behavior")
    return {"type": "function", "function": function}


def _generation(
    config: GenerationConfig, options: ChatOptions, body: dict[str, Any], dropped: Drops
) -> None:
    simple = (
        ("temperature", config.temperature),
        ("top_p", config.top_p),
        ("presence_penalty", config.presence_penalty),
        ("frequency_penalty", config.frequency_penalty),
        ("seed", config.seed),
        (options.max_tokens_field, config.max_output_tokens),
    )
    body.update((k, v) for k, v in simple if v is not None)
    if not options.sampling:
        for key in _SAMPLING:
            if body.pop(key, None) is not None:
                dropped.add(f"{key} (the model takes no sampling settings)")
    if config.top_k is not None:
        if options.top_k:
            body["top_k"] = config.top_k
        else:
            dropped.add("generationConfig.topK")
    if config.candidate_count is not None and config.candidate_count != 1:
        body["n"] = config.candidate_count
    if config.stop_sequences:
        body["stop"] = list(config.stop_sequences)
    if config.response_logprobs or config.logprobs is not None:
        if not options.sampling:
            dropped.add("logprobs (the model takes no sampling settings)")
        else:
            body["logprobs"] = True
            if config.logprobs:
                body["top_logprobs"] = config.logprobs
    modalities = [m.upper() for m in config.response_modalities or []]
    if other := [m for m in modalities if m != "TEXT"]:
        dropped.refuse(
            f"generationConfig.responseModalities: {other[0]} output has no equivalent in {_API}"
        )
    for name in ("speech_config", "image_config"):
        if getattr(config, name) is not None:
            dropped.add(f"generationConfig.{name}")
    extras = {k for k, v in (config.model_extra or {}).items() if v is not None}
    dropped.update(f"generationConfig.{k}" for k in extras - _CONSUMED_CONFIG)


def _response_format(config: GenerationConfig, body: dict[str, Any], dropped: Drops) -> str | None:
    """Sets response_format; returns the key a non-object root schema was wrapped in."""
    mime = (config.response_mime_type or "").split(";")[0].strip().lower()
    schema = config.response_json_schema
    field = "responseJsonSchema"
    if schema is None and config.response_schema is not None:
        schema, field = config.response_schema, "responseSchema"
    if mime not in ("", "text/plain", "application/json"):
        dropped.refuse(
            f"generationConfig.responseMimeType: {mime} has no equivalent in {_API} "
            "(use application/json or text/plain)"
        )
        if schema is not None:  # the schema described that format: it goes with it
            dropped.add(f"generationConfig.{field}")
        return None
    if schema is not None:
        if not isinstance(schema, dict):
            raise InvalidRequest("generationConfig.responseJsonSchema: must be a JSON object")
        title = str(schema.get("title") or "")
        name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "response"
        json_schema = to_json_schema(schema)
        wrap = json_schema.get("type") != "object" and "properties" not in json_schema
        if wrap:  # OpenAI takes only an object at the root: wrap, and unwrap the answer.
            defs = {k: json_schema.pop(k) for k in ("$defs", "definitions") if k in json_schema}
            json_schema = {
                "type": "object",
                "properties": {WRAP_KEY: json_schema},
                "required": [WRAP_KEY],
                "additionalProperties": False,
                **defs,  # "#/$defs/..." references still resolve from the new root
            }
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": json_schema},
        }
        return WRAP_KEY if wrap else None
    if mime == "application/json":
        body["response_format"] = {"type": "json_object"}
    return None


def _ask_for_json(messages: list[dict[str, Any]]) -> None:
    """OpenAI's JSON mode refuses a conversation that never says "JSON": say it once."""
    if any("json" in str(m.get("content") or "").lower() for m in messages):
        return
    if messages[0]["role"] == "system":
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n{JSON_HINT}"}
    else:
        messages.insert(0, {"role": "system", "content": JSON_HINT})


def _asked_effort(thinking: ThinkingConfig, dropped: Drops) -> str | None:
    """The reasoning_effort a thinkingConfig asks for: a level, or a budget's nearest
    effort; OFF for a budget of 0; None for the server's default (budget -1, or none)."""
    if thinking.thinking_level:
        effort = _LEVELS.get(thinking.thinking_level.upper())
        if effort is None:
            dropped.add("thinkingConfig.thinkingLevel")
        return effort
    budget = thinking.thinking_budget
    if budget is None or budget < 0:
        return None
    if budget == 0:
        return OFF
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def _thinking(
    config: GenerationConfig, options: ChatOptions, body: dict[str, Any], dropped: Drops
) -> bool:
    thinking = config.thinking_config
    if thinking is None:
        return False
    effort = _asked_effort(thinking, dropped)
    if effort is None:
        return bool(thinking.include_thoughts)
    if not options.reasoning_effort:
        # gemini-cli sends a thinkingConfig on every call: a model that does not reason
        # answers the same without it.
        dropped.add(f"thinkingConfig ({options.model} takes no reasoning_effort)")
        return bool(thinking.include_thoughts)
    values = options.effort_values
    if effort == OFF:
        if not values:  # no "off" every model takes: the server's default
            dropped.add("thinkingConfig.thinkingBudget=0")
            return bool(thinking.include_thoughts)
        effort = values[0]  # the least reasoning the model takes
    sent = closest_effort(effort, values)
    if sent != effort:
        taken = "/".join(values)
        dropped.add(f"reasoning_effort {effort} (sent as {sent}: the model takes {taken})")
    body["reasoning_effort"] = sent
    return bool(thinking.include_thoughts)


# -- embeddings -----------------------------------------------------------------------------


def embed_bodies(
    request: BatchEmbedContentsRequest, model: str, dropped: Drops
) -> list[tuple[list[int], dict[str, Any]]]:
    """`/embeddings` bodies, one per distinct outputDimensionality, with their request indices."""
    groups: dict[int | None, list[int]] = {}
    texts: list[str] = []
    for i, inner in enumerate(request.requests):
        pieces = []
        for j, part in enumerate(inner.content.parts or []):
            if part.text is None:
                dropped.refuse(f"requests[{i}].content.parts[{j}]: embeddings take text only")
            else:
                pieces.append(part.text)
        if not pieces and inner.content.parts:
            raise InvalidRequest(f"requests[{i}].content: no text is left to embed")
        texts.append("\n".join(pieces))
        if inner.task_type is not None or inner.title is not None:
            dropped.add("taskType/title")
        groups.setdefault(inner.output_dimensionality, []).append(i)
    bodies = []
    for dims, indices in groups.items():
        body: dict[str, Any] = {
            "model": model,
            "input": [texts[i] for i in indices],
            "encoding_format": "float",
        }
        if dims is not None:
            body["dimensions"] = dims
        bodies.append((indices, body))
    return bodies
