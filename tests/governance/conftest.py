"""Store fixtures: a migrated Store on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from genroute.store import Store
from tests.dbs import db_url

__all__ = ["db_url"]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated, empty Store."""
    s = Store(db_url)
    await s.start()
    yield s
    await s.aclose()
