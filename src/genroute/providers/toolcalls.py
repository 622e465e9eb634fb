"""Function calls and their responses, paired for the Messages-style APIs (Anthropic's
Messages and Bedrock's Converse), which pair them by an id of their own.

Gemini's `functionCall.id` is optional and may be any string; these APIs want an id of
restricted characters, unique in the request, and every tool result must name the call it
answers. `ToolCalls` gives each call of a model turn its wire id (the client's, cleaned,
when it is usable and unused; a fresh one otherwise) and finds the call a
`functionResponse` answers: by id, else the first unanswered call of that name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from genroute.errors import InvalidRequest
from genroute.wire import FunctionResponse, Part

__all__ = ["ToolCalls", "camel", "data_fields"]


@dataclass
class _Call:
    client_id: str | None
    wire_id: str
    name: str
    answered: bool = False


class ToolCalls:
    """The calls of the model turn being answered, and every id used in the request."""

    def __init__(self, new_id: Callable[[], str], bad_chars: re.Pattern[str]) -> None:
        self._new_id = new_id
        self._bad = bad_chars
        self._open: list[_Call] = []
        self._used: set[str] = set()

    def model_turn(self) -> None:
        """A new model turn: the calls before it can no longer be answered."""
        self._open = []

    def call(self, client_id: str | None, name: str) -> str:
        """A call of the current model turn: its wire id."""
        wire_id = self._bad.sub("_", client_id)[:64] if client_id else ""
        if not wire_id or wire_id in self._used:
            wire_id = self._new_id()
        self._used.add(wire_id)
        self._open.append(_Call(client_id, wire_id, name))
        return wire_id

    def answer(self, response: FunctionResponse, where: str) -> str:
        """The wire id of the call `response` answers (now answered); InvalidRequest when
        no call of the turn before is waiting for it."""
        waiting = [c for c in self._open if not c.answered]
        call = next((c for c in waiting if response.id and c.client_id == response.id), None)
        if call is None:
            call = next((c for c in waiting if c.name == response.name), None)
        if call is None:
            raise InvalidRequest(
                f"{where}.functionResponse: no functionCall {response.name!r}"
                + (f" with id {response.id!r}" if response.id else "")
                + " in the model turn before it is waiting for a response"
            )
        call.answered = True
        return call.wire_id


def camel(name: str) -> str:
    """A snake_case field name as the wire spells it (camelCase)."""
    first, *rest = name.split("_")
    return first + "".join(w.title() for w in rest)


def data_fields(part: Part, harmless: frozenset[str]) -> set[str]:
    """The names of the data fields a part sets (snake_case), extras included, but for its
    thought fields and the `harmless` ones the API may go without."""
    names = {
        name
        for name in type(part).model_fields
        if getattr(part, name) is not None
        and name not in {"thought", "thought_signature", *harmless}
    }
    return names | {k for k, v in (part.model_extra or {}).items() if v is not None}
