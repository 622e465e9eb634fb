"""Storage: the engine and migrations, the tables, the Store, and the spend ledger.

SQLite (a file, WAL mode) by default; PostgreSQL with `general_settings.database_url:
postgresql://…`. Alembic migrations run automatically at start-up.

    engine.py   URLs, the engine (with timeouts), migrations
    models.py   the tables; migrations/ their Alembic revisions
    repo.py     the Store: keys, teams, end users, budget resets
    holds.py    budget holds shared through the database (when there is no Redis)
    ledger.py   spend records, cleaning them to fit, writing a batch
    journal.py  the local journal/spool of records and the dead-letter file
    writer.py   the ledger writer: batches, bisection, spooling, replay
    spend.py    ledger queries and reports
"""

from genroute.errors import StoreError
from genroute.store.engine import async_url, default_url
from genroute.store.journal import DeadLetters, Journal
from genroute.store.ledger import SpendRecord
from genroute.store.repo import Store, hash_key, parse_duration
from genroute.store.writer import LedgerWriter

__all__ = [
    "DeadLetters",
    "Journal",
    "LedgerWriter",
    "SpendRecord",
    "Store",
    "StoreError",
    "async_url",
    "default_url",
    "hash_key",
    "parse_duration",
]
