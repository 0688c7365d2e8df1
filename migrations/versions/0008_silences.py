"""Silences: `silence` rows (matchers, start, end, reason, author, early expiry), and on
each incident the durable timer of a silence or maintenance window holding its playbooks
back (`silenced_until`, `silence_id`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "silence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_silence_ends_at", "silence", ["ends_at"])
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("silenced_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("silence_id", sa.Integer(), nullable=True))
        batch.create_index("ix_incident_silenced_until", ["silenced_until"])


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_index("ix_incident_silenced_until")
        batch.drop_column("silence_id")
        batch.drop_column("silenced_until")
    op.drop_index("ix_silence_ends_at", table_name="silence")
    op.drop_table("silence")
