"""The batch runner yields to interactive traffic, measured in process: at most
`batches.concurrency` batch requests in flight, `busy_concurrency` while an interactive call
is in flight; a rate-limited request is put back and no batch request starts until the time
the refusal gave; a cancel stops new requests at once. The pipeline is a scripted model API
whose calls wait until the test lets them answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from genroute.call import Call, Caller
from genroute.config import BatchesSettings, FilesSettings
from genroute.errors import RateLimited
from genroute.resources import Access, BatchRunner, BatchService, FileService, Traffic
from genroute.resources.blobs import LocalBlobs
from genroute.store.batches import BatchRepo
from genroute.store.engine import create_engine, migrate
from genroute.store.files import FileRepo
from genroute.wire import Candidate, Content, GenerateContentResponse, Part

OWNER = Access("team:red")
CALLER = Caller(key_hash="k" * 64, team_id="red")


class ScriptedAPI:
    """A model API whose calls wait for `release()`; it notes how many run at once, when each
    started, and the refusals scripted for the first calls."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: list[tuple[float, str]] = []
        self.calls: list[Call] = []
        self.refusals: list[Exception] = []
        self.gate = asyncio.Event()

    def release(self) -> None:
        self.gate.set()

    async def generate(self, call: Call, request: Any) -> GenerateContentResponse:
        text = request.contents[0].parts[0].text
        self.calls.append(call)
        self.started.append((time.monotonic(), text))
        if self.refusals:
            raise self.refusals.pop(0)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        return GenerateContentResponse(
            candidates=[Candidate(content=Content(role="model", parts=[Part(text=f"ok {text}")]))]
        )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[BatchService]:
    url = f"sqlite:///{tmp_path / 'batches.db'}"
    engine = create_engine(url)
    await migrate(engine, url)
    files = FileService(FileRepo(engine), LocalBlobs(tmp_path / "files"), FilesSettings())
    settings = BatchesSettings(
        concurrency=4, busy_concurrency=1, poll_interval=0.05, max_backoff_seconds=5
    )
    yield BatchService(BatchRepo(engine), files, settings)
    await engine.dispose()


async def submit(service: BatchService, count: int) -> str:
    body = {
        "batch": {
            "inputConfig": {
                "requests": {
                    "requests": [
                        {"request": {"contents": [{"parts": [{"text": f"q{i}"}]}]}}
                        for i in range(count)
                    ]
                }
            }
        }
    }
    row = await service.create(OWNER, CALLER, "demo", body)
    return row.batch_id


