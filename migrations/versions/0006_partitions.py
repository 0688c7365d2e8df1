"""alert_event.part: the sequencer partition of each event (one per monitor + scope).

Several workers on PostgreSQL process events at once, each holding the partitions it took;
the index serves "the oldest waiting events of partition N". Events still waiting at the
upgrade are dealt here by the same rule the intake uses from now on; rows from before 0002
(no normalised alert kept) stay in partition 0.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 07:00:00+00:00
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the rule at this revision (`events.partition_of`): a migration must give
# the same result whatever the code becomes later.
_PARTITIONS = 16


def _part(alert: str | None) -> int:
    if not alert:
        return 0
    data = json.loads(alert)
    monitor = data.get("monitor_id") or f"title:{str(data.get('monitor_name', '')).lower()}"
    key = f"{monitor}|{data.get('scope', '')}"[:300]
    return zlib.crc32(key.encode()) % _PARTITIONS


def upgrade() -> None:
    op.add_column(
        "alert_event", sa.Column("part", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_index("ix_alert_event_state_part_id", "alert_event", ["state", "part", "id"])
    conn = op.get_bind()
    waiting = conn.execute(
        sa.text("SELECT id, alert FROM alert_event WHERE state = 'received'")
    ).all()
    updates = [{"id": row[0], "part": _part(row[1])} for row in waiting]
    if updates:
        conn.execute(sa.text("UPDATE alert_event SET part = :part WHERE id = :id"), updates)


def downgrade() -> None:
    op.drop_index("ix_alert_event_state_part_id", table_name="alert_event")
    with op.batch_alter_table("alert_event") as batch:
        batch.drop_column("part")
