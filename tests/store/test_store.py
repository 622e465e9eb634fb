"""The Store on real SQLite and PostgreSQL: migrations, rows, budgets, the ledger, reports."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import func, select, update

from genroute.store import LedgerWriter, SpendRecord, Store, StoreError, async_url, hash_key
from genroute.store import engine as store_engine
from genroute.store.models import SpendLog, VirtualKey
from genroute.store.repo import parse_duration, utcnow
from genroute.store.spend import SpendFilter, spend_logs, spend_report, spend_totals


def record(
    i: int, key: str | None = None, user: str | None = None, cost: float = 0.01
) -> SpendRecord:
    return SpendRecord(
        request_id=f"r{i}",
        start_time=utcnow(),
        operation="generateContent",
        status_code=200,
        key_hash=key,
        end_user=user,
        model_group="demo" if i % 2 else "other",
        prompt_tokens=3,
        output_tokens=5,
        cost=cost,
    )


def test_urls() -> None:
    assert async_url("postgresql://u@h:5432/db") == "postgresql+asyncpg://u@h:5432/db"
    assert async_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    with pytest.raises(ValueError, match="unsupported database"):
        async_url("mysql://h/db")


def test_durations() -> None:
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("7d") == timedelta(days=7)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


async def test_migrations_are_idempotent(store: Store) -> None:
    await store.start()
    other = Store(store.url)
    await other.start()
    await other.aclose()
    assert await store.list("key") == []


async def test_a_new_sqlite_database_gets_the_schema_the_migrations_make(tmp_path: Path) -> None:
    """An empty SQLite database is given in one step exactly the schema and revision that
    running every migration gives (the statements are read back from migrations run once
    per process); migrating it again changes nothing."""

    def schema(path: Path) -> tuple[list[Any], list[Any]]:
        with closing(sqlite3.connect(path)) as db:
            made = sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
            return made, db.execute("SELECT version_num FROM alembic_version").fetchall()

    stepwise, at_once = tmp_path / "stepwise.db", tmp_path / "at-once.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{stepwise}")
    with engine.begin() as connection:
        store_engine._alembic_upgrade(connection)  # every migration, one after the other
    engine.dispose()
    for _ in range(2):
        url = f"sqlite:///{at_once}"
        made = store_engine.create_engine(url, None)
        await store_engine.migrate(made, url)
        await made.dispose()
        assert schema(at_once) == schema(stepwise)
    tables, revision = schema(at_once)
    assert len(tables) > 10 and revision


async def test_a_new_sqlite_database_is_made_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start stopped while the schema is being made leaves the database empty, so the
    next start makes it again, instead of half a schema no migration can go on from."""
    schema = store_engine._sqlite_schema()
    broken = (*schema[:3], "CREATE TABLE half (")
    monkeypatch.setattr(store_engine, "_sqlite_schema", lambda: broken)
    path = tmp_path / "new.db"
    url = f"sqlite:///{path}"
    made = store_engine.create_engine(url, None)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        await store_engine.migrate(made, url)
    await made.dispose()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


