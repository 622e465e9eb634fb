"""The spend ledger under faults, on real SQLite and PostgreSQL: rows that do not fit their
columns, rows the database refuses, a database that is down or hangs, a restart while it
is down, and a journal left by a process that is gone. Nothing is lost, nothing is counted
twice, and one bad row never holds up the others."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from genroute.store import Journal, LedgerWriter, SpendRecord, Store
from genroute.store.journal import DEAD_LETTERS
from genroute.store.ledger import INT_MAX, clean_row, write_batch
from genroute.store.models import SpendLog
from genroute.store.repo import utcnow
from tests.fakes.tcp_proxy import TcpProxy


def record(i: int, key: str | None = None, cost: float = 0.01, **extra: Any) -> SpendRecord:
    fields: dict[str, Any] = {"model_group": "demo", "prompt_tokens": 3, "output_tokens": 5}
    return SpendRecord(
        request_id=f"r{i}",
        start_time=utcnow(),
        operation="generateContent",
        status_code=200,
        key_hash=key,
        cost=cost,
        **{**fields, **extra},
    )


async def rows(store: Store) -> int:
    async with store.session() as session:
        return int(await session.scalar(select(func.count(SpendLog.id))) or 0)


async def key_spend(store: Store, key: str) -> float:
    row = await store.get("key", key)
    assert row is not None
    return float(row["spend"])


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("ledger-*.jsonl"))


# -- rows that do not fit -------------------------------------------------------------------


async def test_a_model_name_too_long_for_its_column_does_not_stall_the_ledger(
    store: Store,
) -> None:
    """The bug: a 300-character model name with a NUL (through a wildcard group) failed
    the whole batch on PostgreSQL, which was retried forever."""
    key = (await store.create_key({}))["key_hash"]
    writer = LedgerWriter(store, flush_interval=60)
    bad = record(0, key, model_group="gemini-" + "x" * 300 + "\x00", provider_model="a\x00b")
    for r in [bad, *(record(i, key) for i in range(1, 50))]:
        await writer.submit(r)
    await asyncio.wait_for(writer.flush(), 10)
    assert await rows(store) == 50
    assert writer.stats.cleaned == 1 and writer.stats.dead_lettered == 0
    assert await key_spend(store, key) == pytest.approx(0.5)
    async with store.session() as session:
        clipped = await session.scalar(
            select(SpendLog.model_group).where(SpendLog.request_id == "r0")
        )
    assert clipped is not None and len(clipped) == 256 and "\x00" not in clipped
    await writer.aclose()


def _garbage(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            "",
            "x" * rng.randint(200, 2000),
            "nul\x00inside",
            "\ud800 lone surrogate",
            "ünïcødé ✓ 模型",
            rng.randint(-(2**40), 2**40),
            float("nan"),
            float("inf"),
            -float("inf"),
            1e308,
        ]
    )


def garbage_record(rng: random.Random, i: int, key: str) -> SpendRecord:
    r = record(i, key, cost=rng.random() / 100)
    for name in ("key_alias", "team_id", "user_id", "end_user", "model_group", "deployment_id",
                 "provider", "provider_model", "error_status"):  # fmt: skip
        value = _garbage(rng)
        setattr(r, name, value if isinstance(value, str) or value is None else str(value))
    for name in (
        "prompt_tokens",
        "output_tokens",
        "thinking_tokens",
        "cached_tokens",
        "status_code",
    ):
        value = _garbage(rng)
        setattr(r, name, value if isinstance(value, int) else rng.randint(0, 10))
    for name in ("latency_ms", "ttft_ms"):
        value = _garbage(rng)
        setattr(r, name, value if isinstance(value, float) or value is None else 1.0)
    r.request_id = "".join(rng.choice(["r", "\x00", "é", "x" * 200]) for _ in range(3)) + str(i)
    return r


async def test_any_record_fits_its_columns(store: Store) -> None:
    """Property, over random records full of long text, NULs, unpaired surrogates, huge
    counts and non-finite numbers: every row is written, none set aside, every cent
    counted."""
    rng = random.Random(7)
    key = (await store.create_key({}))["key_hash"]
    writer = LedgerWriter(store, flush_interval=60, batch_size=100)
    records = [garbage_record(rng, i, key) for i in range(300)]
    for r in records:
        row, _ = clean_row(r)
        texts = [v for v in row.values() if isinstance(v, str)]
        assert all("\x00" not in v and v.encode("utf-8") is not None for v in texts)
        assert all(not isinstance(v, int) or abs(v) <= INT_MAX for v in row.values())
        await writer.submit(r)
    await writer.aclose()
    assert await rows(store) == 300
    assert writer.stats.dead_lettered == 0 and writer.stats.written == 300
    assert await key_spend(store, key) == pytest.approx(sum(r.cost for r in records))


async def test_a_row_written_twice_is_kept_once(store: Store) -> None:
    key = (await store.create_key({}))["key_hash"]
    batch = [record(i, key) for i in range(10)]
    first = await write_batch(store, batch)
    again = await write_batch(store, [*batch, record(10, key)])
    assert (first.inserted, again.inserted) == (10, 1)
    assert await rows(store) == 11
    assert await key_spend(store, key) == pytest.approx(0.11)


# -- rows the database refuses --------------------------------------------------------------


async def refuse_rows(store: Store, column: str, value: str) -> None:
    """A trigger refusing rows whose `column` is `value` (a row no cleaning can foresee)."""
    async with store.engine.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            await conn.execute(
                text(
                    "CREATE FUNCTION genroute_refuse() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.{column} = '{value}' THEN RAISE EXCEPTION 'refused row' "
                    "USING ERRCODE = '22023'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER genroute_refuse BEFORE INSERT ON genroute_spend_logs "
                    "FOR EACH ROW EXECUTE FUNCTION genroute_refuse()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER genroute_refuse BEFORE INSERT ON genroute_spend_logs "
                    f"WHEN NEW.{column} = '{value}' BEGIN SELECT RAISE(ABORT, 'refused row'); END"
                )
            )


async def test_bad_rows_are_set_aside_alone_and_still_counted(store: Store, tmp_path: Path) -> None:
    """1% of 2,000 rows refused by the database: the batch is bisected, the 1,980 good
    rows written, each bad row set aside in the dead-letter file and written stripped of
    its description, so that every cent still counts."""
    await refuse_rows(store, "model_group", "poison")
    key = (await store.create_key({}))["key_hash"]
    journal = Journal(tmp_path / "spool")
    journal.open()
    writer = LedgerWriter(store, flush_interval=60, journal=journal)
    n, bad = 2000, set(range(7, 2000, 100))
    for i in range(n):
        await writer.submit(record(i, key, 0.001, model_group="poison" if i in bad else "demo"))
    started = time.perf_counter()
    await writer.flush()
    elapsed = time.perf_counter() - started
    print(f"ledger with {len(bad)} bad rows: {n} rows in {elapsed:.2f}s ({n / elapsed:.0f} rows/s)")
    assert writer.stats.dead_lettered == len(bad) and writer.stats.uncounted == 0
    assert await rows(store) == n
    assert await key_spend(store, key) == pytest.approx(n * 0.001)
    letters = [
        orjson.loads(line) for line in (tmp_path / "spool" / DEAD_LETTERS).read_bytes().splitlines()
    ]
    assert sorted(int(e["record"]["request_id"][1:]) for e in letters) == sorted(bad)
    assert all("refused row" in e["error"] and e["spend_counted"] for e in letters)
    await writer.aclose()
    assert segments(tmp_path / "spool") == []


async def test_a_row_refused_even_stripped_is_set_aside_uncounted(store: Store) -> None:
    await refuse_rows(store, "request_id", "r3")
    writer = LedgerWriter(store, flush_interval=60)
    for i in range(10):
        await writer.submit(record(i))
    await writer.aclose()
    assert await rows(store) == 9
    assert writer.stats.dead_lettered == 1 and writer.stats.uncounted == 1


# -- a database that is down, or hangs -----------------------------------------------------


@pytest.fixture
def pg_proxy(db_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A TCP proxy in front of the test's PostgreSQL database, and the URL through it."""
    if not db_url.startswith("postgresql"):
        pytest.skip("cutting the database off is done on PostgreSQL")
    with TcpProxy(5432) as proxy:
        yield proxy, make_url(db_url).set(port=proxy.port).render_as_string(hide_password=False)


