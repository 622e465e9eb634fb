"""Keys, teams, end users and the spend ledger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _budgeted() -> list[sa.Column[object]]:
    return [
        sa.Column("spend", sa.Float(), nullable=False, server_default="0"),
        sa.Column("max_budget", sa.Float()),
        sa.Column("budget_duration", sa.String(16)),
        sa.Column("budget_reset_at", sa.DateTime(timezone=True)),
        sa.Column("rpm_limit", sa.Integer()),
        sa.Column("tpm_limit", sa.Integer()),
        sa.Column("max_parallel_requests", sa.Integer()),
        sa.Column("blocked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("metadata", sa.JSON()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "genroute_keys",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("key_name", sa.String(32), nullable=False),
        sa.Column("key_alias", sa.String(256), unique=True),
        sa.Column("team_id", sa.String(256), index=True),
        sa.Column("user_id", sa.String(256)),
        sa.Column("models", sa.JSON()),
        sa.Column("expires", sa.DateTime(timezone=True)),
        *_budgeted(),
    )
    op.create_table(
        "genroute_teams",
        sa.Column("team_id", sa.String(256), primary_key=True),
        sa.Column("team_alias", sa.String(256)),
        sa.Column("models", sa.JSON()),
        *_budgeted(),
    )
    op.create_table(
        "genroute_end_users",
        sa.Column("end_user_id", sa.String(256), primary_key=True),
        sa.Column("alias", sa.String(256)),
        *_budgeted(),
    )
    op.create_table(
        "genroute_spend_logs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_hash", sa.String(64)),
        sa.Column("key_alias", sa.String(256)),
        sa.Column("team_id", sa.String(256)),
        sa.Column("user_id", sa.String(256)),
        sa.Column("end_user", sa.String(256)),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("model_group", sa.String(256)),
        sa.Column("deployment_id", sa.String(256)),
        sa.Column("provider", sa.String(64)),
        sa.Column("provider_model", sa.String(256)),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("error_status", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("thinking_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cached_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cost", sa.Float(), nullable=False, server_default="0"),
        sa.Column("cost_estimated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("ttft_ms", sa.Float()),
        sa.Column("stream", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_genroute_spend_logs_start_time", "genroute_spend_logs", ["start_time"])
    op.create_index("ix_genroute_spend_logs_key_hash", "genroute_spend_logs", ["key_hash"])
    op.create_index("ix_genroute_spend_logs_end_user", "genroute_spend_logs", ["end_user"])


def downgrade() -> None:
    for table in ("genroute_spend_logs", "genroute_end_users", "genroute_teams", "genroute_keys"):
        op.drop_table(table)
