"""The base class of every wire type, and JSON (de)serialisation helpers.

`WireModel` reads lowerCamel (Google's proto-JSON) and snake_case (what the Python SDK
sends for nested objects) alike, writes lowerCamel, and keeps fields it does not know.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

__all__ = ["WireModel", "dump_json", "format_validation_error"]


class WireModel(BaseModel):
    """A Gemini wire object: camelCase out, camelCase or snake_case in, unknown keys kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
        protected_namespaces=(),
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire form as plain JSON-ready data, without unset (None) fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump_json(obj: WireModel) -> bytes:
    """Serialise a wire object to compact JSON bytes, camelCase, without None fields.

    Unknown fields an upstream sent are kept and written back, so a Gemini response
    passes through without loss, and any edit made to it on the way is written too."""
    return obj.__pydantic_serializer__.to_json(obj, by_alias=True, exclude_none=True)


def _loc_to_path(loc: tuple[int | str, ...], aliases: bool = True) -> str:
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        else:
            name = to_camel(item) if aliases else item
            path += f".{name}" if path else name
    return path


def format_validation_error(err: ValidationError, *, camel: bool = True) -> str:
    """One readable line per problem, each naming the field by its JSON path."""
    lines = []
    for problem in err.errors(include_url=False):
        loc = tuple(x for x in problem["loc"] if not str(x).startswith("function-"))
        path = _loc_to_path(loc, aliases=camel) or "(request body)"
        msg = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "missing":
            msg = "required field is missing"
        elif problem["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)
