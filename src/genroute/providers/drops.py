"""What a translation leaves out, and what `drop_params` lets it leave out.

A field with no equivalent upstream whose meaning survives without it is left out and
noted (`add`); the provider logs the notes at debug level. A field whose loss would change
the answer is refused (`refuse`): InvalidRequest naming its JSON path, unless the
deployment sets `drop_params` (LiteLLM's setting of the same name), in which case it is
left out and noted the same way. A request that is wrong in itself (an unknown role, a
call without an answer) is refused whatever `drop_params` says: translators raise
InvalidRequest directly for those.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from genroute.errors import InvalidRequest

__all__ = ["Drops"]


class Drops:
    """The fields one translation left out."""

    __slots__ = ("drop_params", "fields")

    def __init__(self, drop_params: bool = False) -> None:
        self.drop_params = drop_params
        self.fields: set[str] = set()

    def add(self, field: str) -> None:
        """Note a field left out because the answer means the same without it."""
        self.fields.add(field)

    def update(self, fields: Iterable[str]) -> None:
        """Note several fields left out."""
        self.fields.update(fields)

    def refuse(self, message: str) -> None:
        """Refuse a field whose loss would change the answer: raise InvalidRequest(message),
        or with drop_params note the JSON path the message starts with and return."""
        if not self.drop_params:
            raise InvalidRequest(message)
        self.fields.add(message.split(": ", 1)[0])

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.fields))

    def __contains__(self, field: object) -> bool:
        return field in self.fields

    def __bool__(self) -> bool:
        return bool(self.fields)

    def __repr__(self) -> str:
        return f"Drops(drop_params={self.drop_params}, fields={sorted(self.fields)})"
