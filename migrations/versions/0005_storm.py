"""Storm mode: one row per Slack channel in table `storm`.

`opens` (new incidents' times within the last minute), the storm while one lasts
(`started_at`, `quiet_at` the durable timer that ends it, `incidents`, `open_ids`,
`affected`, `paged` routing keys), and where its one summary message is kept
(`summary_incident_id`, `summary_run_id`, the coalesced update `pending_run_id` /
`next_update_at`, `updates`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 06:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storm",
        sa.Column("channel", sa.String(length=200), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("opens", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quiet_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incidents", sa.Integer(), nullable=False),
        sa.Column("open_ids", sa.JSON(), nullable=True),
        sa.Column("affected", sa.JSON(), nullable=True),
        sa.Column("paged", sa.JSON(), nullable=True),
        sa.Column("summary_incident_id", sa.Integer(), nullable=True),
        sa.Column("summary_run_id", sa.Integer(), nullable=True),
        sa.Column("pending_run_id", sa.Integer(), nullable=True),
        sa.Column("next_update_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updates", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_storm_quiet_at", "storm", ["quiet_at"])
    op.create_index("ix_storm_updated_at", "storm", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_storm_updated_at", table_name="storm")
    op.drop_index("ix_storm_quiet_at", table_name="storm")
    op.drop_table("storm")
