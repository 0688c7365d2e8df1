"""Initial schema: alert_event, incident, action_run, audit_entry.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 07:46:35+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported: a migration must keep meaning what it meant when
# it shipped, whatever the models become. UTCDateTime is stored as DateTime(timezone=True).
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=80), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("monitor_id", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("transition", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("cycle_key", sa.String(length=128), nullable=True),
        sa.Column("template", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("processed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        # Named as PostgreSQL would name it, so that SQLite batch migrations can refer to it.
        sa.UniqueConstraint("fingerprint", name="alert_event_fingerprint_key"),
    )
    op.create_index("ix_alert_event_incident_id", "alert_event", ["incident_id"])
    op.create_index("ix_alert_event_monitor_id", "alert_event", ["monitor_id"])
    op.create_index("ix_alert_event_state_id", "alert_event", ["state", "id"])

    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("group_key", sa.String(length=300), nullable=False),
        sa.Column("cycle_key", sa.String(length=128), nullable=True),
        sa.Column("monitor_id", sa.String(length=64), nullable=True),
        sa.Column("monitor_name", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=True),
        sa.Column("service", sa.String(length=128), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("env", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_transition", sa.String(length=32), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("refs", sa.JSON(), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="incident_key_key"),
    )
    op.create_index("ix_incident_group_status", "incident", ["group_key", "status"])
    op.create_index("ix_incident_monitor_id", "incident", ["monitor_id"])
    op.create_index("ix_incident_opened_at", "incident", ["opened_at"])
    op.create_index("ix_incident_priority", "incident", ["priority"])
    op.create_index("ix_incident_service", "incident", ["service"])
    op.create_index("ix_incident_status", "incident", ["status"])
    op.create_index("ix_incident_team", "incident", ["team"])

    op.create_table(
        "action_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("playbook", sa.String(length=200), nullable=False),
        sa.Column("playbook_hash", sa.String(length=64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("condition", sa.String(length=64), nullable=True),
        sa.Column("transition", sa.String(length=32), nullable=False),
        sa.Column("lane", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("scheduled_at", _TS, nullable=False),
        sa.Column("not_before", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key", name="action_run_idempotency_key_key"),
    )
    op.create_index("ix_action_run_due", "action_run", ["state", "not_before"])
    op.create_index("ix_action_run_incident_id", "action_run", ["incident_id"])
    op.create_index("ix_action_run_lane", "action_run", ["lane", "state"])

    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq", name="audit_entry_seq_key"),
    )
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"])
    op.create_index("ix_audit_entry_event_id", "audit_entry", ["event_id"])
    op.create_index("ix_audit_entry_incident_id", "audit_entry", ["incident_id"])
    op.create_index("ix_audit_entry_kind", "audit_entry", ["kind"])
    op.create_index("ix_audit_entry_run_id", "audit_entry", ["run_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes with it.
    op.drop_table("audit_entry")
    op.drop_table("action_run")
    op.drop_table("incident")
    op.drop_table("alert_event")
