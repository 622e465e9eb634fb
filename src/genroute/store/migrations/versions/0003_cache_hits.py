"""Ledger rows say whether the response cache answered, and what that saved.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.add_column(sa.Column("cache_hit", sa.String(16)))
        batch.add_column(sa.Column("saved_cost", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.drop_column("saved_cost")
        batch.drop_column("cache_hit")
