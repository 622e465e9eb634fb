"""Alembic migrations of genroute's tables, run at start-up by `genroute.store.engine`."""
