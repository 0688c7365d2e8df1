"""Real alert streams: what each incident remembers between deliveries, and each monitor +
scope's recent state changes.

incident: `seen_at` (Datadog's date of the newest delivery applied), `repeats` and
`last_repeat_at` (reminders Datadog sent), `reminded_at` (the last reminder told to people),
`stale_at` (the durable stale timer: resolved with reason `stale` if nothing arrives before),
`resolution` (why it was resolved: recovered, stale, ...).

alert_group: one row per monitor + scope: its last state and when it changed (Datadog's
dates, for deliveries that arrive out of order), the recent changes (flap detection), and
the flapping incident with its quiet timer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 04:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Written out here rather than imported, as in 0001: a migration keeps meaning what it
# meant when it shipped. UTCDateTime is stored as DateTime(timezone=True).

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_repeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("stale_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolution", sa.String(length=32), nullable=True))
        batch.create_index("ix_incident_stale_at", ["stale_at"])
    op.create_table(
        "alert_group",
        sa.Column("key", sa.String(length=300), primary_key=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=True),
        sa.Column("flapping_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quiet_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alert_group_quiet_at", "alert_group", ["quiet_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_group_quiet_at", table_name="alert_group")
    op.drop_table("alert_group")
    with op.batch_alter_table("incident") as batch:
        batch.drop_index("ix_incident_stale_at")
        for column in ("resolution", "stale_at", "reminded_at", "last_repeat_at", "repeats"):
            batch.drop_column(column)
        batch.drop_column("seen_at")
