"""The alert_group table: each monitor + scope's state by Datadog's dates, its recent state
changes and its flapping, loaded for a batch and written back with it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa

from responder.domain import IncidentStatus
from responder.records import GroupRecord
from responder.store.db import Bulk, bulk_insert, bulk_update
from responder.store.tables import AlertGroup, Incident

_GROUPS: sa.Table = AlertGroup.__table__  # type: ignore[attr-defined]
_INCIDENTS: sa.Table = Incident.__table__  # type: ignore[attr-defined]
_COLUMNS = (
    "state",
    "changed_at",
    "changes",
    "flapping_since",
    "quiet_at",
    "incident_id",
    "updated_at",
    "joined_at",
)


def for_keys(conn: sa.Connection, *, keys: Iterable[str]) -> dict[str, GroupRecord]:
    wanted = sorted(set(keys))
    found: dict[str, GroupRecord] = {}
    for start in range(0, len(wanted), 500):
        query = sa.select(_GROUPS).where(_GROUPS.c.key.in_(wanted[start : start + 500]))
        for row in conn.execute(query).mappings():
            found[row["key"]] = GroupRecord.from_row(row)
    return found


def of_incidents(conn: sa.Connection, *, ids: Iterable[int]) -> list[GroupRecord]:
    """The groups these incidents hold (the members of grouped incidents)."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    query = sa.select(_GROUPS).where(_GROUPS.c.incident_id.in_(wanted))
    return [GroupRecord.from_row(row) for row in conn.execute(query).mappings()]


def quiet_due(conn: sa.Connection, *, now: datetime, limit: int) -> list[GroupRecord]:
    """Flapping groups whose quiet timer has run out, oldest timer first. Only those whose
    incident is still open: one resolved otherwise (stale, its last member) has nothing
    left to end, and its group settles with its next state change."""
    still_open = sa.select(_INCIDENTS.c.id).where(
        _INCIDENTS.c.status != IncidentStatus.RESOLVED.value
    )
    query = (
        sa.select(_GROUPS)
        .where(_GROUPS.c.quiet_at <= now, _GROUPS.c.incident_id.in_(still_open))
        .order_by(_GROUPS.c.quiet_at)
        .limit(limit)
    )
    return [GroupRecord.from_row(row) for row in conn.execute(query).mappings()]


def insert(engine: sa.Engine, groups: Sequence[GroupRecord]) -> Bulk:
    return bulk_insert(engine, _GROUPS, [group.row() for group in groups])


def update(engine: sa.Engine, groups: Sequence[GroupRecord]) -> Bulk:
    rows = [{"key": g.key, **{c: g.row()[c] for c in _COLUMNS}} for g in groups]
    return bulk_update(engine, _GROUPS, _COLUMNS, {"key": "key"}, rows)
