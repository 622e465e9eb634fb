"""Google Schema → JSON Schema."""

from __future__ import annotations

from genroute.providers.schema import to_json_schema


def test_google_schema_becomes_json_schema() -> None:
    google = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "description": "who", "nullable": True},
            "tags": {
                "type": "ARRAY",
                "items": {"type": "STRING", "enum": ["a", "b"]},
                "min_items": 1,
            },
            "age": {"type": "INTEGER", "format": "int32"},
            "either": {"anyOf": [{"type": "NUMBER"}, {"type": "BOOLEAN"}], "nullable": True},
        },
        "required": ["name"],
        "propertyOrdering": ["name", "tags"],
        "property_ordering": ["name"],
    }
    assert to_json_schema(google) == {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"], "description": "who"},
            "tags": {
                "type": "array",
                "items": {"type": "string", "enum": ["a", "b"]},
                "minItems": 1,
            },
            "age": {"type": "integer", "format": "int32"},
            "either": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "null"}]},
        },
        "required": ["name"],
    }


def test_json_schema_passes_unchanged() -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"type": ["string", "null"]}},
        "additionalProperties": False,
    }
    assert to_json_schema(schema) == schema
