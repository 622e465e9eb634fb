"""The response cache: what a call may read and write, lookups, and writes in the background.

`ResponseCache.plan` decides, per call, whether the cache has a part in it and with which
key, scope, TTL and directives: the client's `cache-control` (`call.cache_control`), then
its key's and team's `metadata.cache` switches (LiteLLM's names: `no-cache`, `no-store`,
`ttl`, `s-maxage`, `namespace`), read through `controls`. `lookup` tries the exact key, then
(semantic types) embeds the prompt through the pipeline itself (`embedder`: the outermost
layer, so the embedding is routed, priced, governed and logged like any call) and asks the
vector index. `store_later` writes an answer in a task of its own, never delaying the
answer: a stream's chunks are assembled there, and an answer that must not be kept (an
error, a finish reason other than STOP, a function call unless configured) is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from genroute.cache.assemble import assemble
from genroute.cache.keys import (
    cacheable_request,
    canonical,
    exact_key,
    scope_of,
    semantic_prompt,
    storable_response,
)
from genroute.cache.store import Entry, EntryStore, LocalStore, RedisHealth
from genroute.call import (
    HIT,
    MISS,
    SEMANTIC_HIT,
    CacheRecord,
    Call,
    Caller,
    ModelAPI,
    Operation,
)
from genroute.config.cache import CacheParams
from genroute.cost import Pricer
from genroute.wire import (
    Content,
    EmbedContentRequest,
    GenerateContentResponse,
    Part,
    UsageMetadata,
    WireModel,
    dump_json,
)

if TYPE_CHECKING:  # numpy and the semantic index are imported by a semantic cache only
    import numpy as np

    from genroute.cache.semantic import SharedIndex, VectorIndex

__all__ = ["MAX_PENDING", "ControlSource", "Plan", "ResponseCache"]

log = logging.getLogger("genroute.cache")

MAX_PENDING = 256  # writes in flight; past that an answer is not stored
CLOSE_TIMEOUT = 5.0
ControlSource = Callable[[Caller], Awaitable[Mapping[str, Any]]]
A = TypeVar("A", bound=WireModel)


class GroupResolver(Protocol):
    """What the cache asks of the Router: the group a model name is served by."""

    def resolve(self, model: str) -> str:
        """The group serving `model` (NotFound when none does)."""
        ...


@dataclass(slots=True)
class Plan:
    """What the cache does for one call."""

    kind: str  # "generate", "embed" or "batch_embed"
    key: str
    lookup: bool
    store: bool
    ttl: float
    max_age: float | None
    semantic: tuple[str, str] | None = None  # (text embedded, bucket)
    vector: np.ndarray | None = None
    embedded: bool = False  # the lookup asked for the vector (None: that call failed)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def _youngest(*ages: float | None) -> float | None:
    given = [a for a in ages if a is not None]
    return min(given) if given else None


class ResponseCache:
    """Lookups and writes of the response cache (see the module docstring)."""

    def __init__(
        self,
        params: CacheParams,
        store: EntryStore,
        groups: GroupResolver,
        pricer: Pricer,
        *,
        index: VectorIndex | None = None,
        shared: SharedIndex | None = None,
        health: RedisHealth | None = None,
        controls: ControlSource | None = None,
        clients: tuple[Any, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.store = store
        self.groups = groups
        self.pricer = pricer
        self.index = index
        self.shared = shared
        self.health = health
        self.controls = controls
        self.embedder: ModelAPI | None = None  # the outermost layer, set by build_pipeline
        self.clock = clock
        self._clients = clients
        self._pending: set[asyncio.Task[None]] = set()
        self.stats: Counter[str] = Counter()
        self.not_stored: Counter[str] = Counter()
        self._last_embed_warning = -1e9

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following the shared index (catching up on what other instances cached)."""
        if self.shared is not None:
            self.shared.start()

    async def drain(self) -> None:
        """Wait for the writes in flight. A write that has ended is dropped here, not left
        to its done callback: from Python 3.12 on, gathering tasks that have all ended
        returns without yielding to the event loop, so the callbacks that would empty
        `_pending` never ran and this loop spun for ever (a shutdown right after a write)."""
        while self._pending:
            writes = list(self._pending)
            await asyncio.gather(*writes, return_exceptions=True)
            self._pending.difference_update(writes)

    async def aclose(self) -> None:
        """Finish (or, after CLOSE_TIMEOUT, drop) the writes in flight; close connections."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.drain()
        for task in list(self._pending):
            task.cancel()
        if self.shared is not None:
            await self.shared.aclose()
        for client in self._clients:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await client.aclose()

    # -- planning ------------------------------------------------------------------------------

    async def _controls(self, caller: Caller) -> Mapping[str, Any] | None:
        """The caller's key and team switches; None when they cannot be read."""
        if self.controls is None:
            return {}
        try:
            return await self.controls(caller)
        except Exception as exc:  # the key store is down: the call goes on, uncached
            self.stats["controls_unread"] += 1
            log.debug("response cache: the key's and team's switches are unread (%s)", exc)
            return None

    async def plan(self, call: Call, request: WireModel, kind: str) -> Plan | None:
        """What the cache does for this call; None when it has no part in it. A call it
        could have had a part in is marked a miss until `lookup` finds better."""
        if call.cache.embedding_for is not None:
            return None  # the cache's own embedding call
        family = "generate" if kind == "generate" else "embed"
        if family not in self.params.kinds:
            return None
        group = self.groups.resolve(call.model)
        call.cache.group = group  # a hit is never routed: the ledger and logs read it here
        controls = await self._controls(call.caller)
        if controls is None:  # a `no-store` there may be for privacy: stay out of the call
            return None
        directives = call.cache_control
        call.cache.outcome = MISS
        lookup = not (directives.no_cache or bool(controls.get("no-cache")))
        store = not (directives.no_store or bool(controls.get("no-store")))
        if not (lookup or store):
            return None
        reason = cacheable_request(request)
        if reason is not None:
            self.not_stored[reason] += 1
            return None
        namespace = controls.get("namespace")
        scope = scope_of(
            call.caller,
            self.params.shared_across_teams,
            namespace if isinstance(namespace, str) else None,
        )
        ttl = directives.ttl or _number(controls.get("ttl")) or self.params.ttl
        data = canonical(request)
        plan = Plan(
            kind,
            exact_key(kind, group, scope, data),
            lookup,
            store,
            ttl,
            _youngest(directives.max_age, _number(controls.get("s-maxage"))),
        )
        if self.index is not None and kind == "generate":
            plan.semantic = semantic_prompt(request, data, group, scope)  # type: ignore[arg-type]
        return plan

    # -- lookups -------------------------------------------------------------------------------

    def _fresh(self, entry: Entry | None, plan: Plan, answer: type[A]) -> tuple[Entry, A] | None:
        """The entry and its answer, if it is of the plan's kind, young enough, and an
        answer of that type (an entry Redis holds is not trusted: another version's, or
        garbage, is a miss)."""
        if entry is None or entry.kind != plan.kind:
            return None
        if plan.max_age is not None and entry.created < self.clock() - plan.max_age:
            return None
        try:
            return entry, answer.model_validate_json(entry.body)
        except ValueError as exc:  # pydantic's ValidationError, invalid JSON included
            self.stats["bad_entries"] += 1
            log.warning("response cache: ignoring an entry that is not a %s (%s)", plan.kind, exc)
            return None

    async def lookup(self, call: Call, plan: Plan, answer: type[A]) -> tuple[Entry, A] | None:
        """The entry answering this call and its answer (of type `answer`), exactly or by
        meaning (recorded on `call.cache`), or None (a miss)."""
        found = self._fresh(await self.store.get(plan.key), plan, answer)
        if found is not None:
            self._hit(call, found[0], HIT)
            return found
        if plan.semantic is not None and self.index is not None:
            text, bucket = plan.semantic
            plan.vector = await self.embed(call, text)
            plan.embedded = True
            threshold = self.params.similarity_threshold
            if plan.vector is not None:
                # (required for semantic types; 0 is a threshold too: any nearest entry)
                near = self.index.search(
                    bucket, plan.vector, 1.0 if threshold is None else threshold, plan.max_age
                )
                if near is not None:
                    ident, similarity = near
                    found = self._fresh(await self.store.get(ident), plan, answer)
                    if found is not None:
                        self._hit(call, found[0], SEMANTIC_HIT)
                        call.cache.similarity = round(similarity, 6)
                        return found
                    self.index.remove(ident)  # gone from the store (expired, evicted)
        self.stats["misses"] += 1
        return None

    def _hit(self, call: Call, entry: Entry, outcome: str) -> None:
        record = call.cache
        record.outcome = outcome
        record.bytes = len(entry.body)
        record.age = max(0.0, self.clock() - entry.created)
        self.stats["hits" if outcome == HIT else "semantic_hits"] += 1
        self.stats["hit_bytes"] += len(entry.body)

    def priced(self, call: Call, entry: Entry, usage: UsageMetadata | None) -> None:
        """Note on `call.cache` what the answer served from `entry` would have cost."""
        if usage is None:
            return
        group, deployment, provider, model = entry.origin
        try:
            saved = self.pricer.cost(usage, provider, model, deployment, group).usd
        except Exception:  # an unknown price: nothing to say it saved
            return
        call.cache.saved_cost = saved

    async def embed(self, call: Call, text: str) -> np.ndarray | None:
        """The prompt's embedding, by the configured model group through the pipeline (None
        when that call fails: the semantic match is skipped, the call goes on)."""
        if self.embedder is None:
            return None
        caller = replace(
            call.caller, metadata={**call.caller.metadata, "cache_embedding_for": call.request_id}
        )
        inner = Call(
            Operation.EMBED,
            self.params.redis_semantic_cache_embedding_model,
            caller,
            deadline=call.deadline,
            trace_headers=call.trace_headers,
            cache=CacheRecord(embedding_for=call.request_id),
        )
        request = EmbedContentRequest(content=Content(role="user", parts=[Part(text=text)]))
        try:
            response = await self.embedder.embed(inner, request)
        except Exception as exc:
            self.stats["embedding_errors"] += 1
            now = time.monotonic()
            if now - self._last_embed_warning > 60:
                self._last_embed_warning = now
                log.warning(
                    "response cache: embedding the prompt with %r failed (%s); the semantic "
                    "match is skipped while it fails",
                    self.params.redis_semantic_cache_embedding_model,
                    exc,
                )
            return None
        from genroute.cache.semantic import unit_vector  # with numpy, by a semantic cache only

        return unit_vector(response.embedding.values)

    # -- writes --------------------------------------------------------------------------------

    def store_later(
        self, call: Call, plan: Plan, answer: WireModel | list[GenerateContentResponse]
    ) -> None:
        """Store the answer (a stream's chunks are assembled first) in the background."""
        if not plan.store:
            return
        if len(self._pending) >= MAX_PENDING:
            self.stats["dropped_writes"] += 1
            return
        task = asyncio.create_task(self._store(call, plan, answer), name="genroute-cache-write")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(
        self, call: Call, plan: Plan, answer: WireModel | list[GenerateContentResponse]
    ) -> None:
        try:
            await self._write(call, plan, answer)
        except Exception:
            log.exception("response cache: storing the answer of %s failed", call.request_id)

    async def _write(
        self, call: Call, plan: Plan, answer: WireModel | list[GenerateContentResponse]
    ) -> None:
        input_tokens: int | None = None
        if isinstance(answer, list):
            answer = assemble(answer)
        if isinstance(answer, GenerateContentResponse):
            reason = storable_response(answer, self.params.cache_function_calls)
            if reason is not None:
                self.not_stored[reason.split(" ")[0]] += 1
                return
        else:
            input_tokens = getattr(answer, "_input_tokens", None)
        route = call.route
        now = self.clock()
        entry = Entry(
            plan.kind,
            dump_json(answer),
            now,
            now + plan.ttl,
            (route.group, route.deployment_id, route.provider, route.provider_model),
            input_tokens,
        )
        if not await self.store.put(plan.key, entry):
            return
        self.stats["writes"] += 1
        self.stats["written_bytes"] += len(entry.body)
        if plan.semantic is None or self.index is None:
            return
        text, bucket = plan.semantic
        vector = plan.vector
        if vector is None and not plan.embedded:  # no-cache: the lookup did not embed
            vector = await self.embed(call, text)
        if vector is None:  # the embedding failed: not tried twice for one call
            return
        if self.shared is not None:
            await self.shared.publish(plan.key, bucket, vector, entry.expires, now)
        self.index.add(plan.key, bucket, vector, entry.expires, now)

    # -- metrics -------------------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """Counters and gauges by their exported names (no I/O)."""
        stats = self.stats
        values: dict[str, float] = {
            "genroute_cache_writes_total": stats["writes"],
            "genroute_cache_written_bytes_total": stats["written_bytes"],
            "genroute_cache_dropped_writes_total": stats["dropped_writes"],
            "genroute_cache_embedding_errors_total": stats["embedding_errors"],
            "genroute_cache_not_stored_total": sum(self.not_stored.values()),
            "genroute_cache_bad_entries_total": stats["bad_entries"],
        }
        if isinstance(self.store, LocalStore):
            values["genroute_cache_entries"] = len(self.store)
            values["genroute_cache_bytes"] = self.store.bytes
        if self.index is not None:
            values["genroute_cache_index_entries"] = len(self.index)
            values["genroute_cache_index_bytes"] = self.index.nbytes
        if self.health is not None:
            values["genroute_cache_redis_up"] = float(self.health.up)
            values["genroute_cache_redis_errors_total"] = self.health.errors
            values["genroute_cache_redis_skipped_total"] = self.health.skipped
            values["genroute_cache_redis_refused_total"] = self.health.refusals
        return values
