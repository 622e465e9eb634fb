"""Database URLs, the async engine, and the Alembic migrations run at start-up.

    sqlite:///path/genroute.db      → sqlite+aiosqlite (WAL mode, busy timeout)
    postgresql://user@host:5432/db  → postgresql+asyncpg

Every database call is bounded by `timeout` seconds (`general_settings.database_timeout`):
connecting, waiting for a pooled connection, and each statement (asyncpg's
`command_timeout`; SQLite's busy timeout), so a database that hangs fails calls instead of
holding them. Migrations run on an engine of their own without a statement timeout (a
migration may rewrite a large table).

Migrations run programmatically on every start (`alembic upgrade head`), under a lock so
several workers starting at once do not race: a PostgreSQL advisory lock, or a lock file
next to the SQLite database. An empty SQLite database is given the schema they end at in
one step: the statements SQLite kept after running them once per process on an in-memory
database (~13 ms instead of ~90 ms for each new database after the first). A database
already at the last revision (`SCHEMA_REVISION`) is left as it is without loading Alembic.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "DEFAULT_DB_FILE",
    "DEFAULT_TIMEOUT",
    "MAX_OVERFLOW",
    "MIGRATIONS",
    "POOL_SIZE",
    "SCHEMA_REVISION",
    "async_url",
    "create_engine",
    "default_url",
    "is_sqlite",
    "migrate",
]

log = logging.getLogger("genroute.store")

DEFAULT_DB_FILE = "genroute.db"
MIGRATIONS = Path(__file__).with_name("migrations")
SCHEMA_REVISION = "0009"  # the last migration's; tests/store/test_store.py checks it is the head
_PG_LOCK_ID = 0x67656E726F757465  # "genroute"


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a configured database URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(
            f"database_url: unsupported database {backend!r} (use sqlite:///… or postgresql://…)"
        )
    return parsed.render_as_string(hide_password=False)


def default_url(config_dir: Path | None) -> str:
    """The default SQLite file, next to the config file (else in the working directory)."""
    return f"sqlite:///{(config_dir or Path.cwd()) / DEFAULT_DB_FILE}"


def is_sqlite(url: str) -> bool:
    """Whether the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


DEFAULT_TIMEOUT = 5.0
POOL_SIZE = 10
MAX_OVERFLOW = 10


def _sqlite_pragmas_for(busy_ms: int) -> Any:
    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    return pragmas


def create_engine(
    url: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    *,
    pool_size: int = POOL_SIZE,
    max_overflow: int = MAX_OVERFLOW,
) -> AsyncEngine:
    """A pooled async engine for the URL (WAL mode for SQLite); every connect, pool wait
    and statement bounded by `timeout` seconds (None: statements are not bounded). On
    PostgreSQL an instance opens at most `pool_size + max_overflow` connections."""
    full = async_url(url)
    if is_sqlite(url):
        busy = timeout if timeout is not None else 30.0
        engine = create_async_engine(full, connect_args={"timeout": busy})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas_for(int(busy * 1000)))
        return engine
    connect: dict[str, Any] = {"timeout": timeout or DEFAULT_TIMEOUT}
    if timeout is not None:
        connect["command_timeout"] = timeout
    return create_async_engine(
        full,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=timeout or DEFAULT_TIMEOUT,
        connect_args=connect,
    )


def _alembic_upgrade(connection: Connection) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


@functools.cache
def _sqlite_schema() -> tuple[str, ...]:
    """The statements that make the schema the migrations end at, on SQLite: the
    migrations run once per process on an in-memory database, whose schema (as SQLite
    keeps it, in `sqlite_master`) and Alembic revision are read back."""
    engine = sqlalchemy.create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            _alembic_upgrade(connection)
            made = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")
            )
            statements = [str(sql) for (sql,) in made]
            revisions = connection.execute(text("SELECT version_num FROM alembic_version"))
            statements += [
                f"INSERT INTO alembic_version (version_num) VALUES ('{revision}')"
                for (revision,) in revisions
            ]
    finally:
        engine.dispose()
    return tuple(statements)


def _at_head(connection: Connection) -> bool:
    """Whether the database is already at `SCHEMA_REVISION` (read without Alembic)."""
    if not sqlalchemy.inspect(connection).has_table("alembic_version"):
        return False
    revisions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return [revision for (revision,) in revisions] == [SCHEMA_REVISION]


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    elif connection.execute(text("SELECT 1 FROM sqlite_master LIMIT 1")).first() is None:
        # An empty SQLite database: the schema the migrations make, in one step (a process
        # that opens several new databases, the tests' for one, migrates only once), in one
        # transaction (SQLite's driver would commit each CREATE on its own): a start
        # stopped half-way leaves the database empty, not half made.
        connection.exec_driver_sql("BEGIN")
        for statement in _sqlite_schema():
            connection.exec_driver_sql(statement)
        return
    if _at_head(connection):  # a restart: Alembic is not even imported (~80 ms of CPU)
        return
    _alembic_upgrade(connection)


@contextmanager
def _file_lock(url: str) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def migrate(engine: AsyncEngine, url: str) -> None:
    """Bring the database schema up to date (`alembic upgrade head`)."""
    if is_sqlite(url):
        lock = _file_lock(url)
        await asyncio.to_thread(lock.__enter__)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade)
        finally:
            lock.__exit__(None, None, None)
    else:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    log.debug("database schema is up to date")
