"""The storm table: each Slack channel's recent new incidents and its storm, loaded for a
batch and written back with it (storm mode, `pipeline/storm.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from responder.records import StormRecord
from responder.store.db import Bulk, bulk_insert
from responder.store.tables import Storm

_STORMS: sa.Table = Storm.__table__  # type: ignore[attr-defined]


def live(conn: sa.Connection, *, since: datetime) -> dict[str, StormRecord]:
    """Channels in a storm, and those with a new incident since `since` (the rate window):
    any other row holds nothing a batch needs, and is overwritten as if new."""
    query = sa.select(_STORMS).where(
        sa.or_(_STORMS.c.started_at.is_not(None), _STORMS.c.updated_at >= since)
    )
    return {row["channel"]: StormRecord.from_row(row) for row in conn.execute(query).mappings()}


def quiet_due(conn: sa.Connection, *, now: datetime, limit: int) -> list[StormRecord]:
    """Storms whose quiet timer ran out, oldest timer first."""
    query = (
        sa.select(_STORMS)
        .where(_STORMS.c.quiet_at <= now)
        .order_by(_STORMS.c.quiet_at)
        .limit(limit)
    )
    return [StormRecord.from_row(row) for row in conn.execute(query).mappings()]


def upsert(engine: sa.Engine, storms: Sequence[StormRecord]) -> Bulk:
    """Insert or overwrite: a batch loads only the live rows, so a channel quiet for a while
    may have a row it did not read (whose content no longer matters)."""
    bulk = bulk_insert(engine, _STORMS, [storm.row() for storm in storms])
    if not storms:
        return bulk
    columns = [name for name in storms[0].row() if name != "channel"]
    updates = ",".join(f"{name}=excluded.{name}" for name in columns)
    # ON CONFLICT ... DO UPDATE: PostgreSQL 9.5+ and SQLite 3.24+ spell it the same.
    return Bulk(f"{bulk.sql} ON CONFLICT (channel) DO UPDATE SET {updates}", bulk.rows)
