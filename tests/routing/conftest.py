"""Fixtures for Router tests: several fake Gemini upstreams, told apart by their requests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from genroute.routing import Router
from genroute.wire import GenerateContentRequest
from tests.fakes.gemini_upstream import FakeGemini

UPSTREAM_KEY = "upstream-key"
REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello router"}]}]}
)


@pytest.fixture(scope="module")
def fakes() -> Iterator[list[FakeGemini]]:
    """Three fake Gemini upstreams, shared by a module's tests (their streams pause 2 ms
    between writes, not 10: the Router tests do not look at how the bytes are cut)."""
    upstreams = [FakeGemini(UPSTREAM_KEY, pause=0.002).start() for _ in range(3)]
    yield upstreams
    for upstream in upstreams:
        upstream.stop()


@pytest.fixture(autouse=True)
def _fresh_fakes(request: pytest.FixtureRequest) -> None:
    if "fakes" in request.fixturenames:
        for upstream in request.getfixturevalue("fakes"):
            upstream.reset()


def gemini(fake: FakeGemini, **extra: Any) -> dict[str, Any]:
    """Deployment params for a fake upstream."""
    return {
        "model": "gemini/gemini-2.5-flash",
        "api_key": UPSTREAM_KEY,
        "api_base": fake.base_url,
        **extra,
    }


def entry(group: str, params: dict[str, Any], deployment_id: str | None = None) -> dict[str, Any]:
    """A model_list entry, with a model_info.id when given."""
    item: dict[str, Any] = {"model_name": group, "params": params}
    if deployment_id:
        item["model_info"] = {"id": deployment_id}
    return item


class ManualClock:
    """A monotonic clock the test moves forward (for cooldowns and usage windows)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


_open: list[Router] = []


def make_router(
    entries: list[dict[str, Any]], clock: ManualClock | None = None, **settings: Any
) -> Router:
    """A Router over `entries` (fast backoff unless the test sets its own; its in-memory
    state on `clock` when given), closed after the test."""
    settings.setdefault("retry_backoff_base", 0.01)
    router = Router(entries, router_settings=settings, clock=clock)
    _open.append(router)
    return router


@pytest.fixture(autouse=True)
async def _close_routers() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().aclose()


def unique_prefix(name: str) -> str:
    """A Redis key prefix no other test (or run) uses."""
    return f"genroute-test:{name}:{os.getpid()}:{os.urandom(4).hex()}"
