"""Gemini tools, toolConfig and JSON output settings → Converse `toolConfig` and
`outputConfig`. Pure.

- `functionDeclarations` → `tools[].toolSpec {name, description, inputSchema.json}`;
  Google's built-in tools are refused (drops.py), declarations wrong in themselves always.
- mode AUTO (and VALIDATED) → no `toolChoice` (Converse's default is auto, and models
  without `toolChoice` support refuse even `auto`); ANY → `{any: {}}`, or `{tool: {name}}`
  for one allowed name, the tools narrowed to the allowed ones; NONE has no Converse
  equivalent: the translator leaves the tools out (translate.py).
- JSON output (`responseMimeType: application/json`): Claude models with native structured
  outputs and a schema get `outputConfig.textFormat` (the schema made strict as for
  Anthropic, as JSON text); other models, or no schema, a forced `json_output` tool whose
  input is the answer (a non-object schema wrapped in `{"value": ...}`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson

from genroute.errors import InvalidRequest
from genroute.providers.anthropic.tools import JSON_TOOL, WRAP_KEY, strict_schema
from genroute.providers.drops import Drops
from genroute.providers.schema import to_json_schema
from genroute.providers.toolcalls import camel
from genroute.wire import FunctionDeclaration, GenerateContentRequest, GenerationConfig

__all__ = ["JSON_TOOL", "WRAP_KEY", "ToolPlan", "declarations", "plan_tools"]

log = logging.getLogger("genroute.providers.bedrock")

Block = dict[str, Any]
_BUILT_IN = ("google_search", "google_search_retrieval", "code_execution", "url_context")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """The toolConfig and outputConfig parts of a request, and how to read its reply."""

    tools: list[Block]  # `{toolSpec: ...}` entries
    choice: Block | None = None  # `{any: {}}` or `{tool: {name}}`; None: auto
    none: bool = False  # mode NONE: no call may be made
    text_format: Block | None = None  # outputConfig.textFormat
    json_tool: str | None = None
    json_wrapped: bool = False

    @property
    def forced(self) -> bool:
        """True when toolChoice obliges a tool call (Claude then forbids thinking)."""
        return self.choice is not None


def tool_spec(name: str, schema: Block, description: str | None = None) -> Block:
    """One Converse tool."""
    spec: Block = {"name": name}
    if description:
        spec["description"] = description
    spec["inputSchema"] = {"json": schema}
    return {"toolSpec": spec}


def declarations(request: GenerateContentRequest, dropped: Drops | None = None) -> list[Block]:
    """Every functionDeclaration as a Converse tool; built-in Google tools are refused."""
    dropped = Drops() if dropped is None else dropped
    tools: list[Block] = []
    for i, tool in enumerate(request.tools or []):
        unsupported = [camel(n) for n in _BUILT_IN if getattr(tool, n) is not None]
        unsupported += [k for k, v in (tool.model_extra or {}).items() if v is not None]
        for name in unsupported:
            dropped.refuse(
                f"tools[{i}].{name}: Google's built-in tools are not available on "
                "bedrock models; only functionDeclarations are"
            )
        for j, decl in enumerate(tool.function_declarations or []):
            tools.append(_declaration(decl, f"tools[{i}].functionDeclarations[{j}]"))
    names = [t["toolSpec"]["name"] for t in tools]
    if duplicate := next((n for n in names if names.count(n) > 1), None):
        raise InvalidRequest(f"tools: function {duplicate!r} is declared twice")
    return tools


def _declaration(decl: FunctionDeclaration, where: str) -> Block:
    if not _TOOL_NAME.fullmatch(decl.name or ""):
        raise InvalidRequest(
            f"{where}.name: {decl.name!r} is not a tool name bedrock models take "
            "(letters, digits, _ and -, at most 64)"
        )
    raw = decl.parameters_json_schema
    if raw is None:
        raw = decl.parameters
    schema = to_json_schema(raw) if raw is not None else {"type": "object", "properties": {}}
    if isinstance(schema, dict) and "type" not in schema and "properties" in schema:
        schema = {"type": "object", **schema}
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise InvalidRequest(
            f"{where}.parameters: bedrock tools need an object schema for their arguments"
        )
    for name in ("response", "response_json_schema", "behavior"):
        if getattr(decl, name) is not None:
            log.debug("%s.%s dropped: Converse tools have no equivalent", where, name)
    return tool_spec(decl.name, schema, decl.description)


def plan_tools(
    request: GenerateContentRequest, structured_outputs: bool, dropped: Drops | None = None
) -> ToolPlan:
    """tools + toolConfig + JSON output settings → a ToolPlan."""
    dropped = Drops() if dropped is None else dropped
    tools = declarations(request, dropped)
    config = request.tool_config.function_calling_config if request.tool_config else None
    mode = (config.mode or "AUTO").upper() if config is not None else None
    allowed = list(config.allowed_function_names or []) if config is not None else []
    choice: Block | None = None
    none = False
    if tools and mode is not None:
        choice, tools, none = _choice(mode, allowed, tools)
    elif mode is not None:
        log.debug("toolConfig dropped: the request declares no functions")
    generation = request.generation_config or GenerationConfig()
    return _with_json_output(
        generation, ToolPlan(tools, choice, none), mode, structured_outputs, dropped
    )


def _choice(
    mode: str, allowed: list[str], tools: list[Block]
) -> tuple[Block | None, list[Block], bool]:
    where = "toolConfig.functionCallingConfig"
    names = {t["toolSpec"]["name"] for t in tools}
    if unknown := [n for n in allowed if n not in names]:
        raise InvalidRequest(f"{where}.allowedFunctionNames: {unknown[0]!r} is not declared")
    if mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED"):
        if mode == "VALIDATED":
            log.debug("%s.mode VALIDATED sent as auto: no schema-validated calls", where)
        if allowed:
            log.debug("%s.allowedFunctionNames dropped: only honoured with ANY", where)
        return None, tools, False
    if mode == "NONE":
        return None, tools, True
    if mode != "ANY":
        raise InvalidRequest(f"{where}.mode: {mode!r} is not AUTO, ANY, NONE or VALIDATED")
    if not allowed:
        return {"any": {}}, tools, False
    kept = [t for t in tools if t["toolSpec"]["name"] in allowed]
    if len(kept) == 1:
        return {"tool": {"name": kept[0]["toolSpec"]["name"]}}, kept, False
    return {"any": {}}, kept, False


def _with_json_output(
    generation: GenerationConfig,
    plan: ToolPlan,
    mode: str | None,
    structured_outputs: bool,
    dropped: Drops,
) -> ToolPlan:
    mime = (generation.response_mime_type or "").split(";")[0].strip().lower()
    raw = generation.response_json_schema
    field = "responseJsonSchema"
    if raw is None:
        raw, field = generation.response_schema, "responseSchema"
    if mime in ("", "text/plain"):
        if raw is not None:
            raise InvalidRequest(
                f"generationConfig.{field}: needs responseMimeType application/json"
            )
        return plan
    if mime != "application/json":
        dropped.refuse(
            f"generationConfig.responseMimeType: {generation.response_mime_type!r} is not "
            "supported by bedrock models (text/plain and application/json are)"
        )
        if raw is not None:  # the schema described that format: it goes with it
            dropped.add(f"generationConfig.{field}")
        return plan
    schema = to_json_schema(raw) if raw is not None else None
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequest(f"generationConfig.{field}: must be a schema object")
    if schema is not None and structured_outputs:
        text = orjson.dumps(strict_schema(schema)).decode()
        text_format = {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": text, "name": "response"}},
        }
        return ToolPlan(plan.tools, plan.choice, plan.none, text_format=text_format)
    if mode == "ANY":
        log.debug("JSON output not forced: functionCallingConfig ANY forces a function call")
        return plan
    if any(t["toolSpec"]["name"] == JSON_TOOL for t in plan.tools):
        raise InvalidRequest(
            f"tools: a function named {JSON_TOOL!r} cannot be used with JSON output "
            "on this model (genroute uses that name for the answer)"
        )
    wrapped = schema is not None and schema.get("type") != "object"
    if schema is None:
        input_schema: Block = {"type": "object"}
    elif wrapped:
        input_schema = {"type": "object", "properties": {WRAP_KEY: schema}, "required": [WRAP_KEY]}
    else:
        input_schema = schema
    json_tool = tool_spec(
        JSON_TOOL,
        input_schema,
        "Give the final answer as JSON: call this tool with the answer as input.",
    )
    user_tools = bool(plan.tools) and not plan.none
    forced: Block = {"any": {}} if user_tools else {"tool": {"name": JSON_TOOL}}
    tools = [*plan.tools, json_tool] if user_tools else [json_tool]
    return ToolPlan(tools, forced, json_tool=JSON_TOOL, json_wrapped=wrapped)
