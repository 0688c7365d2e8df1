"""Grouping: alerts of several monitors or hosts held by one incident.

incident: `grouping_key` (the playbook and the values of its `group_by` tags that new
members are found by), `members` and `firing` (how many monitor + scope groups it holds, and
how many of them still fire: it resolves when none does), `summary_at` (the durable timer of
the next thread summary of new members) and `summarized` (members told so far).
alert_group: `joined_at` (when it joined the incident that holds it), indexed by incident.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 04:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("grouping_key", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("members", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("firing", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("summary_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("summarized", sa.Integer(), nullable=False, server_default="1")
        )
        batch.create_index("ix_incident_grouping_key", ["grouping_key"])
        batch.create_index("ix_incident_summary_at", ["summary_at"])
    with op.batch_alter_table("alert_group") as batch:
        batch.add_column(sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_alert_group_incident_id", ["incident_id"])


def downgrade() -> None:
    with op.batch_alter_table("alert_group") as batch:
        batch.drop_index("ix_alert_group_incident_id")
        batch.drop_column("joined_at")
    with op.batch_alter_table("incident") as batch:
        batch.drop_index("ix_incident_summary_at")
        batch.drop_index("ix_incident_grouping_key")
        for column in ("summarized", "summary_at", "firing", "members", "grouping_key"):
            batch.drop_column(column)
