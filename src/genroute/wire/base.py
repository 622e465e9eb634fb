"""The base class of every wire type, and JSON (de)serialisation helpers.

`WireModel` reads lowerCamel (Google's proto-JSON) and snake_case (what the Python SDK
sends for nested objects) alike, writes lowerCamel, and keeps fields it does not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

__all__ = ["Repeated", "WireModel", "dump_json", "format_validation_error", "one_as_list"]


def one_as_list(value: Any) -> Any:
    """A single value where a repeated field is expected, as a list of one.

    Google's JSON parser accepts `"contents": {...}` for `"contents": [{...}]` (and the same
    for every repeated field); Vertex's REST samples and LiteLLM's google_genai client send
    it, so genroute accepts it too."""
    if value is None or isinstance(value, list):
        return value
    return [value]


if TYPE_CHECKING:
    Repeated = list
else:

    class Repeated:
        """`Repeated[X]`: a repeated field of the wire, a JSON array of X or a single X that
        stands for a list of one. Validated as `list[X] | X`, array first, so that JSON
        input stays on pydantic's fast path (a before-validator would not)."""

        def __class_getitem__(cls, item: Any) -> Any:
            return Annotated[
                list[item] | item, Field(union_mode="left_to_right"), AfterValidator(one_as_list)
            ]


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

    def set_private(self, name: str, value: Any) -> None:
        """Set a value that is not on the wire (declared on the class as an underscored
        `ClassVar` holding its default): kept by copies, never serialised, never read from
        a body. Cheaper than pydantic's private attributes, which cost every validation
        of the model a Python-level initialiser and every read a `__getattr__` call."""
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The wire form as plain JSON-ready data, without unset (None) fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump_json(obj: WireModel) -> bytes:
    """Serialise a wire object to compact JSON bytes, camelCase, without None fields.

    Unknown fields an upstream sent are kept and written back, so a Gemini response
    passes through without loss, and any edit made to it on the way is written too. A
    relayed response (see wire/response.py) is parsed first."""
    if "_raw" in obj.__dict__:
        obj.parse_relayed()  # type: ignore[attr-defined]
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


Loc = tuple[int | str, ...]


def _choose_branches(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the errors of the branch the input took at each `Repeated` field (a JSON array
    or a single value), so that a message names one problem, not both readings of it."""
    points: dict[tuple[Loc, str], list[dict[str, Any]]] = {}
    for problem in problems:
        loc = problem["loc"]
        for i, seg in enumerate(loc):
            if isinstance(seg, str) and seg.startswith("list[") and seg.endswith("]"):
                points.setdefault((loc[:i], seg[5:-1]), []).append(problem)
    drop: set[int] = set()
    for (prefix, item), listed in points.items():
        depth = len(prefix) + 1
        n = len(prefix)
        single = [p for p in problems if p["loc"][:n] == prefix and p["loc"][n : n + 1] == (item,)]
        list_deep = any(len(p["loc"]) > depth for p in listed)
        single_deep = any(len(p["loc"]) > depth for p in single)
        if list_deep or not single_deep:
            drop.update(id(p) for p in single)
            if not list_deep:  # neither a list nor an item: one message for the field
                for p in listed:
                    p["msg"] = f"Input should be a list (or a single {item})"
        else:
            drop.update(id(p) for p in listed)
    return [p for p in problems if id(p) not in drop]


def _strip_branches(loc: Loc, list_points: set[tuple[Loc, str]]) -> Loc:
    """The JSON path of a location, without the branch names pydantic adds at `Repeated`
    fields (`list[Content]`, or `Content` for the single-item branch)."""
    out: list[int | str] = []
    for i, seg in enumerate(loc):
        if isinstance(seg, str) and seg.startswith("function-"):
            continue
        if isinstance(seg, str) and seg.startswith("list[") and seg.endswith("]"):
            continue
        if isinstance(seg, str) and (loc[:i], seg) in list_points:
            continue
        out.append(seg)
    return tuple(out)


def format_validation_error(err: ValidationError, *, camel: bool = True) -> str:
    """One readable line per problem, each naming the field by its JSON path."""
    lines = []
    problems: list[dict[str, Any]] = [dict(p) for p in err.errors(include_url=False)]
    list_points: set[tuple[Loc, str]] = set()
    for p in problems:
        loc: Loc = p["loc"]
        for i, seg in enumerate(loc):
            if isinstance(seg, str) and seg.startswith("list[") and seg.endswith("]"):
                list_points.add((loc[:i], seg[5:-1]))
    for problem in _choose_branches(problems):
        path_loc = _strip_branches(problem["loc"], list_points)
        path = _loc_to_path(path_loc, aliases=camel) or "(request body)"
        msg = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "missing":
            msg = "required field is missing"
        elif problem["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{path}: {msg}")
    return "; ".join(dict.fromkeys(lines))
