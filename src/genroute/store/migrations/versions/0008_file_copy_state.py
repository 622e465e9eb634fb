"""A file's copy on an upstream's Files API keeps its state there (PROCESSING, as videos
are for a while after their upload, until ACTIVE).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("genroute_file_copies") as batch:
        batch.add_column(sa.Column("state", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("genroute_file_copies") as batch:
        batch.drop_column("state")
