"""Reading upstream JSON: typed accessors that turn a wrong shape into UpstreamMalformed.

A 200 reply that is not the API's shape (not JSON, an array where an object belongs, a
number where a string belongs) must fail as `UpstreamMalformed` (502, reason MALFORMED)
naming the provider and the place, never as a KeyError or TypeError from deep inside a
translator. A `Reader` knows the provider and what it reads ("chat completion", "stream
event"); its accessors return the value with its type, treat null as absent, and raise
for anything else:

    reader = Reader("openai", "chat completion")
    obj = reader.load(body)                              # a JSON object, or raise
    choices = reader.array(obj.get("choices"), "choices", required=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from genroute.errors import UpstreamMalformed

__all__ = ["Reader", "malformed"]


def malformed(provider: str, what: str, detail: str) -> UpstreamMalformed:
    """The error for a reply that is not the API's shape."""
    return UpstreamMalformed(
        f"{provider} upstream sent a malformed {what}: {detail}", provider=provider
    )


def _kind(value: Any) -> str:
    if value is None:
        return "missing (or null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class Reader:
    """Typed access to one upstream reply; see the module docstring."""

    provider: str
    what: str

    def fail(self, detail: str) -> UpstreamMalformed:
        """The error naming what was wrong."""
        return malformed(self.provider, self.what, detail)

    def wrong(self, path: str, expected: str, value: Any) -> UpstreamMalformed:
        """The error for a value of the wrong type at `path`."""
        return self.fail(f"{path} is {_kind(value)}, not {expected}")

    def load(self, data: bytes | Mapping[str, Any]) -> dict[str, Any]:
        """A JSON object from raw bytes (or a mapping already parsed)."""
        if isinstance(data, dict):
            return data
        if isinstance(data, Mapping):
            return dict(data)
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            text = bytes(data[:200]).decode("utf-8", "replace")
            raise self.fail(f"not JSON: {text}") from None
        if not isinstance(value, dict):
            raise self.fail(f"{_kind(value)}, not an object")
        return value

    def obj(self, value: Any, path: str, *, required: bool = False) -> dict[str, Any]:
        """An object (an empty one for null, unless required)."""
        if isinstance(value, dict):
            return value
        if value is None and not required:
            return {}
        raise self.wrong(path, "an object", value)

    def array(self, value: Any, path: str, *, required: bool = False) -> list[Any]:
        """An array (an empty one for null, unless required)."""
        if isinstance(value, list):
            return value
        if value is None and not required:
            return []
        raise self.wrong(path, "an array", value)

    def string(self, value: Any, path: str) -> str | None:
        """A string, or None for null."""
        if value is None or isinstance(value, str):
            return value
        raise self.wrong(path, "a string", value)

    def integer(self, value: Any, path: str) -> int | None:
        """A whole number (an integral float too), or None for null."""
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise self.wrong(path, "a whole number", value)

    def number(self, value: Any, path: str) -> float | None:
        """A number, or None for null."""
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise self.wrong(path, "a number", value)
