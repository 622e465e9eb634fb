"""Google's OpenAPI-subset `Schema` (uppercase types, `nullable`, `propertyOrdering`)
turned into plain JSON Schema, for providers that take JSON Schema.

Pure functions; accepts camelCase and snake_case keys and already-JSON-Schema input.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_json_schema"]

_TYPES = {
    "STRING": "string",
    "NUMBER": "number",
    "INTEGER": "integer",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
    "OBJECT": "object",
    "NULL": "null",
}
# Keys that only order or label output in Google's form and have no JSON Schema meaning.
_DROPPED = {"propertyOrdering", "property_ordering"}
_RENAMED = {
    "min_items": "minItems",
    "max_items": "maxItems",
    "min_length": "minLength",
    "max_length": "maxLength",
    "min_properties": "minProperties",
    "max_properties": "maxProperties",
    "any_of": "anyOf",
    "additional_properties": "additionalProperties",
}
_NESTED_MAPS = {"properties", "$defs", "definitions", "defs"}
_NESTED_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
_NESTED_ONE = {"items", "additionalProperties", "not"}


def to_json_schema(schema: Any) -> Any:
    """A JSON Schema equivalent of a Google Schema (or a JSON Schema, normalised)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    nullable = False
    for raw_key, value in schema.items():
        key: str = _RENAMED.get(raw_key, str(raw_key))
        if key in _DROPPED:
            continue
        if key == "nullable":
            nullable = bool(value)
        elif key == "type":
            out["type"] = _type(value)
        elif key in _NESTED_MAPS and isinstance(value, dict):
            out["$defs" if key == "defs" else key] = {
                k: to_json_schema(v) for k, v in value.items()
            }
        elif key in _NESTED_LISTS and isinstance(value, list):
            out[key] = [to_json_schema(v) for v in value]
        elif key in _NESTED_ONE:
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    if nullable:
        current = out.get("type")
        if isinstance(current, str):
            out["type"] = [current, "null"]
        elif isinstance(current, list) and "null" not in current:
            out["type"] = [*current, "null"]
        elif current is None and "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


def _type(value: Any) -> Any:
    if isinstance(value, str):
        return _TYPES.get(value.upper(), value.lower())
    if isinstance(value, list):
        return [_type(v) for v in value]
    return value
