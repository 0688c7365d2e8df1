"""People answer incidents: who acknowledged or resolved one, and how vendors name it.

`incident.acknowledged_by` / `resolved_by` hold the person ("alice (slack)"); a recovery
leaves `resolved_by` empty. `incident_ref` maps a vendor's name for an incident (PagerDuty's
dedup key) to ours, so an inbound PagerDuty webhook finds the incident it is about.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 09:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("acknowledged_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(length=200), nullable=True))
    op.create_table(
        "incident_ref",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value"),
    )
    op.create_index("ix_incident_ref_incident_id", "incident_ref", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_incident_ref_incident_id", table_name="incident_ref")
    op.drop_table("incident_ref")
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("resolved_by")
        batch.drop_column("acknowledged_by")
