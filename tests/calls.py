"""Building `Call`s in tests: `call("g")` for generateContent, `call("g", stream=True)`."""

from __future__ import annotations

from genroute.call import Call, Caller, Operation


def call(
    model: str,
    *,
    stream: bool = False,
    operation: Operation | None = None,
    caller: Caller | None = None,
) -> Call:
    """A call of `model` (generateContent unless `stream` or `operation` say otherwise)."""
    op = operation or (Operation.STREAM if stream else Operation.GENERATE)
    return Call(op, model, caller or Caller())