async def spooled_writer(
    url: str, directory: Path, seconds: float = 0.5
) -> tuple[Store, LedgerWriter]:
    store = Store(url, timeout=seconds)
    journal = Journal(directory)
    journal.open()
    return store, LedgerWriter(store, flush_interval=60, journal=journal, timeout=seconds * 2)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("fault", ["refused", "hung"])
async def test_an_outage_spools_and_loses_nothing(
    pg_proxy: tuple[TcpProxy, str], tmp_path: Path, fault: str
) -> None:
    proxy, url = pg_proxy
    store, writer = await spooled_writer(url, tmp_path)
    await store.start()
    key = (await store.create_key({}))["key_hash"]
    for i in range(100):
        await writer.submit(record(i, key))
    await writer.flush()
    assert await rows(store) == 100 and writer.writing
    if fault == "refused":
        proxy.stop()
    else:
        proxy.hold = True  # connections open, nothing answers
    started = time.perf_counter()
    for i in range(100, 300):
        await writer.submit(record(i, key))
    await writer.flush()  # fails within its timeout, never hangs
    assert time.perf_counter() - started < 5
    assert not writer.writing and writer.spooling
    assert writer.metrics()["genroute_ledger_spool_rows"] == 200
    submit = time.perf_counter()
    for i in range(300, 400):  # while spooling, a submit is one write to the journal
        await writer.submit(record(i, key))
    assert time.perf_counter() - submit < 1 and not writer.queue
    if fault == "refused":
        proxy.start()
    else:
        proxy.hold = False
    await writer.flush()
    assert writer.writing and not writer.spooling
    assert await rows(store) == 400
    assert await key_spend(store, key) == pytest.approx(4.0)
    assert writer.stats.replayed >= 300
    closing = time.perf_counter()
    await writer.aclose()
    assert time.perf_counter() - closing < 2
    assert segments(tmp_path) == []
    await store.aclose()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_restart_while_the_database_is_down_keeps_every_row(
    pg_proxy: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, url = pg_proxy
    store, writer = await spooled_writer(url, tmp_path)
    await store.start()
    key = (await store.create_key({}))["key_hash"]
    proxy.stop()
    for i in range(50):
        await writer.submit(record(i, key))
    closing = time.perf_counter()
    await writer.aclose()  # one bounded try, then the rows stay on disk
    assert time.perf_counter() - closing < 3
    assert len(segments(tmp_path)) >= 1
    await store.aclose()
    # The next process starts with the database still down, then it comes back.
    store, again = await spooled_writer(url, tmp_path)
    again.start()
    await again.flush()
    assert again.stats.replayed == 0
    proxy.start()
    await again.flush()
    assert again.stats.replayed == 50
    assert await rows(store) == 50
    assert await key_spend(store, key) == pytest.approx(0.5)
    await again.aclose()
    assert segments(tmp_path) == []
    await store.aclose()


async def test_a_journal_left_by_a_dead_process_is_adopted(store: Store, tmp_path: Path) -> None:
    """A process that dies before its flush leaves its segment unlocked: a live instance on
    the same directory replays it (once, however many instances look)."""
    key = (await store.create_key({}))["key_hash"]
    dead = Journal(tmp_path)
    dead.open()
    for i in range(30):
        dead.append(record(i, key))
    for segment in dead.segments:  # what a SIGKILL leaves: the file, no lock
        import os

        os.close(segment.fd)
    peers = []
    for _ in range(2):
        journal = Journal(tmp_path)
        journal.open()
        peers.append(LedgerWriter(store, flush_interval=60, journal=journal))
    await asyncio.gather(*(p.flush() for p in peers))
    assert sum(p.stats.replayed for p in peers) == 30
    assert await rows(store) == 30 and await key_spend(store, key) == pytest.approx(0.3)
    for p in peers:
        await p.aclose()
    assert segments(tmp_path) == []


async def test_a_journal_that_cannot_be_written_keeps_rows_in_memory(
    store: Store, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "spool")
    journal.open()
    writer = LedgerWriter(store, flush_interval=60, journal=journal)
    (tmp_path / "spool").rmdir()
    (tmp_path / "spool").write_text("not a directory any more")
    for i in range(5):
        await writer.submit(record(i))
    assert writer.stats.journal_errors == 5 and len(writer.queue) == 5
    await writer.aclose()
    assert await rows(store) == 5


async def test_a_full_memory_queue_never_makes_a_journaled_call_wait(
    store: Store, tmp_path: Path
) -> None:
    journal = Journal(tmp_path)
    journal.open()
    writer = LedgerWriter(store, flush_interval=60, journal=journal, max_queue=5)
    for i in range(20):
        await asyncio.wait_for(writer.submit(record(i)), 1)  # never waits for space
    assert len(writer.queue) == 5 and writer.stats.spooled == 15
    await writer.flush()  # the memory queue, then the segment is closed...
    await writer.flush()  # ...and replayed (rows already written are kept once)
    assert await rows(store) == 20
    await writer.aclose()
    assert segments(tmp_path) == []


async def test_rows_are_made_when_queued_and_a_row_that_could_not_be_is_made_at_the_flush(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush on the event loop only joins rows made when their records were queued
    (`driver_row`); a record whose row could not be made then is made at the flush, with
    the rest of its batch, and is written the same."""
    from genroute.store import writer as writer_module

    key = (await store.create_key({}))["key_hash"]
    writer = LedgerWriter(store, flush_interval=60)
    made = writer_module.driver_row

    def fails_once(dialect: Any, rec: SpendRecord) -> Any:
        if rec.request_id == "r3":
            raise RuntimeError("could not make the row")
        return made(dialect, rec)

    monkeypatch.setattr(writer_module, "driver_row", fails_once)
    odd = record(0, key, model_group="m" * 300 + "\x00")
    for r in [odd, *(record(i, key) for i in range(1, 6))]:
        await writer.submit(r)
    assert [entry[2] is None for entry in writer.queue] == [False, False, False, True, False, False]
    assert writer.queue[0][2] is not None and writer.queue[0][2][1]  # cleaned to fit
    await writer.flush()
    assert await rows(store) == 6 and not writer.queue
    assert writer.stats.cleaned == 1 and writer.stats.dead_lettered == 0
    assert await key_spend(store, key) == pytest.approx(0.06)
    monkeypatch.undo()
    for i in range(6, 9):
        await writer.submit(record(i, key))
    assert all(entry[2] is not None for entry in writer.queue)
    await writer.flush()
    assert await rows(store) == 9 and await key_spend(store, key) == pytest.approx(0.09)
    await writer.aclose()


async def test_a_busy_writer_writes_what_was_queued_in_one_go_not_a_stream_of_small_writes(
    store: Store, tmp_path: Path
) -> None:
    """Calls keep arriving while a flush writes: they wait for the next flush instead of
    each being chased in a transaction of its own (which at c=1 made the writer run a
    5-row transaction every few milliseconds, all the time)."""
    journal = Journal(tmp_path)
    journal.open()
    writer = LedgerWriter(store, flush_interval=60, journal=journal)
    for i in range(10):
        await writer.submit(record(i))
    writes: list[int] = []
    write = writer._write
    arriving = iter(range(100, 115))

    async def write_while_calls_arrive(records: list[SpendRecord], rows: Any = None) -> None:
        writes.append(len(records))
        for i in [next(arriving, None) for _ in range(5)]:
            if i is not None:
                await writer.submit(record(i))
        await write(records, rows)

    writer._write = write_while_calls_arrive  # type: ignore[method-assign]
    await writer.flush()
    assert writes == [10] and len(writer.queue) == 5
    await writer.flush()
    await writer.flush()
    await writer.flush()
    assert writes == [10, 5, 5, 5] and not writer.queue
    assert await rows(store) == 25
    await writer.aclose()
    assert segments(tmp_path) == []


def test_record_round_trips_through_json() -> None:
    r = record(1, "k", cost=math.pi, ttft_ms=None)
    from genroute.store.ledger import record_from_json

    assert record_from_json(orjson.loads(orjson.dumps(r.to_json()))) == r


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"cost": math.nan, "latency_ms": math.inf, "ttft_ms": -math.inf},  # written as null
        {"key_alias": "bad \ud800 surrogate", "end_user": "ünï ✓"},  # repaired, kept
        {"routing": '{"attempts":[]}', "files": "files/a files/b"},
    ],
)
def test_a_journal_line_is_the_records_json(changes: dict[str, object]) -> None:
    from genroute.store.ledger import record_from_json

    r = record(1, "k", **changes)
    line = r.json_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == r.to_json()
    back = record_from_json(orjson.loads(line))
    assert back.start_time == r.start_time and back.row_id == r.row_id
