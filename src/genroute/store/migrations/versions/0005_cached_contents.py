"""Cached contents (the cachedContents API) and their copies on upstreams.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "genroute_cached_contents",
        sa.Column("cache_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(300)),
        sa.Column("key_hash", sa.String(64)),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(512)),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_genroute_cached_contents_owner_created",
        "genroute_cached_contents",
        ["owner", "created_at"],
    )
    op.create_index(
        "ix_genroute_cached_contents_expires_at", "genroute_cached_contents", ["expires_at"]
    )
    op.create_table(
        "genroute_cache_copies",
        sa.Column("cache_id", sa.String(64), primary_key=True),
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("upstream_name", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("genroute_cache_copies")
    op.drop_table("genroute_cached_contents")
