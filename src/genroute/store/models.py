"""The tables: virtual keys, teams, end users, the spend ledger and budget holds
(SQLAlchemy 2 ORM).

Keys are stored only as the hex SHA-256 of the secret. Money is USD as a double; budgets
are compared with it, never summed across billions of rows. Each ledger row carries the
call's unique `row_id`, so writing a row twice (a retried batch, a replayed spool) keeps
one. A budget hold is what one call in flight (or finished, with its row not yet written)
takes from a budget when several instances share it without Redis. The Alembic migrations
in `genroute.store.migrations` create exactly these tables; change both together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "BudgetHold", "EndUser", "SpendLog", "Team", "VirtualKey"]


class Base(DeclarativeBase):
    """Declarative base of genroute's tables."""


class _Budgeted:
    """Columns shared by keys, teams and end users: spend, budget and limits."""

    spend: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    max_budget: Mapped[float | None] = mapped_column(Float)
    budget_duration: Mapped[str | None] = mapped_column(String(16))
    budget_reset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    max_parallel_requests: Mapped[int | None] = mapped_column(Integer)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class VirtualKey(_Budgeted, Base):
    """A virtual key: `token` is the SHA-256 hex of the secret `sk-…`."""

    __tablename__ = "genroute_keys"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_name: Mapped[str] = mapped_column(String(32), nullable=False)
    key_alias: Mapped[str | None] = mapped_column(String(256), unique=True)
    team_id: Mapped[str | None] = mapped_column(String(256), index=True)
    user_id: Mapped[str | None] = mapped_column(String(256))
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Team(_Budgeted, Base):
    """A team: keys with its `team_id` share its budget and limits."""

    __tablename__ = "genroute_teams"

    team_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    team_alias: Mapped[str | None] = mapped_column(String(256))
    models: Mapped[list[str]] = mapped_column(JSON, default=list)


class EndUser(_Budgeted, Base):
    """An end user of a customer's app, named by the end-user header or SDK `user=`."""

    __tablename__ = "genroute_end_users"

    end_user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    alias: Mapped[str | None] = mapped_column(String(256))


class SpendLog(Base):
    """One row per finished generate/stream call."""

    __tablename__ = "genroute_spend_logs"
    __table_args__ = (
        Index("ix_genroute_spend_logs_start_time", "start_time"),
        Index("ix_genroute_spend_logs_key_hash", "key_hash"),
        Index("ix_genroute_spend_logs_end_user", "end_user"),
        Index("ix_genroute_spend_logs_batch", "batch"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    row_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    key_hash: Mapped[str | None] = mapped_column(String(64))
    key_alias: Mapped[str | None] = mapped_column(String(256))
    team_id: Mapped[str | None] = mapped_column(String(256))
    user_id: Mapped[str | None] = mapped_column(String(256))
    end_user: Mapped[str | None] = mapped_column(String(256))
    operation: Mapped[str] = mapped_column(String(32), nullable=False)
    model_group: Mapped[str | None] = mapped_column(String(256))
    deployment_id: Mapped[str | None] = mapped_column(String(256))
    provider: Mapped[str | None] = mapped_column(String(64))
    provider_model: Mapped[str | None] = mapped_column(String(256))
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    error_status: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    thinking_tokens: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    cost: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    cost_estimated: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    stream: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Answered by the response cache: "hit" or "semantic-hit" (cost 0), and what the
    # answer cost when it was made.
    cache_hit: Mapped[str | None] = mapped_column(String(16))
    saved_cost: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    # The Gemini resources of the call (revision 0007): `batches/{id}` for a batch's
    # request, `cachedContents/{id}` it named, its uploaded `files/{id}` (space-separated).
    batch: Mapped[str | None] = mapped_column(String(64))
    cached_content: Mapped[str | None] = mapped_column(String(96))
    files: Mapped[str | None] = mapped_column(String(512))
    # How the call was routed and traced (revision 0009), for the call's detail on any
    # instance: its trace id, and its attempts and fallbacks as compact JSON (see
    # `genroute.store.ledger.routing_json`).
    trace_id: Mapped[str | None] = mapped_column(String(32))
    routing: Mapped[str | None] = mapped_column(Text)


class BudgetHold(Base):
    """What one call holds on one budget: its most possible cost while in flight, its cost
    once settled, until the ledger writes its row (which deletes the hold)."""

    __tablename__ = "genroute_budget_holds"
    __table_args__ = (Index("ix_genroute_budget_holds_entity", "kind", "ident"),)

    hold_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ident: Mapped[str] = mapped_column(String(256), nullable=False)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    settled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
