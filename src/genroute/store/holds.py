"""Budget holds in the database: how instances without Redis share what the calls in
flight may cost.

A call on budgeted keys, teams or end users first *reserves*: in one transaction, for
each budget (in a fixed order, so two instances never deadlock), it locks the budget's row
(PostgreSQL: `SELECT … FOR UPDATE`; SQLite: a write, which takes the database's write
lock), then reads its committed spend and the holds on it, and refuses when
`spend + holds >= max_budget`; otherwise it inserts a hold of the call's most possible
cost on every one. When the call ends its holds are *settled*: their amount becomes the
call's cost. When the ledger writes the call's row it deletes the holds in the same
transaction as it adds the cost to the spend (`genroute.store.ledger.write_batch`), so
the cost is always counted exactly once: as a hold, then as spend.

Holds expire: an in-flight one after `HOLD_TTL` (a process killed mid-call gives its holds
back), a settled one after `SETTLED_TTL` (its ledger row never came). Expired holds are
deleted by the next reservation on the same budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select, text, update

from genroute.store.models import BudgetHold
from genroute.store.repo import KIND_PK, KIND_TABLE, Store, guarded, utcnow

__all__ = [
    "HOLD_TTL",
    "SETTLED_TTL",
    "BudgetState",
    "drop_holds",
    "held",
    "reserve_holds",
    "settle_holds",
]

HOLD_TTL = 900.0
SETTLED_TTL = 86_400.0


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget that refused a reservation: its committed spend, the holds on it, its limit."""

    kind: str
    ident: str
    spend: float
    held: float
    limit: float


async def _soft(conn: Any) -> None:
    """Holds are soft state: on PostgreSQL their transactions do not wait for the WAL to
    reach the disk (a crash may forget the last holds, never a ledger row)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _live(kind: str, ident: str, now: datetime) -> Any:
    return and_(BudgetHold.kind == kind, BudgetHold.ident == ident, BudgetHold.expires_at > now)


async def reserve_holds(
    store: Store,
    entities: list[tuple[str, str]],
    hold_id: str,
    amount: float,
    *,
    ttl: float = HOLD_TTL,
) -> BudgetState | None:
    """Hold `amount` on every budget, or on none: None when held, else the first budget
    (in lock order) whose spend and holds already reach its max_budget."""
    now = utcnow()
    async with guarded("reserving a budget"), store.session.begin() as session:
        conn = await session.connection()
        sqlite = conn.dialect.name == "sqlite"
        await _soft(conn)
        for kind, ident in sorted(set(entities)):
            table = KIND_TABLE[kind]
            pk = getattr(table, KIND_PK[kind])
            spend_col, limit_col = table.spend, table.max_budget  # type: ignore[attr-defined]
            if sqlite:  # SQLite has no row locks: take its write lock before reading
                await conn.execute(update(table).where(pk == ident).values(spend=spend_col))
            mine = and_(BudgetHold.kind == kind, BudgetHold.ident == ident)
            live = case((BudgetHold.expires_at > now, BudgetHold.amount), else_=0.0)
            gone = case((BudgetHold.expires_at <= now, 1), else_=0)
            # Lock first; read the holds after, in a statement of their own: in READ
            # COMMITTED each statement sees what was committed before it started, so holds
            # inserted by the transaction we waited for are seen only by a later statement.
            query = select(spend_col, limit_col).where(pk == ident).with_for_update(of=table)
            row = (await conn.execute(query)).one_or_none()
            if row is None or row[1] is None:
                continue
            holds = (await conn.execute(select(func.coalesce(func.sum(live), 0.0),
                                               func.coalesce(func.sum(gone), 0)).where(mine))).one()  # fmt: skip
            if holds[1]:  # holds of calls that never ended (their process is gone)
                await conn.execute(delete(BudgetHold).where(mine, BudgetHold.expires_at <= now))
            spend, limit, holding = float(row[0] or 0.0), float(row[1]), float(holds[0] or 0.0)
            if spend >= limit or spend + holding >= limit:
                return BudgetState(kind, ident, spend, holding, limit)
        expires = now + timedelta(seconds=ttl)
        await conn.execute(
            insert(BudgetHold),
            [
                {"hold_id": hold_id, "kind": kind, "ident": ident, "amount": amount,
                 "settled": False, "expires_at": expires}
                for kind, ident in sorted(set(entities))
            ],
        )  # fmt: skip
    return None


async def settle_holds(store: Store, hold_id: str, cost: float) -> None:
    """The call ended: its holds now hold its cost, until the ledger writes its row."""
    expires = utcnow() + timedelta(seconds=SETTLED_TTL)
    async with guarded("settling a budget"), store.session.begin() as session:
        await _soft(await session.connection())
        await session.execute(
            update(BudgetHold)
            .where(BudgetHold.hold_id == hold_id)
            .values(amount=cost, settled=True, expires_at=expires)
        )


async def drop_holds(store: Store, hold_id: str) -> None:
    """Give a reservation back (the call was refused after reserving)."""
    async with guarded("releasing a budget"), store.session.begin() as session:
        await session.execute(delete(BudgetHold).where(BudgetHold.hold_id == hold_id))


async def held(store: Store, kind: str, ident: str) -> float:
    """What the live holds on one budget add up to."""
    async with store.session() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(BudgetHold.amount), 0.0)).where(
                _live(kind, ident, utcnow())
            )
        )
    return float(total or 0.0)
