"""Ledger rows keep how their call was routed and traced, so that any instance can show a
call's detail: the trace id and the routing attempts as compact JSON (deployment,
provider, status and reason, latency per attempt; the fallback groups).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32)))
        batch.add_column(sa.Column("routing", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.drop_column("routing")
        batch.drop_column("trace_id")
