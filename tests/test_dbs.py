"""The PostgreSQL databases tests/dbs.py hands from one test to the next: never a row of the
last test, and never a schema other than none or the one genroute's migrations make."""

from __future__ import annotations

from typing import Any

from genroute.store import Store
from tests import dbs


async def _tables_and_rows(conn: Any) -> tuple[int, int]:
    tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    keys = 0
    if tables:
        keys = await conn.fetchval("SELECT count(*) FROM genroute_keys")
    return tables, keys


async def _used(postgres_url: str, change: str | None = None) -> str:
    """A database migrated by genroute, holding a key, its schema then changed by `change`,
    given back; the database the next test gets."""
    name = dbs._database(postgres_url)
    url = dbs._url(postgres_url, name)
    store = Store(url)
    await store.start()
    await store.create_key({"key_alias": "left-behind"})
    await store.aclose()
    if change:
        dbs._admin(url, change)
    dbs._give_back(postgres_url, name)
    again = dbs._database(postgres_url)
    assert again == name  # the one just given back
    return again


async def test_a_migrated_database_is_handed_on_with_its_schema_and_no_rows(
    postgres_url: str,
) -> None:
    name = await _used(postgres_url)
    try:
        tables, keys = dbs._admin(dbs._url(postgres_url, name), _tables_and_rows)
        assert tables > 10 and keys == 0
    finally:
        dbs._give_back(postgres_url, name)


async def test_a_database_whose_schema_a_test_changed_is_handed_on_bare(
    postgres_url: str,
) -> None:
    change = "CREATE FUNCTION left_behind() RETURNS integer AS 'SELECT 1' LANGUAGE sql"
    name = await _used(postgres_url, change)
    try:
        assert dbs._admin(dbs._url(postgres_url, name), _tables_and_rows) == (0, 0)
    finally:
        dbs._give_back(postgres_url, name)


async def test_a_bare_database_is_bare(postgres_url: str) -> None:
    name = await _used(postgres_url)
    dbs._give_back(postgres_url, name)
    bare = dbs._database(postgres_url, bare=True)
    try:
        assert bare == name
        assert dbs._admin(dbs._url(postgres_url, bare), _tables_and_rows) == (0, 0)
    finally:
        dbs._give_back(postgres_url, bare)
