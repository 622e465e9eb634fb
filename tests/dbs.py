"""A database per test, over both backends: a SQLite file, and a fresh PostgreSQL database.

`db_url` is parametrized over `sqlite` and `postgres`; the PostgreSQL one creates its own
database on the machine's server (the `postgres_url` fixture: skipped locally when the
server is down, a failure in CI) and drops it afterwards, so tests never share rows.
"""

from __future__ import annotations

import asyncio
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

    # A thread of its own, so it works whether or not an event loop is running here.
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


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL (as a user would configure it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'genroute.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = f"genroute_test_{uuid.uuid4().hex[:12]}"
    _admin(base, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
