"""The governed layer: every operation admitted by the key's rules, and settled after.

Around each of the five operations (generateContent, streams, countTokens, embedContent,
batchEmbedContents) it
  1. resolves the model to its group (404 for a name no group serves),
  2. admits the call: the key's and team's model lists (403), blocked rows, budgets and
     rpm/tpm/parallel limits of the key, its team and the end user (429), holding the most
     the call can cost on each budget (`genroute.governance.estimate.MaxCost`); a call
     refused here is a ledger row with its status and cost 0 (`Governance.refused`);
  3. calls the next layer;
  4. settles in a `finally`, whatever happened further in (an error, a cancellation, a
     client that left mid-stream): the limits and reservations it took are given back,
     the spend is noted, and one row is queued for the spend ledger.

Cost comes from `call.meter`, which the metering layer inside this one fills in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from genroute.call import Call, ModelAPI
from genroute.cost import Pricer
from genroute.errors import PermissionDenied, RateLimited, outcome
from genroute.governance.estimate import GroupResolver, MaxCost
from genroute.governance.service import Admission, Governance
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    Content,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
)

__all__ = ["Governed", "GroupResolver"]  # GroupResolver: genroute.governance.estimate

log = logging.getLogger("genroute.governance")
T = TypeVar("T")


class Governed:
    """Admits and settles every call around the next layer (see the module docstring)."""

    def __init__(
        self, inner: ModelAPI, governance: Governance, groups: GroupResolver, pricer: Pricer
    ) -> None:
        self.inner = inner
        self.governance = governance
        self.groups = groups
        self.pricer = pricer
        self.max_cost = MaxCost(groups, pricer, governance.default_max_output_tokens)

    def _generate_estimate(self, group: str, request: GenerateContentRequest) -> float:
        return self.max_cost.generate(group, request)

    async def _admit(self, call: Call, estimate: Callable[[str], float]) -> Admission:
        group = self.groups.resolve(call.model)
        try:
            return await self.governance.admit(call, group, estimate(group))
        except (PermissionDenied, RateLimited) as exc:  # a ledger row with cost 0
            await self.governance.refused(call, exc)
            raise

    async def _settle(
        self, call: Call, admission: Admission | None, error: BaseException | None
    ) -> None:
        status_code, error_status, _ = outcome(error)
        try:
            await self.governance.settle(
                call,
                admission,
                status_code=status_code,
                error_status=error_status,
                finished=time.perf_counter(),
            )
        except Exception:
            log.exception("settling request %s failed", call.request_id)

    async def _around(
        self, call: Call, estimate: Callable[[str], float], work: Callable[[], Awaitable[T]]
    ) -> T:
        admission = await self._admit(call, estimate)
        error: BaseException | None = None
        try:
            return await work()
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._settle(call, admission, error)

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        return await self._around(
            call,
            lambda group: self._generate_estimate(group, request),
            lambda: self.inner.generate(call, request),
        )

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        admission = await self._admit(call, lambda g: self._generate_estimate(g, request))
        error: BaseException | None = None
        try:
            async for chunk in self.inner.stream(call, request):
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._settle(call, admission, error)

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        return await self._around(
            call, lambda group: 0.0, lambda: self.inner.count_tokens(call, request)
        )

    def _embed_estimate(self, group: str, contents: list[Content]) -> float:
        return self.max_cost.embed(group, contents)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        return await self._around(
            call,
            lambda group: self._embed_estimate(group, [request.content]),
            lambda: self.inner.embed(call, request),
        )

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        return await self._around(
            call,
            lambda group: self._embed_estimate(group, [r.content for r in request.requests]),
            lambda: self.inner.batch_embed(call, request),
        )
