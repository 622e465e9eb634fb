"""A database per test, over both backends: a SQLite file, and a fresh PostgreSQL database.

`db_url` is parametrized over `sqlite` and `postgres`; the PostgreSQL one is a database of
its own on the machine's server (the `postgres_url` fixture: skipped locally when the
server is down, a failure in CI), empty, so tests never share rows. Creating and dropping
a database takes the server ~0.13 s, emptying one ~0.01 s: each test process keeps the
databases its tests used and gives the next test one that it emptied (its connections
ended, then its tables emptied, or its `public` schema dropped and made again), and drops
them all when it exits.

A database whose schema is exactly the one genroute's migrations make (compared with a
database genroute migrated once per process and server: relations, columns, constraints,
indexes, functions, triggers, types, revision) keeps its schema and loses its rows (no
migration writes any): the next test gets what genroute's first start makes of an empty
database, without the nine migrations run again (~0.1 s a test). Any other database, one
whose schema a test changed among them, loses its schema. `bare_postgres_url` is a
database with no schema at all, for the tests of the migrations themselves.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url


def _run(work: Callable[[], Awaitable[Any]]) -> Any:
    """Run the coroutine function `work` in an event loop of its own: here, or in a thread
    when this thread's loop is running (an async test). Returns what it returned."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop running here (at exit, Python 3.12 starts no thread)
        return asyncio.run(work())
    results: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(work()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def _admin(url: str, work: str | Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `work` (a statement, or an async function of an asyncpg connection) on the
    database of `url`, on a connection of its own; returns what the function returned."""
    import asyncpg

    parsed = make_url(url)

    async def run() -> Any:
        conn = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database=parsed.database,
        )
        try:
            return await (conn.execute(work) if isinstance(work, str) else work(conn))
        finally:
            await conn.close()

    return _run(run)


_OTHERS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
# Everything in the `public` schema but its rows: relations (tables, indexes, sequences,
# views), columns, constraints, functions, triggers, types, and the Alembic revision.
_SCHEMA = """
SELECT 'relation', c.relname, c.relkind::text FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
       || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'function', proname, pg_get_function_identity_arguments(oid) FROM pg_proc
 WHERE pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'type', typname, typtype::text FROM pg_type WHERE typnamespace = 'public'::regnamespace
"""
_free: dict[str, list[str]] = {}  # server URL → databases of this process, empty, unused
_migrated: set[str] = set()  # those of them whose schema is the migrated one
_migrated_schema: dict[str, frozenset[tuple[str, ...]]] = {}  # server URL → that schema


async def _schema(conn: Any) -> frozenset[tuple[str, ...]]:
    rows = [tuple(r) for r in await conn.fetch(_SCHEMA)]
    if ("relation", "alembic_version", "r") in rows:
        rows += [
            ("revision", r[0]) for r in await conn.fetch("SELECT version_num FROM alembic_version")
        ]
    return frozenset(rows)


def _new_database(base: str) -> str:
    name = f"genroute_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(base, f'CREATE DATABASE "{name}"')
    atexit.register(_admin, base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return name


def _reference_schema(base: str) -> frozenset[tuple[str, ...]]:
    """The schema genroute's migrations make, read once per process and server from a new
    database that genroute migrated (it then joins the free ones)."""
    if base not in _migrated_schema:
        from genroute.store.engine import create_engine, migrate

        name = _new_database(base)
        url = _url(base, name)

        async def migrated() -> None:
            engine = create_engine(url)
            try:
                await migrate(engine, url)
            finally:
                await engine.dispose()

        _run(migrated)
        _migrated_schema[base] = _admin(url, _schema)
        _free.setdefault(base, []).append(name)
        _migrated.add(name)
    return _migrated_schema[base]


def _database(base: str, *, bare: bool = False) -> str:
    """An empty database of this process on the server of `base` (the URL of one); with
    `bare`, one without a schema."""
    free = _free.setdefault(base, [])
    if not free:
        return _new_database(base)
    name = free.pop()
    if bare and name in _migrated:
        _admin(_url(base, name), _reset(None))
        _migrated.discard(name)
    return name


def _reset(migrated: frozenset[tuple[str, ...]] | None) -> Callable[[Any], Awaitable[bool]]:
    """What empties a database, its connections ended: its rows if its schema is
    `migrated`, else its schema. Says whether it kept its schema."""

    async def run(conn: Any) -> bool:
        await conn.execute(_OTHERS)
        if migrated is not None and await _schema(conn) == migrated:
            tables = [r[1] for r in migrated if r[0] == "relation" and r[2] == "r"]
            rows = ", ".join(f'public."{t}"' for t in sorted(tables) if t != "alembic_version")
            await conn.execute(f"TRUNCATE {rows} RESTART IDENTITY CASCADE")
            return True
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        return False

    return run


def _give_back(base: str, name: str) -> None:
    _migrated.discard(name)
    try:
        migrated = _reference_schema(base)
        kept = _admin(_url(base, name), _reset(migrated))
    except Exception:  # e.g. a test left the server unreachable: not used again
        _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    if kept:
        _migrated.add(name)
    _free[base].append(name)


def _url(base: str, name: str) -> str:
    return make_url(base).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL (as a user would configure it): a new SQLite file, or a
    PostgreSQL database with no rows, whose schema may be the migrated one already."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'genroute.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = _database(base)
    try:
        yield _url(base, name)
    finally:
        _give_back(base, name)


@pytest.fixture
def bare_postgres_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database with no schema at all (`db_url`'s may already be migrated)."""
    name = _database(postgres_url, bare=True)
    try:
        yield _url(postgres_url, name)
    finally:
        _give_back(postgres_url, name)
