"""Store fixtures: a migrated Store on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from genroute.store import Store
from tests.dbs import bare_postgres_url, db_url

__all__ = ["bare_postgres_url", "db_url"]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated, empty Store. Its calls may take 30 s, not 5: these tests are not about
    a slow database, and a loaded machine must not turn a burst of calls into timeouts."""
    s = Store(db_url, timeout=30)
    await s.start()
    yield s
    await s.aclose()