async def test_a_new_postgres_database_is_migrated_by_alembic(
    bare_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty PostgreSQL database is given every migration by Alembic, one after the
    other; a restart finds it at the last revision and leaves it alone."""
    url = bare_postgres_url
    upgrade, migrated = store_engine._alembic_upgrade, []

    def counted(connection: Any) -> None:
        migrated.append(url)
        upgrade(connection)

    monkeypatch.setattr(store_engine, "_alembic_upgrade", counted)
    made = store_engine.create_engine(url, None)
    try:
        for _ in range(2):
            await store_engine.migrate(made, url)
        async with made.connect() as connection:
            revision = await connection.scalar(
                sqlalchemy.text("SELECT version_num FROM alembic_version")
            )
            tables = await connection.scalar(
                sqlalchemy.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
    finally:
        await made.dispose()
    assert migrated == [url]
    assert revision == store_engine.SCHEMA_REVISION and tables > 10


def test_the_schema_revision_is_the_last_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(store_engine.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [store_engine.SCHEMA_REVISION]


async def test_a_database_at_the_last_revision_is_not_handed_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart reads the revision and goes on (Alembic is not even imported); a database
    at an earlier revision is still migrated by Alembic."""
    url = f"sqlite:///{tmp_path / 'restarted.db'}"
    made = store_engine.create_engine(url, None)
    await store_engine.migrate(made, url)  # new: made in one step, at the last revision
    migrated: list[str] = []
    monkeypatch.setattr(store_engine, "_alembic_upgrade", lambda conn: migrated.append(url))
    await store_engine.migrate(made, url)
    assert migrated == []
    async with made.begin() as connection:
        await connection.execute(sqlalchemy.text("UPDATE alembic_version SET version_num='0008'"))
    await store_engine.migrate(made, url)
    assert migrated == [url]
    await made.dispose()


async def test_keys_are_stored_hashed_and_shown_once(store: Store) -> None:
    created = await store.create_key({"key_alias": "alpha", "models": ["demo"], "max_budget": 2.5})
    secret = created["key"]
    assert secret.startswith("sk-") and len(secret) > 30
    assert created["key_hash"] == hash_key(secret)
    info = await store.get("key", hash_key(secret))
    assert info is not None and "key" not in info and info["models"] == ["demo"]
    async with store.session() as session:
        tokens = list((await session.execute(select(VirtualKey.token))).scalars())
    assert tokens == [hash_key(secret)] and secret not in str(info)
    with pytest.raises(StoreError, match="already exists"):
        await store.create_key({"key_alias": "alpha"})
    updated = await store.update("key", hash_key(secret), {"max_budget": 5.0, "blocked": True})
    assert updated["max_budget"] == 5.0 and updated["blocked"] is True
    with pytest.raises(StoreError, match="not found"):
        await store.update("key", "0" * 64, {"blocked": True})
    assert await store.delete("key", [hash_key(secret), "0" * 64]) == [hash_key(secret)]
    assert await store.get("key", hash_key(secret)) is None


async def test_teams_and_end_users(store: Store) -> None:
    team = await store.create("team", {"team_id": "t1", "max_budget": 10.0, "rpm_limit": 5})
    assert team["spend"] == 0.0 and team["rpm_limit"] == 5
    with pytest.raises(StoreError, match="already exists"):
        await store.create("team", {"team_id": "t1"})
    await store.ensure_end_user("u1")
    await asyncio.gather(*(store.ensure_end_user("u2") for _ in range(5)))
    users = {u["end_user_id"] for u in await store.list("end_user")}
    assert users == {"u1", "u2"}


async def test_budget_resets_when_its_period_ends(store: Store) -> None:
    created = await store.create_key({"max_budget": 1.0, "budget_duration": "1d"})
    token = created["key_hash"]
    async with store.session.begin() as session:
        await session.execute(
            update(VirtualKey)
            .where(VirtualKey.token == token)
            .values(spend=0.9, budget_reset_at=utcnow() - timedelta(seconds=1))
        )
    loaded = await store.load("key", token)
    assert loaded is not None and loaded["spend"] == 0.0
    assert loaded["budget_reset_at"] > (utcnow() + timedelta(hours=23)).isoformat()


async def test_ledger_batches_rows_and_totals(store: Store) -> None:
    keys = [(await store.create_key({}))["key_hash"] for _ in range(3)]
    for user in ("u0", "u1"):
        await store.ensure_end_user(user)
    writer = LedgerWriter(store, flush_interval=0.05)
    n = 2000
    started = time.perf_counter()
    await asyncio.gather(
        *(writer.submit(record(i, keys[i % 3], f"u{i % 2}", 0.001 * (i % 7))) for i in range(n))
    )
    await writer.aclose()
    elapsed = time.perf_counter() - started
    print(f"ledger: {n} rows in {elapsed:.2f}s ({n / elapsed:.0f} rows/s) on {store.url[:10]}")
    async with store.session() as session:
        rows = await session.scalar(select(func.count(SpendLog.id)))
        ledger_total = await session.scalar(select(func.sum(SpendLog.cost)))
    assert rows == n
    key_total = sum([(await store.get("key", k) or {})["spend"] for k in keys])
    user_total = sum([(await store.get("end_user", u) or {})["spend"] for u in ("u0", "u1")])
    assert key_total == pytest.approx(ledger_total, rel=1e-9)
    assert user_total == pytest.approx(ledger_total, rel=1e-9)


async def test_close_writes_everything_still_queued(store: Store) -> None:
    writer = LedgerWriter(store, flush_interval=60)
    for i in range(50):
        await writer.submit(record(i))
    await writer.aclose()
    assert (await spend_totals(store, SpendFilter()))["requests"] == 50


async def test_spend_queries(store: Store) -> None:
    key = (await store.create_key({}))["key_hash"]
    writer = LedgerWriter(store)
    for i in range(10):
        await writer.submit(record(i, key if i < 4 else None, "bob" if i < 6 else None))
    await writer.aclose()
    assert len(await spend_logs(store, SpendFilter(key_hash=key))) == 4
    assert len(await spend_logs(store, SpendFilter(end_user="bob"))) == 6
    assert len(await spend_logs(store, SpendFilter(model="demo"))) == 5
    assert await spend_logs(store, SpendFilter(start=utcnow() + timedelta(minutes=1))) == []
    by_model = await spend_report(store, "model", SpendFilter())
    assert {r["model"]: r["requests"] for r in by_model} == {"demo": 5, "other": 5}
    assert by_model[0]["day"] == utcnow().date().isoformat()
    by_user = await spend_report(store, "end_user", SpendFilter())
    assert sum(r["spend"] for r in by_user) == pytest.approx(0.1)


async def test_ledger_rows_read_back_as_written(store: Store) -> None:
    # The batch insert sends the driver its own SQL and values: every column reads back
    # through SQLAlchemy as the record had it, and a row written twice is kept once.
    from genroute.store.ledger import write_batch

    started = utcnow()
    written = SpendRecord(
        request_id="r-exact",
        start_time=started,
        operation="streamGenerateContent",
        status_code=499,
        key_hash="k" * 64,
        key_alias="älias",
        end_user="user-1",
        model_group="demo",
        deployment_id="dep-a",
        provider="gemini",
        provider_model="gemini-2.5-flash",
        error_status="CANCELLED",
        prompt_tokens=7,
        output_tokens=11,
        thinking_tokens=2,
        cached_tokens=3,
        cost=0.125,
        cost_estimated=True,
        latency_ms=12.5,
        ttft_ms=None,
        stream=True,
    )
    others = [record(i) for i in range(150)]  # more than one INSERT slice
    first = await write_batch(store, [written, *others])
    again = await write_batch(store, [written])
    assert (first.inserted, again.inserted) == (151, 0)
    async with store.session() as session:
        row = (
            await session.execute(select(SpendLog).where(SpendLog.row_id == written.row_id))
        ).scalar_one()
        count = await session.scalar(select(func.count()).select_from(SpendLog))
    assert count == 151
    for name in written.__dataclass_fields__:
        if name == "start_time":
            assert (
                abs(
                    (
                        row.start_time.replace(tzinfo=None) - started.replace(tzinfo=None)
                    ).total_seconds()
                )
                < 1e-3
            )
        else:
            assert getattr(row, name) == getattr(written, name), name
