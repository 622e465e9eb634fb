"""Batch jobs (the Batch API) and their requests.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "genroute_batches",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(300)),
        sa.Column("caller", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(512)),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("input_file", sa.String(64)),
        sa.Column("output_file", sa.String(64)),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_genroute_batches_owner_created", "genroute_batches", ["owner", "created_at"]
    )
    op.create_index("ix_genroute_batches_state", "genroute_batches", ["state"])
    op.create_table(
        "genroute_batch_items",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(512)),
        sa.Column("metadata", sa.JSON()),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.JSON()),
        sa.Column("error", sa.JSON()),
    )


def downgrade() -> None:
    op.drop_table("genroute_batch_items")
    op.drop_table("genroute_batches")
