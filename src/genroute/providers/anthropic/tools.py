"""Gemini tools, toolConfig and JSON output settings → Anthropic `tools`, `tool_choice`
and `output_config`. Pure.

JSON output (`responseMimeType: application/json`) takes one of two roads:

- **native**: models with structured outputs (profile.structured_outputs) get
  `output_config.format = {type: json_schema, schema}`, the schema made strict the way the
  official SDK does it (objects closed, unsupported keywords moved into `description`);
- **forced tool**: other models, or no schema at all, get a `json_output` tool whose
  `input_schema` is the schema (non-object schemas wrapped in `{"value": ...}`), forced with
  `tool_choice`; the reply's tool input becomes the JSON text part.

Google's built-in tools and output formats Anthropic has no road for are refused, or left
out with `drop_params` (drops.py); declarations that are wrong in themselves are refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.drops import Drops
from genroute.providers.schema import to_json_schema
from genroute.providers.toolcalls import camel
from genroute.wire import FunctionDeclaration, GenerateContentRequest, GenerationConfig

__all__ = ["JSON_TOOL", "WRAP_KEY", "ToolPlan", "declarations", "plan_tools", "strict_schema"]

log = logging.getLogger("genroute.providers.anthropic")

JSON_TOOL = "json_output"
WRAP_KEY = "value"
_BUILT_IN = ("google_search", "google_search_retrieval", "code_execution", "url_context")
_STRING_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What the request body gets for tools and output format, and how to read the reply."""

    tools: list[Block]
    tool_choice: Block | None = None
    output_format: Block | None = None
    json_tool: str | None = None
    json_wrapped: bool = False

    @property
    def forced(self) -> bool:
        """True when tool_choice obliges a tool call (Anthropic then forbids thinking)."""
        return self.tool_choice is not None and self.tool_choice["type"] in ("any", "tool")


def declarations(request: GenerateContentRequest, dropped: Drops | None = None) -> list[Block]:
    """Every functionDeclaration as an Anthropic tool; built-in Google tools are a 400."""
    dropped = Drops() if dropped is None else dropped
    tools: list[Block] = []
    for i, tool in enumerate(request.tools or []):
        unsupported = [camel(n) for n in _BUILT_IN if getattr(tool, n) is not None]
        unsupported += [k for k, v in (tool.model_extra or {}).items() if v is not None]
        for name in unsupported:
            dropped.refuse(
                f"tools[{i}].{name}: Google's built-in tools are not available on "
                "anthropic models; only functionDeclarations are"
            )
        for j, decl in enumerate(tool.function_declarations or []):
            tools.append(_declaration(decl, f"tools[{i}].functionDeclarations[{j}]"))
    names = [t["name"] for t in tools]
    if duplicate := next((n for n in names if names.count(n) > 1), None):
        raise InvalidRequest(f"tools: function {duplicate!r} is declared twice")
    return tools


def _declaration(decl: FunctionDeclaration, where: str) -> Block:
    raw = decl.parameters_json_schema
    if raw is None:
        raw = decl.parameters
    schema = to_json_schema(raw) if raw is not None else {"type": "object", "properties": {}}
    if isinstance(schema, dict) and "type" not in schema and "properties" in schema:
        schema = {"type": "object", **schema}
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise InvalidRequest(
            f"{where}.parameters: anthropic tools need an object schema for their arguments"
        )
    for dropped in ("response", "response_json_schema", "behavior"):
        if getattr(decl, dropped) is not None:
            log.debug("%s.%s dropped: anthropic tools have no equivalent", where, dropped)
    tool: Block = {"name": decl.name, "input_schema": schema}
    if decl.description:
        tool["description"] = decl.description
    return tool


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
    if tools and mode is not None:
        choice, tools = _choice(mode, allowed, tools)
    elif mode is not None:
        log.debug("toolConfig dropped: the request declares no functions")
    generation = request.generation_config or GenerationConfig()
    return _with_json_output(generation, tools, choice, mode, structured_outputs, dropped)


def _choice(mode: str, allowed: list[str], tools: list[Block]) -> tuple[Block, list[Block]]:
    where = "toolConfig.functionCallingConfig"
    names = {t["name"] for t in tools}
    if unknown := [n for n in allowed if n not in names]:
        raise InvalidRequest(f"{where}.allowedFunctionNames: {unknown[0]!r} is not declared")
    if mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED"):
        if mode == "VALIDATED":
            log.debug("%s.mode VALIDATED sent as auto: no schema-validated calls", where)
        if allowed:
            log.debug("%s.allowedFunctionNames dropped: only honoured with ANY", where)
        return {"type": "auto"}, tools
    if mode == "NONE":
        return {"type": "none"}, tools
    if mode != "ANY":
        raise InvalidRequest(f"{where}.mode: {mode!r} is not AUTO, ANY, NONE or VALIDATED")
    if not allowed:
        return {"type": "any"}, tools
    kept = [t for t in tools if t["name"] in allowed]
    if len(kept) == 1:
        return {"type": "tool", "name": kept[0]["name"]}, kept
    return {"type": "any"}, kept


