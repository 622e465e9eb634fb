"""Store fixtures: a migrated Store on each backend (tests/store's own)."""

from __future__ import annotations

from tests.store.conftest import db_url, store

__all__ = ["db_url", "store"]