async def until(check: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def state(service: BatchService, batch_id: str) -> str:
    row = await service.repo.get(batch_id)
    assert row is not None
    return row.state


async def test_concurrency_shrinks_while_interactive_calls_are_in_flight(
    service: BatchService,
) -> None:
    traffic = Traffic()
    runner = BatchRunner(service, traffic)
    api = ScriptedAPI()
    runner.api = api
    traffic.enter()  # a client's call is in flight
    runner.start()
    try:
        batch_id = await submit(service, 12)
        await until(lambda: api.running == 1)
        for _ in range(10):  # and it stays at one while the client waits
            await asyncio.sleep(0.01)
            assert api.running == 1 and runner.in_flight == 1
        traffic.leave()  # the client's call ended: up to `concurrency`
        await until(lambda: api.running == 4)
        assert runner.in_flight == 4
        api.release()
        await until(lambda: len(api.calls) == 12)
        assert api.most == 4
        # Every request is a call of the batch's maker, marked with the batch.
        assert {c.caller.team_id for c in api.calls} == {"red"}
        assert {c.resources.batch for c in api.calls} == {f"batches/{batch_id}"}
        assert not any(c.resources.interactive for c in api.calls)
        await until_state(service, batch_id, "BATCH_STATE_SUCCEEDED")
    finally:
        api.release()
        await runner.aclose()


async def until_state(service: BatchService, batch_id: str, wanted: str) -> None:
    deadline = time.monotonic() + 5
    while (found := await state(service, batch_id)) != wanted:
        assert time.monotonic() < deadline, f"still {found}"
        await asyncio.sleep(0.01)


async def test_a_rate_limited_request_is_put_back_and_the_runner_waits(
    service: BatchService,
) -> None:
    runner = BatchRunner(service)
    api = ScriptedAPI()
    api.release()
    api.refusals = [RateLimited("rpm_limit of key-x is 1 per minute", retry_after=0.3)]
    runner.api = api
    runner.start()
    try:
        batch_id = await submit(service, 6)
        await until_state(service, batch_id, "BATCH_STATE_SUCCEEDED")
    finally:
        await runner.aclose()
    (refused_at, first), *_ = api.started
    # The first four started at once; the refused one ran again, and after the refusal no
    # request started before the 0.3 s it was told, though slots were free.
    assert [text for _, text in api.started].count(first) == 2
    later = api.started[4:]
    assert len(later) == 3 and all(at - refused_at >= 0.3 for at, _ in later)
    items = await service.repo.items(batch_id)
    assert [i.state for i in items] == ["DONE"] * 6


async def test_a_429_without_a_time_fails_the_request(service: BatchService) -> None:
    runner = BatchRunner(service)
    api = ScriptedAPI()
    api.release()
    api.refusals = [RateLimited("Budget exceeded for team red")]  # no retry_after
    runner.api = api
    runner.start()
    try:
        batch_id = await submit(service, 2)
        await until_state(service, batch_id, "BATCH_STATE_SUCCEEDED")
    finally:
        await runner.aclose()
    states = sorted(i.state for i in await service.repo.items(batch_id))
    assert states == ["DONE", "FAILED"] and len(api.started) == 2


async def test_a_cancel_starts_no_more_requests(service: BatchService) -> None:
    runner = BatchRunner(service)
    api = ScriptedAPI()
    runner.api = api
    runner.start()
    try:
        batch_id = await submit(service, 10)
        await until(lambda: api.running == 4)
        await service.cancel(OWNER, f"batches/{batch_id}")
        api.release()
        await until_state(service, batch_id, "BATCH_STATE_CANCELLED")
    finally:
        await runner.aclose()
    assert len(api.calls) == 4  # those in flight finished; none started after the cancel
    counts = await service.repo.counts(batch_id)
    assert counts == {"DONE": 4, "PENDING": 6}


async def test_the_resources_layer_counts_the_interactive_calls_in_flight(
    service: BatchService,
) -> None:
    from genroute.call import Operation, ResourceRecord
    from genroute.config import CachedContentsSettings
    from genroute.resources import CacheService, Resolved
    from genroute.store.caches import CacheRepo
    from genroute.wire import GenerateContentRequest

    traffic = Traffic()
    api = ScriptedAPI()
    caches = CacheService(CacheRepo(service.repo.session.kw["bind"]), CachedContentsSettings())
    layer = Resolved(api, service.files, caches, lambda _: OWNER, traffic)
    request = GenerateContentRequest.model_validate({"contents": [{"parts": [{"text": "hi"}]}]})
    client = asyncio.create_task(layer.generate(Call(Operation.GENERATE, "demo"), request))
    await until(lambda: api.running == 1)
    assert traffic.in_flight == 1  # a client waits on it
    batch_call = Call(Operation.GENERATE, "demo", resources=ResourceRecord(batch="batches/b1"))
    batch = asyncio.create_task(layer.generate(batch_call, request))
    await until(lambda: api.running == 2)
    assert traffic.in_flight == 1  # a batch's request is not interactive traffic
    api.release()
    await asyncio.gather(client, batch)
    assert traffic.in_flight == 0


async def test_a_stop_while_it_looks_for_work_is_not_waited_out(
    service: BatchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aclose() during the runner's database claim ends it at once, not a poll later (the
    wake was cleared after the claim, so the stop was waited out for `poll_interval`)."""
    claiming = asyncio.Event()
    answer = asyncio.Event()
    claim = service.repo.claim

    async def slow_claim(*args: Any) -> Any:
        claiming.set()
        await answer.wait()
        return await claim(*args)

    monkeypatch.setattr(service.repo, "claim", slow_claim)
    service.settings.poll_interval = 30.0
    runner = BatchRunner(service, Traffic())
    runner.api = ScriptedAPI()
    runner.start()
    await claiming.wait()
    stopping = asyncio.create_task(runner.aclose())
    await asyncio.sleep(0)
    answer.set()  # the claim comes back empty after the stop was asked for
    started = time.monotonic()
    await stopping  # (aclose absorbs a cancel, so time it rather than wait_for it)
    assert time.monotonic() - started < 1.0
