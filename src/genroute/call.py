"""One call through the pipeline, and the interface every layer and every provider implements.

`Call` says who is calling, for which model and operation, and by when. It is immutable:
a layer that needs to tell the layers inside it something (the observer of upstream
requests, say) passes them a copy made with `Call.with_upstream`. What a layer learns
about the call it writes on the one record it owns, which outer layers read afterwards:

    call.route   RouteRecord   written by the Router: group, deployment, attempts, fallbacks
    call.meter   Meter         written by the metering layer: usage, finish reason, cost
    call.cache   CacheRecord   written by the cache layer: hit, semantic hit or miss, saving
    call.resources ResourceRecord  the batch a call belongs to (set by the batch runner that
                                   makes it), the cached content and files it named
                                   (written by the resources layer)

What the client asked of the response cache (`cache-control: no-cache, no-store`) is
`call.cache_control`, set by the edge.

`ModelAPI` is the Gemini model API as five methods. Providers implement it for one
deployment; the Router implements it for every model group; each pipeline layer
(observed, governed, metered, cached) implements it by wrapping the next one.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Protocol

from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    UsageMetadata,
)

__all__ = [
    "ANONYMOUS",
    "HIT",
    "MISS",
    "NO_DIRECTIVES",
    "SEMANTIC_HIT",
    "Attempt",
    "CacheControl",
    "CacheRecord",
    "Call",
    "Caller",
    "Meter",
    "ModelAPI",
    "Operation",
    "Preparer",
    "ResourceRecord",
    "RouteRecord",
    "UpstreamObserver",
    "new_request_id",
]

#: Wraps one upstream HTTP request (timing it, a trace span) and yields headers to add to
#: it (`traceparent`). Set by the observability layer; None when nothing observes.
UpstreamObserver = Callable[[str], AbstractContextManager[Mapping[str, str]]]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Preparer(Protocol):
    """Rewrites a request for the deployment about to be tried: the Router calls it before
    each attempt. Set by the resources layer (`genroute.resources`), which resolves the
    uploaded files a request names into what that deployment takes. `deployment` is the
    Router's `Deployment` (its spec and provider)."""

    async def generate(
        self, deployment: Any, request: GenerateContentRequest
    ) -> GenerateContentRequest:
        """The generateContent request for this deployment."""
        ...

    async def count_tokens(
        self, deployment: Any, request: CountTokensRequest
    ) -> CountTokensRequest:
        """The countTokens request for this deployment."""
        ...


def new_request_id() -> str:
    """A random 32-hex-digit id (not a secret: `random`, no system call per request)."""
    return f"{random.getrandbits(128):032x}"


