"""Ledger rows name the batch, cached content and files of their call; batches keep the
hash of the key that made them (for the management API's filter by key).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.add_column(sa.Column("batch", sa.String(64)))
        batch.add_column(sa.Column("cached_content", sa.String(96)))
        batch.add_column(sa.Column("files", sa.String(512)))
        batch.create_index("ix_genroute_spend_logs_batch", ["batch"])
    with op.batch_alter_table("genroute_batches") as batch:
        batch.add_column(sa.Column("key_hash", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("genroute_batches") as batch:
        batch.drop_column("key_hash")
    with op.batch_alter_table("genroute_spend_logs") as batch:
        batch.drop_index("ix_genroute_spend_logs_batch")
        batch.drop_column("files")
        batch.drop_column("cached_content")
        batch.drop_column("batch")
