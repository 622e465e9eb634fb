"""Ledger rows carry a unique row_id (idempotent writes); budget holds.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.add_column(sa.Column("row_id", sa.String(32)))
        batch.create_unique_constraint("uq_genroute_spend_logs_row_id", ["row_id"])
    op.create_table(
        "genroute_budget_holds",
        sa.Column("hold_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("ident", sa.String(256), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_genroute_budget_holds_entity", "genroute_budget_holds", ["kind", "ident"])


def downgrade() -> None:
    op.drop_table("genroute_budget_holds")
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.drop_constraint("uq_genroute_spend_logs_row_id", type_="unique")
        batch.drop_column("row_id")
