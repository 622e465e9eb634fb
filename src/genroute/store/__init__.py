"""Storage: the engine and migrations, the tables, the Store, and the spend ledger writer.

SQLite (a file, WAL mode) by default; PostgreSQL with `general_settings.database_url:
postgresql://…`. Alembic migrations run automatically at start-up.
"""

from genroute.errors import StoreError
from genroute.store.engine import async_url, default_url
from genroute.store.ledger import LedgerWriter, SpendRecord
from genroute.store.repo import Store, hash_key, parse_duration

__all__ = [
    "LedgerWriter",
    "SpendRecord",
    "Store",
    "StoreError",
    "async_url",
    "default_url",
    "hash_key",
    "parse_duration",
]
