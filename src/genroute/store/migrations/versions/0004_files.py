"""Uploaded files (the Files API) and their copies on upstream Files APIs.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "genroute_files",
        sa.Column("file_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(300)),
        sa.Column("key_hash", sa.String(64)),
        sa.Column("display_name", sa.String(512)),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("declared_size", sa.BigInteger()),
        sa.Column("sha256", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.String(1024)),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("upload_id", sa.String(64), unique=True),
        sa.Column("upload", sa.JSON()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_genroute_files_owner_created", "genroute_files", ["owner", "created_at"])
    op.create_index("ix_genroute_files_expires_at", "genroute_files", ["expires_at"])
    op.create_table(
        "genroute_file_copies",
        sa.Column("file_id", sa.String(64), primary_key=True),
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("upstream_name", sa.String(256), nullable=False),
        sa.Column("upstream_uri", sa.String(1024), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("genroute_file_copies")
    op.drop_table("genroute_files")
