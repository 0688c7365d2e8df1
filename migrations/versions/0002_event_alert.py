"""alert_event.alert: the alert as intake normalised it, kept beside the raw payload.

The worker and the runner read this instead of normalising the payload again. Rows stored
before it stay NULL and are normalised from their payload when read.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 01:45:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alert_event", sa.Column("alert", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_event") as batch:
        batch.drop_column("alert")