def _with_json_output(
    generation: GenerationConfig,
    tools: list[Block],
    choice: Block | None,
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
        return ToolPlan(tools, choice)
    if mime != "application/json":
        dropped.refuse(
            f"generationConfig.responseMimeType: {generation.response_mime_type!r} is not "
            "supported by anthropic models (text/plain and application/json are)"
        )
        if raw is not None:  # the schema described that format: it goes with it
            dropped.add(f"generationConfig.{field}")
        return ToolPlan(tools, choice)
    schema = to_json_schema(raw) if raw is not None else None
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequest(f"generationConfig.{field}: must be a schema object")
    if schema is not None and structured_outputs:
        output = {"type": "json_schema", "schema": strict_schema(schema)}
        return ToolPlan(tools, choice, output_format=output)
    if mode == "ANY":
        log.debug("JSON output not forced: functionCallingConfig ANY forces a function call")
        return ToolPlan(tools, choice)
    if any(t["name"] == JSON_TOOL for t in tools):
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
    json_tool: Block = {
        "name": JSON_TOOL,
        "description": "Give the final answer as JSON: call this tool with the answer as input.",
        "input_schema": input_schema,
    }
    user_tools = bool(tools) and mode != "NONE"
    forced: Block = {"type": "any"} if user_tools else {"type": "tool", "name": JSON_TOOL}
    return ToolPlan([*tools, json_tool], forced, json_tool=JSON_TOOL, json_wrapped=wrapped)


def strict_schema(schema: Any) -> Any:
    """A JSON Schema as Anthropic's structured outputs accept it (after the official SDK's
    `transform_schema`): objects closed, type lists as anyOf, other keywords described."""
    if not isinstance(schema, dict):
        return schema
    rest = dict(schema)
    out: dict[str, Any] = {}
    defs = rest.pop("$defs", None)
    if isinstance(defs, dict):
        out["$defs"] = {name: strict_schema(d) for name, d in defs.items()}
    if "$ref" in rest:
        out["$ref"] = rest["$ref"]
        return out
    kind = rest.pop("type", None)
    if isinstance(kind, list):
        variants = [
            {"type": "null"} if k == "null" else strict_schema({**rest, "type": k}) for k in kind
        ]
        return {**out, "anyOf": variants}
    kind = _strict_choice(rest, out, kind)
    for key in ("description", "title"):
        if key in rest:
            out[key] = rest.pop(key)
    _strict_kind(rest, out, kind)
    if rest:
        described = ", ".join(f"{k}: {v}" for k, v in rest.items())
        note = out.get("description")
        out["description"] = (f"{note}\n\n" if note is not None else "") + "{" + described + "}"
    return out


def _strict_choice(rest: dict[str, Any], out: dict[str, Any], kind: Any) -> Any:
    """Move enum/const/anyOf/oneOf/allOf (else the type) from `rest` to `out`; the type
    left to shape the rest (None once an enum or const fixes the value)."""
    variants = rest.pop("anyOf", None) or rest.pop("oneOf", None)
    all_of = rest.pop("allOf", None)
    if isinstance(rest.get("enum"), list) and rest["enum"]:
        out["enum"], kind = rest.pop("enum"), None
    if "const" in rest:
        out["const"], kind = rest.pop("const"), None
    if isinstance(variants, list):
        out["anyOf"] = [strict_schema(v) for v in variants]
    elif isinstance(all_of, list):
        out["allOf"] = [strict_schema(v) for v in all_of]
    elif kind is not None:
        out["type"] = kind
    return kind


def _strict_kind(rest: dict[str, Any], out: dict[str, Any], kind: Any) -> None:
    """Move the keywords of an object, string or array schema that Anthropic accepts."""
    if kind == "object":
        props = rest.pop("properties", None) or {}
        out["properties"] = {name: strict_schema(p) for name, p in props.items()}
        rest.pop("additionalProperties", None)
        out["additionalProperties"] = False
        if "required" in rest:
            out["required"] = list(rest.pop("required"))
    elif kind == "string" and rest.get("format") in _STRING_FORMATS:
        out["format"] = rest.pop("format")
    elif kind == "array":
        if "items" in rest:
            out["items"] = strict_schema(rest.pop("items"))
        if rest.get("minItems") in (0, 1):
            out["minItems"] = rest.pop("minItems")
