"""A database per test, over both backends: a SQLite file, and a fresh PostgreSQL database.

`db_url` is parametrized over `sqlite` and `postgres`; the PostgreSQL one is a database of
its own on the machine's server (the `postgres_url` fixture: skipped locally when the
server is down, a failure in CI), empty, so tests never share rows. Creating and dropping
a database takes the server ~0.13 s, emptying one ~0.01 s: each test process keeps the
databases its tests used and gives the next test one that it emptied (its connections
ended, its `public` schema dropped and made again), and drops them all when it exits.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url


def _admin(url: str, statement: str) -> None:
    import asyncpg

    parsed = make_url(url)

    async def run() -> None:
        conn = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database=parsed.database,
        )
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop running here (at exit, Python 3.12 starts no thread)
        asyncio.run(run())
        return
    # Inside a running loop (an async test): a thread of its own.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


_EMPTY = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
DROP SCHEMA public CASCADE;
CREATE SCHEMA public;
"""
_free: dict[str, list[str]] = {}  # server URL → databases of this process, empty, unused


def _database(base: str) -> str:
    """An empty database of this process on the server of `base` (the URL of one)."""
    free = _free.setdefault(base, [])
    if free:
        return free.pop()
    name = f"genroute_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(base, f'CREATE DATABASE "{name}"')
    atexit.register(_admin, base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return name


def _give_back(base: str, name: str) -> None:
    try:
        _admin(_url(base, name), _EMPTY)
    except Exception:  # e.g. a test left the server unreachable: not used again
        _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    _free[base].append(name)


def _url(base: str, name: str) -> str:
    return make_url(base).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL (as a user would configure it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'genroute.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = _database(base)
    try:
        yield _url(base, name)
    finally:
        _give_back(base, name)
