"""The provider conformance suite (tests/providers/test_conformance.py), run over Vertex:
a Gemini model and a Claude model, each answering in its own wire (Gemini's; Anthropic's
through rawPredict) from a MockTransport that knows Vertex's paths.

The shared suite's cases are called as they are; only its `Upstream` is swapped for one
that also answers Vertex's paths, and each case's provider gets a token that needs no
network. (These rows could join the shared CASES once `Case.provider` can give a provider
its token and `mock_http.Upstream` knows Vertex's paths.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import tests.providers.test_conformance as shared
from genroute.errors import FailureReason, GenrouteError, UpstreamTimeout, UpstreamUnavailable
from genroute.providers.base import Provider
from genroute.providers.transport import MockTransport
from tests.providers.vertex.mock import VertexUpstream, vertex


@dataclass(frozen=True)
class VertexCase(shared.Case):
    """A Vertex deployment; `wire` is the API its model speaks behind Vertex's paths."""

    def provider(self, transport: MockTransport) -> Provider:
        return vertex(transport, self.model, **self.params)


CASES = [
    VertexCase("vertex_ai", "gemini-2.5-flash", "gemini"),
    VertexCase("vertex_ai", "claude-sonnet-4-5@20250929", "anthropic"),
]
each_model = pytest.mark.parametrize("case", CASES, ids=["gemini", "claude"])


@pytest.fixture(autouse=True)
def _vertex_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(shared, "Upstream", VertexUpstream)
    yield


@each_model
async def test_generate_answers(case: VertexCase) -> None:
    await shared.test_generate_answers(case)


@each_model
@pytest.mark.parametrize("chunk", [1, 7, None], ids=["every-byte", "7-bytes", "whole"])
async def test_a_stream_cut_anywhere_says_what_generate_says(
    case: VertexCase, chunk: int | None
) -> None:
    await shared.test_a_stream_cut_anywhere_says_what_generate_says(case, chunk)


@each_model
async def test_the_observer_wraps_each_request_and_its_headers_go_upstream(
    case: VertexCase,
) -> None:
    await shared.test_the_observer_wraps_each_request_and_its_headers_go_upstream(case)


@each_model
async def test_leaving_a_stream_early_ends_the_observed_request(case: VertexCase) -> None:
    await shared.test_leaving_a_stream_early_ends_the_observed_request(case)


@each_model
@pytest.mark.parametrize(("status", "reason"), shared.STATUSES, ids=[str(s) for s, _ in shared.STATUSES])  # fmt: skip
async def test_error_statuses_carry_their_failure_reason(
    case: VertexCase, status: int, reason: FailureReason
) -> None:
    await shared.test_error_statuses_carry_their_failure_reason(case, status, reason)


@each_model
@pytest.mark.parametrize(
    ("exc", "error"),
    [(TimeoutError(), UpstreamTimeout), (ConnectionResetError(104, "reset"), UpstreamUnavailable)],
    ids=["timeout", "connection"],
)
async def test_timeouts_and_broken_connections(
    case: VertexCase, exc: BaseException, error: type[GenrouteError]
) -> None:
    await shared.test_timeouts_and_broken_connections(case, exc, error)


@each_model
async def test_a_stream_that_stalls_midway_times_out_after_what_it_sent(case: VertexCase) -> None:
    await shared.test_a_stream_that_stalls_midway_times_out_after_what_it_sent(case)


@each_model
@pytest.mark.parametrize("body", shared.MALFORMED, ids=lambda b: b.decode() or "empty")
async def test_a_200_that_is_not_the_apis_shape_is_malformed(case: VertexCase, body: bytes) -> None:
    await shared.test_a_200_that_is_not_the_apis_shape_is_malformed(case, body)


@each_model
@pytest.mark.parametrize("event", [b"[]", b'{"a": ', b"5", b'"x"'], ids=lambda b: b.decode())
async def test_a_stream_event_that_is_not_the_apis_shape_is_malformed(
    case: VertexCase, event: bytes
) -> None:
    await shared.test_a_stream_event_that_is_not_the_apis_shape_is_malformed(case, event)


@each_model
async def test_count_tokens(case: VertexCase) -> None:
    await shared.test_count_tokens(case)


@each_model
async def test_embed_and_batch_embed(case: VertexCase) -> None:
    await shared.test_embed_and_batch_embed(case)


@each_model
async def test_a_2xx_other_than_200_is_not_taken_for_an_answer(case: VertexCase) -> None:
    await shared.test_a_2xx_other_than_200_is_not_taken_for_an_answer(case)