class Operation(enum.Enum):
    """The five operations of the model API, named as the Gemini API names its methods."""

    GENERATE = "generateContent"
    STREAM = "streamGenerateContent"
    COUNT_TOKENS = "countTokens"
    EMBED = "embedContent"
    BATCH_EMBED = "batchEmbedContents"

    @property
    def generates(self) -> bool:
        """Whether the operation produces model output (generateContent or its stream)."""
        return self in (Operation.GENERATE, Operation.STREAM)

    @property
    def embeds(self) -> bool:
        """Whether the operation produces embeddings."""
        return self in (Operation.EMBED, Operation.BATCH_EMBED)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the key (its hash, never the key), its team and user, the end user."""

    key_hash: str | None = None
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


ANONYMOUS = Caller()


@dataclass(slots=True)
class Attempt:
    """One try of a call on one deployment (perf_counter times)."""

    model_group: str
    deployment_id: str
    provider: str
    started: float
    ended: float | None = None
    error_code: int | None = None
    error_status: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """True when this attempt served the call (or is still serving a stream)."""
        return self.error_code is None


@dataclass(slots=True)
class RouteRecord:
    """Where a call went; written by the Router only."""

    group: str | None = None
    deployment_id: str | None = None
    provider: str | None = None
    provider_model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)  # groups tried after the first
    upstream_seconds: float = 0.0

    @property
    def routed(self) -> bool:
        """Whether at least one deployment was tried."""
        return bool(self.attempts)


@dataclass(slots=True)
class Meter:
    """What came back and what it cost; written by the metering layer only."""

    usage: UsageMetadata | None = None
    finish_reason: str | None = None
    response_model: str | None = None
    first_chunk_at: float | None = None  # perf_counter time of a stream's first chunk
    output_chars: int = 0  # text characters generated (for estimating a stream's usage)
    input_tokens: int | None = None  # embeddings: tokens embedded (reported or estimated)
    cost: float | None = None
    cost_estimated: bool = False


@dataclass(slots=True)
class ResourceRecord:
    """The Gemini resources one call belongs to or names: `batch` (`batches/{id}`, set when
    the batch runner makes the call), `cached_content` and `files` (written by the
    resources layer, `genroute.resources.resolve`). Logs and the spend ledger carry them."""

    batch: str | None = None
    cached_content: str | None = None
    files: tuple[str, ...] = ()

    @property
    def interactive(self) -> bool:
        """Whether a client is waiting on the call (it is not a batch's request)."""
        return self.batch is None


@dataclass(frozen=True, slots=True)
class CacheControl:
    """What the client asked of the response cache for this call (`cache-control`)."""

    no_cache: bool = False  # do not answer from the cache (the answer may still be stored)
    no_store: bool = False  # do not store the answer
    max_age: float | None = None  # answer only from an entry at most this many seconds old
    ttl: float | None = None  # seconds the stored answer lives (instead of the configured ttl)


NO_DIRECTIVES = CacheControl()

HIT = "hit"
SEMANTIC_HIT = "semantic-hit"
MISS = "miss"


@dataclass(slots=True)
class CacheRecord:
    """What the response cache did for a call; written by the cache layer only."""

    outcome: str | None = None  # "hit", "semantic-hit" or "miss"; None: not cached at all
    similarity: float | None = None  # a semantic hit's cosine similarity
    saved_cost: float = 0.0  # a hit: what the cached answer cost (USD, at today's prices)
    bytes: int = 0  # a hit: size of the entry served
    age: float | None = None  # a hit: seconds since the entry was stored
    group: str | None = None  # the model group the cache keyed the call under
    embedding_for: str | None = None  # the cache's own embedding call for this request id

    @property
    def hit(self) -> bool:
        """Whether the answer came from the cache (exactly or by meaning)."""
        return self.outcome == HIT or self.outcome == SEMANTIC_HIT


@dataclass(frozen=True, slots=True)
class Call:
    """One call: who, which model, which operation, by when; and the records layers write."""

    operation: Operation
    model: str  # the model name the client asked for, without `models/`
    caller: Caller = ANONYMOUS
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    deadline: float | None = None  # perf_counter time after which no upstream is tried
    trace_headers: tuple[tuple[str, str], ...] = ()  # incoming traceparent / tracestate
    upstream: UpstreamObserver | None = None
    prepare: Preparer | None = None  # per-deployment rewriting (uploaded files)
    route: RouteRecord = field(default_factory=RouteRecord)
    meter: Meter = field(default_factory=Meter)
    cache: CacheRecord = field(default_factory=CacheRecord)
    cache_control: CacheControl = NO_DIRECTIVES
    resources: ResourceRecord = field(default_factory=ResourceRecord)
    trace_id: str | None = None  # the call's trace (32 hex digits); set by the observed layer

    @property
    def stream(self) -> bool:
        """Whether this is a streamed generateContent."""
        return self.operation is Operation.STREAM

    def evolve(self, **changes: Any) -> Call:
        """A copy with `changes`, as `dataclasses.replace` makes it but without running
        `__init__` (a third of the time: no default factories to skip, no keywords to
        gather). The records are shared, not copied: the layers inside write them for the
        layers outside to read."""
        if not changes.keys() <= _CALL_FIELD_SET:
            raise TypeError(f"Call has no field {sorted(changes.keys() - _CALL_FIELD_SET)[0]!r}")
        copy = _new(Call)
        for name in _CALL_FIELDS:
            _set(copy, name, changes[name] if name in changes else getattr(self, name))
        return copy

    def with_upstream(self, observer: UpstreamObserver | None) -> Call:
        """This call, for the layers inside: with `observer` around each upstream request."""
        return self.evolve(upstream=observer)

    def with_trace(self, trace_id: str, observer: UpstreamObserver | None) -> Call:
        """This call, for the layers inside: in trace `trace_id`, with `observer` around
        each upstream request."""
        return self.evolve(trace_id=trace_id, upstream=observer)

    def with_prepare(self, preparer: Preparer | None) -> Call:
        """This call, for the layers inside: its request rewritten per deployment."""
        return self.evolve(prepare=preparer)

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left before the deadline (None without one; never below 0)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - (time.perf_counter() if now is None else now))


class ModelAPI(Protocol):
    """The Gemini model API: what a provider, the Router and every pipeline layer serve."""

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        """One whole response."""
        ...

    def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        """The response as chunks, as they arrive."""
        ...

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        """The token count of a request's contents."""
        ...

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        """One embedding."""
        ...

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        """One embedding per inner request, in order."""
        ...


_CALL_FIELDS = tuple(f.name for f in fields(Call))
_CALL_FIELD_SET = frozenset(_CALL_FIELDS)
_new = object.__new__
_set = object.__setattr__  # Call is frozen
